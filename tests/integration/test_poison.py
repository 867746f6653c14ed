"""A document that kills the gateway (docs/adr/0046): every process that reads it dies with
SIGKILL, as with a crash in a parser or the OOM killer. The gateway keeps every byte, processes
the others, sets that one aside after three cut-offs (PROCESSING_CUT_OFF) instead of dying at
every start, does not read the same bytes again, and processes it once redriven after the fix."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from tests import factory
from tests.integration.conftest import Project, cli_env
from tests.integration.test_bulk_cli import GATEWAY_YAML

pytestmark = pytest.mark.integration


def _states(project: Project) -> dict[str, tuple[str, str | None]]:
    """file name -> (state, error code) of every message."""
    return {
        m["filename"]: (m["state"], m.get("error_code"))
        for m in project.json("messages", "list", "--limit", "100")
    }


def test_a_document_that_kills_the_gateway_is_set_aside_and_the_rest_go(
    tmp_path: Path,
) -> None:
    root = tmp_path / "project"
    (root / "in").mkdir(parents=True)
    (root / "out").mkdir()
    (root / "gateway.yaml").write_text(GATEWAY_YAML, encoding="utf-8")
    names = ["PO-1.xml", "PO-2.xml", "poison.xml", "PO-4.xml", "PO-5.xml"]
    for n, name in enumerate(names, start=1):
        (root / "in" / name).write_bytes(factory.order(f"PO-{n}", factory.items(2)))
    project = Project(root)
    deadly = cli_env(EDI_GATEWAY_CRASH_AT="reading=poison.xml")

    first = project.run("ingest", root / "in", env=deadly)
    assert first.returncode == -signal.SIGKILL, first.stdout + first.stderr
    assert set(_states(project).values()) == {("received", None)}  # every byte kept first

    exits = []
    for _ in range(5):  # a supervisor restarting the gateway after each death
        done = project.run("run", "--once", env=deadly)
        exits.append(done.returncode)
        if done.returncode == 0:
            break
    # alone twice more (the others in between), then set aside unread
    assert exits == [-signal.SIGKILL, -signal.SIGKILL, 0], done.stderr
    states = _states(project)
    assert states.pop("poison.xml") == ("failed", "PROCESSING_CUT_OFF")
    assert set(states.values()) == {("processed", None)}
    [poison_id] = [
        str(m["id"])
        for m in project.json("messages", "list", "--limit", "100")
        if m["filename"] == "poison.xml"
    ]
    shown = project.json("messages", "show", poison_id)
    assert "cut off 3 times" in shown["error_detail"]
    orders = sorted(o["order_number"] for o in project.json("orders", "list"))
    assert orders == ["PO-1", "PO-2", "PO-4", "PO-5"]

    # the buyer sends the same bytes again: set aside at once, never read (it would kill)
    again = root / "again"
    again.mkdir()
    (again / "again.xml").write_bytes((root / "in" / "poison.xml").read_bytes())
    resent = project.run("ingest", again, env=cli_env(EDI_GATEWAY_CRASH_AT="reading=again.xml"))
    assert resent.returncode in (0, 1), resent.stdout + resent.stderr
    assert _states(project)["again.xml"] == ("failed", "PROCESSING_CUT_OFF")

    # redriven before the fix: the redrive dies with it (SIGKILL) and is undone with its
    # transaction; the message stays set aside as it was, not left `received` for the next
    # start to die on (the reset and the outcome commit together, docs/adr/0018)
    early = project.run("messages", "redrive", poison_id, env=deadly)
    assert early.returncode == -signal.SIGKILL, early.stdout + early.stderr
    assert _states(project)["poison.xml"] == ("failed", "PROCESSING_CUT_OFF")
    events = [e["event"] for e in project.json("messages", "show", poison_id)["history"]]
    assert "message.redriven" not in events, events
    assert project.run("run", "--once", env=deadly).returncode == 0

    # fixed (no more deaths): a redrive processes it like any other, and its copy as one
    assert project.run("messages", "redrive", poison_id).returncode == 0
    assert _states(project)["poison.xml"] == ("processed", None)
    assert len(project.json("orders", "list")) == 5
    assert project.run("messages", "redrive", "--state", "failed").returncode == 0
    assert _states(project)["again.xml"] == ("duplicate", "DUPLICATE")
