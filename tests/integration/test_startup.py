"""Read-only commands import only what they use (issue 12: they start in <= 0.3 s).

Structural, never timed (``bench/startup.py`` measures): each command runs through the
console script's entry point in a fresh interpreter, which names, as it exits, the heavy
modules it imported. The ORM, the PostgreSQL dialect on a SQLite store, lxml, the pipeline and
Alembic each cost a read-only command tens of milliseconds it has no use for; so do pydantic,
Jinja and PyYAML, which validating the starter config (its layouts) needs: once it validated,
commands take where the store is from the cache (config/cache.py); before, from the YAML alone
(config/where.py: PyYAML only).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import TypeAlias

import pytest

from tests import factory
from tests.integration.conftest import Project, cli, cli_env

HEAVY = (
    "sqlalchemy.orm",
    "sqlalchemy.dialects.postgresql",
    "edi_gateway.store.tables",
    "edi_gateway.app",
    "edi_gateway.pipeline.process",
    "edi_gateway.domain.documents",
    "lxml",
    "alembic",
    "openpyxl",
    "reportlab",
    "saxonche",
    "jinja2",
    "yaml",
    "pydantic",
)
NEEDS_SETTINGS = {("rules", "list")}
"""Commands that read the settings beyond where the store is: they load them from the cache,
with pydantic and the models (the rest take only the store's place from it)."""
PROBE = """\
import atexit, json, sys

def said():
    heavy = [m for m in {heavy} if m in sys.modules]
    print("IMPORTED " + json.dumps(heavy), file=sys.stderr)

atexit.register(said)
from edi_gateway.cli import main

sys.exit(main(sys.argv[1:]))
"""
Done: TypeAlias = "subprocess.CompletedProcess[str]"
READ_ONLY = {
    # the words after --config, and a text the output must hold (the command did its work)
    ("--help",): "orders",
    ("orders", "list"): "PO-2",
    ("orders", "list", "--json"): '"order_number": "PO-1"',
    ("orders", "list", "--search", "Article", "--needs", "despatch", "--type", "purchase"): "",
    ("orders", "list", "--order", "PO-2", "--status", "received"): "PO-2",
    ("orders", "list", "--needs", "invoice", "--attention", "--overdue"): "(none)",
    ("orders", "show", "1"): "Article 3",
    ("orders", "show", "PO-2", "--json"): '"seller_item_id": "SKU-00002"',
    ("messages", "list", "--order", "PO-1"): "PO-1.xml",
    ("messages", "show", "2", "--json"): '"state": "processed"',
    ("outbox", "list", "--order", "PO-1"): "(none)",
    ("rules", "list"): "no rule release installed",
}


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The commands' environment, with a config cache of their own."""
    return cli_env(XDG_CACHE_HOME=str(tmp_path_factory.mktemp("cache")))


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory, env: dict[str, str]) -> Project:
    """The starter project (``init``), its store holding two orders made by ``ingest``, as an
    operator would (which validates the config once)."""
    root = tmp_path_factory.mktemp("startup")
    done = cli("init", root / "gw", cwd=root, env=env)
    assert done.returncode == 0, done.stderr
    made = Project(root / "gw")
    made.edit_config(unknown_partner="accept")
    for n in (1, 2):
        (made.root / f"PO-{n}.xml").write_bytes(factory.order(f"PO-{n}", factory.items(3)))
    done = made.run("ingest", made.root / "PO-1.xml", made.root / "PO-2.xml", env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    return made


def _python(code: str, *args: str, cwd: Path, env: dict[str, str]) -> Done:
    """``python -c CODE ARGS``, finished (never raises on its exit code)."""
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=120,
        check=False,
    )


