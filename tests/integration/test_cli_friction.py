"""A CLI without friction (issue 11, point 6), through the real console script."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from edi_gateway.cli import build_parser, main
from tests.integration.conftest import EXE, SAMPLES, Project, cli, cli_env

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Project]:
    """The samples, run once."""
    root = tmp_path_factory.mktemp("friction") / "deploy"
    assert cli("init", root, "--samples", SAMPLES).returncode == 0
    done = Project(root)
    assert done.run("run", "--once").returncode == 0
    yield done


def _failed(project: Project) -> dict[str, dict[str, Any]]:
    rows = project.json("messages", "list", "--state", "failed")
    return {r["filename"]: r for r in rows}


def test_version() -> None:
    done = cli("--version")
    assert done.returncode == 0 and done.stdout.startswith("edi-gateway 0.")


def _leaves(parser: argparse.ArgumentParser, path: str = "") -> Iterator[tuple[str, bool]]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helped = {a.dest for a in action._choices_actions if a.help}
            for name, child in action.choices.items():
                yield f"{path} {name}".strip(), name in helped
                yield from _leaves(child, f"{path} {name}")


def test_every_command_and_action_has_help() -> None:
    found = dict(_leaves(build_parser()))
    assert {"orders list", "messages dismiss", "config check", "partners list"} <= set(found)
    assert [name for name, helped in found.items() if not helped] == []


def test_orders_help_lists_its_actions() -> None:
    done = cli("orders", "--help")
    assert done.returncode == 0
    for action in ("list", "show", "note", "release", "cancel"):
        assert f"    {action} " in done.stdout, done.stdout


def test_global_options_after_the_subcommand(project: Project) -> None:
    args = build_parser().parse_args(["run", "--once", "--log-format", "json", "--config", "x"])
    assert (args.log_format, args.config) == ("json", "x")
    before = build_parser().parse_args(["--config", "y", "-v", "orders", "list"])
    assert (before.config, before.verbose, before.log_format) == ("y", True, None)
    done = cli("messages", "list", "--config", project.config, "-v", "--log-format", "json")
    assert done.returncode == 0 and "bad-xsd-invalid.xml" in done.stdout


def test_a_closed_pipe_exits_quietly(project: Project) -> None:
    read, write = os.pipe()
    os.close(read)  # the reader is gone before anything is written
    try:
        done = subprocess.run(
            [str(EXE), "--config", str(project.config), "messages", "list"],
            stdout=write,
            stderr=subprocess.PIPE,
            env=cli_env(),
            check=False,
        )
    finally:
        os.close(write)
    assert done.returncode == 141
    assert done.stderr == b""


@pytest.mark.parametrize(
    "words",
    [
        ("orders", "list", "--status", "bogus"),
        ("messages", "list", "--state", "bogus"),
        ("outbox", "list", "--state", "bogus"),
        ("messages", "list", "--limit", "0"),
    ],
)
def test_an_unknown_status_or_state_is_a_usage_error(project: Project, words: Any) -> None:
    done = project.run(*words)
    assert done.returncode == 2 and f"argument {words[2]}:" in done.stderr
    as_json = project.run(*words, "--json")
    assert as_json.returncode == 2
    assert json.loads(as_json.stdout)["error"]["code"] == "USAGE"


def test_status_in_any_case(project: Project) -> None:
    rows = project.json("orders", "list", "--status", "received")
    assert rows and {r["status"] for r in rows} == {"Received"}


def test_redrive_of_an_unknown_or_processed_message_fails(project: Project) -> None:
    unknown = project.run("messages", "redrive", "99999")
    assert unknown.returncode == 1 and "NOT_FOUND" in unknown.stderr
    processed = project.json("messages", "list", "--state", "processed", "--limit", "1")[0]
    refused = project.run("messages", "redrive", str(processed["id"]), "--json")
    assert refused.returncode == 1
    assert json.loads(refused.stdout)["error"]["code"] == "NOT_ALLOWED"
    show = project.run("messages", "show", "99999", "--json")
    assert show.returncode == 1
    assert json.loads(show.stdout) == {
        "error": {"code": "NOT_FOUND", "message": "there is no message 99999"}
    }


def test_limit_offset_and_more(project: Project) -> None:
    everything = project.json("messages", "list")
    first = project.run("messages", "list", "--limit", "2", "--json")
    rows = json.loads(first.stdout)
    assert [r["id"] for r in rows] == [r["id"] for r in everything[:2]]
    assert f"{len(everything) - 2} more (--offset 2)" in first.stderr
    text = project.run("messages", "list", "--limit", "2", "--offset", "2")
    assert f"{len(everything) - 4} more (--offset 4)" in text.stdout.splitlines()[-1]
    last = project.run("orders", "list", "--offset", "1")
    assert "more" not in last.stdout
    outbox = project.run("outbox", "list", "--limit", "1")
    assert outbox.returncode == 0


def test_one_filter_set(project: Project) -> None:
    xsd = project.json("messages", "list", "--code", "xsd_invalid")
    assert [r["filename"] for r in xsd] == ["bad-xsd-invalid.xml"]
    vastra = project.json("messages", "list", "--partner", "vastra")
    assert vastra and {r["partner"] for r in vastra} == {"vastra"}
    assert project.json("messages", "list", "--connector", "inbox")
    assert project.json("messages", "list", "--connector", "nowhere") == []
    assert project.json("messages", "list", "--until", "2000-01-01") == []
    assert len(project.json("orders", "list", "--since", "2000-01-01")) == 5
    order = project.json("orders", "list", "--search", "VS-2026-1001")[0]
    of_order = project.json("messages", "list", "--order", order["ref"])
    assert of_order and {r["order_id"] for r in of_order} == {order["id"]}
    assert project.json("outbox", "list", "--order", order["ref"], "--code", "X") == []


def test_one_json_shape(project: Project) -> None:
    row = project.json("messages", "list", "--partner", "vastra")[0]
    assert row["number"] == row["document_id"] and isinstance(row["id"], int)
    assert row["received_at"].endswith("Z") and len(row["received_at"]) == 20
    order = project.json("orders", "show", "VS-2026-1001")
    assert order["number"] == "VS-2026-1001"
    assert all(h["at"].endswith("Z") for h in order["history"])


def test_partners_list(project: Project) -> None:
    rows = project.json("partners", "list")
    assert {r["id"] for r in rows} == {"vastra", "rijnoever", "nordisk", "delftlab"}
    assert rows[0]["endpoint"].startswith("0088:")
    assert "vastra" in project.run("partners", "list").stdout


def test_messages_show_raw_is_the_stored_bytes(project: Project) -> None:
    name = "bad-not-well-formed.xml"
    message = _failed(project)[name]
    done = subprocess.run(
        [
            str(EXE),
            "--config",
            str(project.config),
            "messages",
            "show",
            str(message["id"]),
            "--raw",
        ],
        capture_output=True,
        env=cli_env(),
        check=False,
    )
    assert done.returncode == 0
    assert done.stdout == (SAMPLES / name).read_bytes()


def test_dismiss_a_failed_message(project: Project) -> None:
    message = _failed(project)["bad-unknown-partner.xml"]
    env = cli_env(EDI_GATEWAY_OPERATOR="alice")
    done = project.json("messages", "dismiss", str(message["id"]), "--reason", "test", env=env)
    assert done["state"] == "dismissed"
    shown = project.json("messages", "show", str(message["id"]))
    assert shown["state"] == "dismissed"
    event = shown["history"][-1]
    assert (event["event"], event["actor"]) == ("message.dismissed", "alice")
    assert "test" in event["detail"]
    assert "bad-unknown-partner.xml" not in _failed(project)
    again = project.run("messages", "dismiss", str(message["id"]), "--reason", "x")
    assert again.returncode == 1 and "NOT_ALLOWED" in again.stderr
    redrive = project.run("messages", "redrive", str(message["id"]))
    assert redrive.returncode == 1


def test_attach_an_orphan_by_hand(project: Project, tmp_path: Path) -> None:
    text = (SAMPLES / "orderresponse-nordisk-5521.xml").read_text(encoding="utf-8")
    text = text.replace("NV-OR-2026-5521", "NV-OR-ORPHAN").replace("VS-2026-1001", "VS-NONE-9")
    orphan_file = tmp_path / "orphan.xml"
    orphan_file.write_text(text, encoding="utf-8")
    assert project.run("ingest", orphan_file).returncode == 0
    orphan = project.json("messages", "list", "--state", "orphan")[0]
    env = cli_env(EDI_GATEWAY_OPERATOR="bob")
    done = project.json("messages", "attach", str(orphan["id"]), "VS-2026-1002", env=env)
    assert (done["state"], done["number"]) == ("processed", "VS-2026-1002")
    order = project.json("orders", "show", "VS-2026-1002")
    assert "NV-OR-ORPHAN" in {d["number"] for d in order["documents"]}
    assert any(h["actor"] == "bob" and h["event"] == "document.attached" for h in order["history"])
    shown = project.json("messages", "show", str(orphan["id"]))
    assert shown["history"][-1]["event"] == "message.attached"
    again = project.run("messages", "attach", str(orphan["id"]), "VS-2026-1002")
    assert again.returncode == 1 and "NOT_ALLOWED" in again.stderr


BAD_CONFIG = """\
partners:
  - id: one
    name: One
    role: buyer
    endpoint: {scheme: "0088", value: "7300010000002"}
  - id: two
    name: Two
    role: buyer
    endpoint: {scheme: 0060, value: "123456789"}
  - id: three
    name: Three
    role: buyer
    endpoint: {scheme: "0001", value: "12 34"}
