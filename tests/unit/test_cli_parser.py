"""The quick parse (cli/__init__.py ``_parse_quickly``): a parser of only the command's group
gives what the parser of every command gives, or nothing (and prints nothing)."""

from __future__ import annotations

import argparse
import subprocess
import sys
from typing import Any

import pytest

from edi_gateway import cli


def _choices(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    (sub,) = (a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(sub.choices)


def test_every_command_is_mapped_to_the_group_that_adds_it() -> None:
    mapped: dict[str, Any] = {}
    for group in cli.GROUPS:
        for name in _choices(cli.build_parser((group,))):
            mapped[name] = group
    assert mapped == cli.COMMANDS
    assert set(_choices(cli.build_parser())) == set(cli.COMMANDS)


def _plain(args: argparse.Namespace) -> dict[str, Any]:
    """The parsed values; a handler (a closure made per parser) by the function it wraps."""
    out: dict[str, Any] = {}
    for key, value in vars(args).items():
        out[key] = value
        if callable(value) and not isinstance(value, type):
            cells = [c.cell_contents for c in value.__closure__ or ()]
            out[key] = (value.__qualname__, [getattr(c, "__qualname__", c) for c in cells])
    return out


PARSED = [
    ["orders", "show", "1"],
    ["orders", "list", "--status", "accepted", "--limit", "3", "--json"],
    ["--config", "x.yaml", "-v", "orders", "list", "--search", "bolt"],
    ["orders", "list", "--config", "y.yaml", "--log-format", "json"],
    ["--conf", "z.yaml", "messages", "list", "--state", "failed"],
    ["--config=run", "messages", "show", "7"],
    ["outbox", "list", "--since", "2026-11-01"],
    ["rules", "list"],
    ["run", "--once", "--log-format", "json"],
    ["ingest", "a.xml", "b.xml"],
    ["init", "gw", "--samples", "samples"],
    ["respond", "PO-1", "--accept"],
    ["despatch", "PO-1", "--date", "2026-11-02"],
    ["invoice", "PO-1"],
    ["documents", "show", "3"],
    ["orders", "note", "PO-1", "run"],
    ["purge", "--before", "2026-01-01", "--dry-run"],
    ["report", "kpi"],
    ["config", "check"],
]


@pytest.mark.parametrize("words", PARSED, ids=" ".join)
def test_the_quick_parse_is_the_whole_parse(words: list[str]) -> None:
    whole = cli.build_parser().parse_args(words)
    quick = cli._parse_quickly(words)
    assert quick is not None
    assert _plain(quick) == _plain(whole)


STOPS = [
    [],
    ["--help"],
    ["--version"],
    ["orders", "--help"],
    ["orders", "show", "--help"],
    ["orders", "bogus"],
    ["orders", "show"],
    ["orders", "list", "--limit", "0"],
    ["bogus", "list"],
    ["--config", "orders", "messages", "list"],  # a --config value named like a command
]


@pytest.mark.parametrize("words", STOPS, ids=lambda w: " ".join(w) or "none")
def test_the_quick_parse_leaves_help_and_errors_to_the_whole_parser(
    words: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli._parse_quickly(words) is None
    assert capsys.readouterr() == ("", "")


def test_a_config_named_like_a_command_is_still_the_config(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """What the quick parse leaves, main parses whole: the config file named ``orders``."""
    code = cli.main(["--config", "orders", "messages", "list"])
    assert code == 2  # no such config file: a config error, after parsing as the user meant
    assert "orders" in capsys.readouterr().err


def test_a_command_imports_only_its_own_group() -> None:
    """The quick parse imports the module of the command's group, not the others (nor what
    they import): a fresh interpreter, so what earlier tests imported does not count."""
    code = (
        "import sys\n"
        "from edi_gateway import cli\n"
        "assert cli._parse_quickly(['orders', 'show', '1']) is not None\n"
        "print(sorted(m for m in sys.modules if m.startswith('edi_gateway.cli.')))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.strip() == "['edi_gateway.cli.common', 'edi_gateway.cli.orders']"
