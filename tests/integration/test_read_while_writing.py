"""Read-only commands next to a gateway that is writing (SQLite): they read the last commit
at once, never waiting for the write lock (docs/adr/0041); a writing command still waits."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pytest

from tests import factory
from tests.integration.conftest import Project
from tests.integration.test_bulk_cli import GATEWAY_YAML

pytestmark = pytest.mark.integration


def test_read_only_commands_do_not_wait_for_a_writer(tmp_path: Path) -> None:
    root = tmp_path / "project"
    (root / "in").mkdir(parents=True)
    (root / "out").mkdir()
    (root / "gateway.yaml").write_text(GATEWAY_YAML, encoding="utf-8")
    (root / "in" / "PO-1.xml").write_bytes(factory.order("PO-1", factory.items(2)))
    project = Project(root)
    assert project.run("ingest", root / "in").returncode == 0
    [message] = project.json("messages", "list")
    writer = sqlite3.connect(root / "gateway.db", isolation_level=None)
    try:
        writer.execute("BEGIN IMMEDIATE")  # a daemon in the middle of a batch
        writer.execute("UPDATE messages SET attempts = attempts")
        for words in (
            ("orders", "list"),
            ("orders", "show", "PO-1"),
            ("messages", "list"),
            ("messages", "show", str(message["id"])),
            ("outbox", "list"),
            ("report", "kpi"),
        ):
            began = time.monotonic()
            done = project.run(*words, timeout=20)
            assert done.returncode == 0, (words, done.stderr)
            assert time.monotonic() - began < 15, words  # the busy timeout is 30 s
        assert "PO-1" in project.run("orders", "list").stdout
    finally:
        writer.rollback()
        writer.close()