def _probe(
    project: Project, env: dict[str, str], *words: str, heavy: tuple[str, ...] = HEAVY
) -> tuple[str, list[str]]:
    """Run ``edi-gateway --config CONFIG WORDS``: its stdout and which of ``heavy`` it
    imported."""
    code = PROBE.format(heavy=heavy)
    done = _python(code, "--config", str(project.config), *words, cwd=project.root, env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    said = [ln for ln in done.stderr.splitlines() if ln.startswith("IMPORTED ")]
    assert said, done.stderr
    heavy: list[str] = json.loads(said[-1].removeprefix("IMPORTED "))
    return done.stdout, heavy


@pytest.mark.parametrize("words", list(READ_ONLY), ids=" ".join)
def test_a_read_only_command_imports_nothing_heavy(
    project: Project, env: dict[str, str], words: tuple[str, ...]
) -> None:
    out, heavy = _probe(project, env, *words)
    assert READ_ONLY[words] in out, out
    if words in NEEDS_SETTINGS:
        heavy.remove("pydantic")
    assert heavy == [], f"{words} imported them"


LEFT_TO_VALIDATION = (
    "edi_gateway.domain.order_data",
    "pydantic.networks",
    "pydantic.functional_serializers",
)
"""What only validating needs, never settings loaded from the cache that hold none of it: the
order's dataclasses (the check of ``partners[].sla.by_type``), ``HttpUrl`` (webhooks), pydantic's
serializer markers; together ~31 M instructions, 8% of a cache hit (docs/adr/0041)."""


def test_settings_from_the_cache_import_only_what_they_hold(
    project: Project, env: dict[str, str]
) -> None:
    """``rules list`` loads the settings from the cache: pydantic and the config models, no
    more."""
    out, heavy = _probe(project, env, "rules", "list", heavy=LEFT_TO_VALIDATION)
    assert READ_ONLY[("rules", "list")] in out, out
    assert heavy == []


def test_a_read_only_command_loads_the_settings_when_it_needs_them(
    project: Project, env: dict[str, str]
) -> None:
    """``messages show --raw`` asks the gateway for the payload: the settings it was opened
    without are loaded then (from the cache: still no YAML, no layouts)."""
    out, heavy = _probe(project, env, "messages", "show", "2", "--raw")
    assert "<cbc:ID>PO-2</cbc:ID>" in out, out
    assert "pydantic" in heavy
    assert not {"yaml", "openpyxl", "jinja2"} & set(heavy), heavy


def test_the_cached_store_is_the_configured_one_from_anywhere(
    project: Project, env: dict[str, str], tmp_path: Path
) -> None:
    """The starter's store URL is relative to the config; taken from the cache it is the
    same store when the command runs from another folder."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    code = PROBE.format(heavy=HEAVY)
    done = _python(code, "--config", str(project.config), "orders", "list", cwd=elsewhere, env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "PO-2" in done.stdout
    assert not (elsewhere / "gateway.db").exists()


def test_the_probe_sees_what_a_command_imports(project: Project, env: dict[str, str]) -> None:
    """The check can fail: a command that opens the whole gateway (a write) is seen importing
    the ORM and the pipeline; one that must load the settings without a cache, validating the
    starter config, imports pydantic, Jinja and PyYAML."""
    _, heavy = _probe(project, env, "orders", "note", "PO-1", "checked by phone")
    assert {"sqlalchemy.orm", "edi_gateway.store.tables", "edi_gateway.app"} <= set(heavy)
    cold = env | {"XDG_CACHE_HOME": str(project.root / "no-cache-yet")}
    _, heavy = _probe(project, cold, "rules", "list")
    assert {"jinja2", "yaml", "pydantic"} <= set(heavy)
    assert "openpyxl" not in heavy  # a column map's cells are read without it


def test_without_the_cache_a_read_only_command_validates_beside_itself(
    project: Project, env: dict[str, str]
) -> None:
    """No cache (the first command after the config changed): ``orders show`` reads where the
    store is from the YAML alone (config/where.py) and leaves validating the config (pydantic,
    the starter's layouts) to a child (config/validating.py), which caches it: the next
    command takes all from the cache."""
    cold = env | {"XDG_CACHE_HOME": str(project.root / "no-cache-either")}
    out, heavy = _probe(project, cold, "orders", "show", "1")
    assert "Article 3" in out
    assert heavy == ["yaml"]
    out, heavy = _probe(project, cold, "orders", "show", "1")
    assert "Article 3" in out
    assert heavy == []


def test_a_config_that_does_not_validate_is_refused_before_the_store_is_made(
    tmp_path: Path,
) -> None:
    """Where the store is read alone, a problem elsewhere in the config is still refused,
    naming it, and the store it names is neither opened nor made."""
    config = tmp_path / "gateway.yaml"
    config.write_text("store: {url: 'sqlite:///made.db'}\nnot_a_key: 1\n", encoding="utf-8")
    env = cli_env(XDG_CACHE_HOME=str(tmp_path / "cache"))
    done = cli("--config", config, "orders", "list", cwd=tmp_path, env=env)
    assert done.returncode == 2
    assert "not_a_key" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "made.db").exists()


NO_FORK = """\
import os, sys
del os.fork
from edi_gateway.cli import main

sys.exit(main(sys.argv[1:]))
"""


def test_where_there_is_no_fork_the_config_is_validated_in_line(tmp_path: Path) -> None:
    config = tmp_path / "gateway.yaml"
    config.write_text("store: {url: 'sqlite:///made.db'}\nnot_a_key: 1\n", encoding="utf-8")
    env = cli_env(XDG_CACHE_HOME=str(tmp_path / "cache"))
    done = _python(NO_FORK, "--config", str(config), "orders", "list", cwd=tmp_path, env=env)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "not_a_key" in done.stderr, done.stderr
    assert not (tmp_path / "made.db").exists()
    config.write_text("store: {url: 'sqlite:///made.db'}\n", encoding="utf-8")
    done = _python(NO_FORK, "--config", str(config), "orders", "list", cwd=tmp_path, env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert (tmp_path / "made.db").exists()


EXITING = """\
import atexit, gc, sys

atexit.register(lambda: print(f"FROZEN {{gc.get_freeze_count()}}", file=sys.stderr))
sys.argv[1:] = {words}
import runpy

runpy.run_module("edi_gateway.cli", run_name="__main__")
"""


@pytest.mark.parametrize(
    ("words", "code", "said"),
    [(("orders", "show", "1"), 0, "Article 3"), (("orders", "show", "999"), 1, "")],
    ids=["found", "not found"],
)
def test_the_program_exits_without_collecting_what_it_imported(
    project: Project, env: dict[str, str], words: tuple[str, ...], code: int, said: str
) -> None:
    """``python -m edi_gateway.cli`` (as the console script) runs ``cli.entry``: the command's
    output and exit code, then ``gc.freeze()`` before the interpreter's exit (its last
    collections walked every imported object); exit handlers still run."""
    argv = ["--config", str(project.config), *words]
    done = _python(EXITING.format(words=argv), cwd=project.root, env=env)
    assert done.returncode == code, done.stdout + done.stderr
    assert said in done.stdout
    frozen = [ln for ln in done.stderr.splitlines() if ln.startswith("FROZEN ")]
    assert frozen, done.stderr
    assert int(frozen[-1].removeprefix("FROZEN ")) > 10_000, frozen


def test_the_console_script_is_the_entry_that_freezes() -> None:
    from importlib.metadata import entry_points

    (script,) = entry_points(group="console_scripts", name="edi-gateway")
    assert script.value == "edi_gateway.cli:entry"


GARBAGE = """\
import contextlib, gc, io, sys
from edi_gateway.cli import main

with contextlib.redirect_stdout(io.StringIO()) as out:
    code = main(sys.argv[1:])
print(f"{code} {len(out.getvalue().splitlines())} {gc.collect()}")
"""


def test_what_a_read_only_command_leaves_to_collect_does_not_grow_with_its_rows(
    tmp_path: Path, env: dict[str, str]
) -> None:
    """Read-only commands pause the cycle collector (cli/common.py ``with_store``): sound only
    while their cyclic garbage is the imports' own, the same for 3 lines as for 300."""
    (tmp_path / "gateway.yaml").write_text(
        "store:\n  url: sqlite:///gateway.db\nintake:\n  unknown_partner: accept\n",
        encoding="utf-8",
    )
    for name, lines in (("PO-S", 3), ("PO-L", 300)):
        (tmp_path / f"{name}.xml").write_bytes(factory.order(name, factory.items(lines)))
    done = cli("ingest", tmp_path / "PO-S.xml", tmp_path / "PO-L.xml", cwd=tmp_path, env=env)
    assert done.returncode == 0, done.stdout + done.stderr

    def left(*words: str) -> tuple[int, int]:
        done = _python(GARBAGE, *words, cwd=tmp_path, env=env)
        code, printed, garbage = map(int, done.stdout.split())
        assert code == 0, done.stderr
        return printed, garbage

    for js in ((), ("--json",)):
        small, large = left("orders", "show", "PO-S", *js), left("orders", "show", "PO-L", *js)
        assert large[0] >= small[0] + 297  # the big order was shown, line by line
        assert large[1] <= small[1] + 30, (small, large)