connectors: []
store:
  url: postgresql+psycopg://gw:s3cret@db.example/gateway
"""


def test_config_check_lists_every_problem_with_its_line(tmp_path: Path) -> None:
    config = tmp_path / "gateway.yaml"
    config.write_text(BAD_CONFIG, encoding="utf-8")
    done = cli("config", "check", "--config", config, "--json")
    assert done.returncode == 2
    problems: dict[int, str] = {}
    for problem in json.loads(done.stdout)["problems"]:
        problems[problem["line"]] = problems.get(problem["line"], "") + problem["message"]
    assert "check digit should be 1" in problems[5]
    assert "octal number 48" in problems[9] and "'0060'" in problems[9]
    assert "not an ISO 6523 ICD" in problems[13] and "whitespace" in problems[13]
    assert "password" in problems[16] and "s3cret" not in problems[16]
    text = cli("config", "check", "--config", config)
    assert text.returncode == 2 and f"{config}:5: " in text.stdout
    assert "s3cret" not in text.stdout + text.stderr


def test_store_password_as_a_secret_reference(tmp_path: Path) -> None:
    from edi_gateway.config import load_config

    config = tmp_path / "gateway.yaml"
    config.write_text(
        "partners: []\nconnectors: []\nstore:\n  url: postgresql+psycopg://gw@db/gateway\n"
        "  password: {env: TEST_STORE_PASSWORD}\n",
        encoding="utf-8",
    )
    os.environ["TEST_STORE_PASSWORD"] = "p@ss"
    try:
        url = load_config(config).store.connect_url()
    finally:
        del os.environ["TEST_STORE_PASSWORD"]
    assert url == "postgresql+psycopg://gw:p%40ss@db/gateway"


def test_an_unreachable_store_is_one_line(tmp_path: Path, capsys: Any) -> None:
    root = tmp_path / "p"
    assert cli("init", root).returncode == 0
    config = root / "gateway.yaml"
    text = config.read_text(encoding="utf-8")
    config.write_text(
        text.replace("sqlite:///gateway.db", "sqlite:////nonexistent/dir/gw.db"), encoding="utf-8"
    )
    assert "nonexistent" in config.read_text(encoding="utf-8")
    assert main(["--config", str(config), "orders", "list"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "STORE_UNAVAILABLE" in err


def test_the_hints_init_prints_work(tmp_path: Path) -> None:
    done = cli("init", tmp_path / "demo", "--samples", SAMPLES)
    hints = [line.split(": ", 1)[1] for line in done.stdout.splitlines()[1:]]
    assert len(hints) == 2
    for hint in hints:
        words = hint.split()
        assert words[0] == "edi-gateway"
        ran = cli(*words[1:])
        assert ran.returncode == 0, (hint, ran.stdout, ran.stderr)
