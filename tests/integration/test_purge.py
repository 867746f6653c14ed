"""``edi-gateway purge`` end to end (docs/adr/0037): the real console script on a store of
finished and open orders, killed with SIGKILL mid-purge (crashpoints.py), restored; and the
daemon's ``retention:``. On SQLite and PostgreSQL."""

from __future__ import annotations

import signal
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import update

from edi_gateway.app import Gateway
from edi_gateway.store import schema as s
from edi_gateway.store.db import Store
from tests.integration.conftest import EXE, cli, cli_env, cli_json
from tests.unit.test_purge import BEFORE, dump, make_world, refs

pytestmark = pytest.mark.integration
ORDER_TABLES = ("order_lines", "order_keys", "documents", "forwards", "history", "outbox")


@pytest.fixture
def world(store: Store, tmp_path: Path) -> Gateway:
    return make_world(store, tmp_path)


def configure(tmp_path: Path, url: str, **extra: Any) -> Path:
    path = tmp_path / "gateway.yaml"
    path.write_text(yaml.safe_dump({"store": {"url": url}, **extra}))
    return path


def purge(config: Path, *args: str | Path, **kwargs: Any) -> Any:
    return cli_json("--config", config, "purge", *args, **kwargs)


def test_dry_run_purge_history_and_restore_from_the_cli(
    world: Gateway, tmp_path: Path, database_url: str
) -> None:
    store = world.store
    config = configure(tmp_path, database_url)
    before = dump(store)
    when = BEFORE.isoformat()
    dry = purge(config, "--before", when, "--dry-run")
    assert dry["dry_run"] is True and dry["counts"]["orders"] == 2 and dump(store) == before
    refused = purge(config, "--before", when, ok_codes=(1, 2))  # where would the archive go?
    assert refused["error"]["code"] == "USAGE" and dump(store) == before
    future = purge(config, "--before", "2999-01-01", "--no-archive", ok_codes=(1, 2))
    assert future["error"]["code"] == "USAGE"
    done = purge(config, "--before", when, "--archive-dir", tmp_path / "archive")
    assert done["counts"] == dry["counts"] and refs(store) == ["PO-3"]
    [run] = purge(config, "history")
    assert run["state"] == "done" and run["actor"].startswith("cli ")
    assert run["archive"] == done["archive"] and run["archive_sha256"] == done["archive_sha256"]
    text = cli("--config", config, "purge", "history").stdout
    assert f"#{run['id']} done" in text and done["archive_sha256"] in text
    back = purge(config, "restore", done["archive"])
    assert back["restored"] == done["counts"] and dump(store) == before


def owned(rows: dict[str, list[tuple[Any, ...]]], table: str, order_id: int) -> int:
    column = [c.name for c in s.metadata.tables[table].columns].index("order_id")
    return sum(1 for r in rows[table] if r[column] == order_id)


def all_or_nothing(before: dict[str, Any], after: dict[str, Any]) -> set[int]:
    """The orders still there; each of them whole, each other one wholly gone."""
    kept = {r[0] for r in after["orders"]}
    for order_id in (r[0] for r in before["orders"]):
        for table in ORDER_TABLES:
            want = owned(before, table, order_id) if order_id in kept else 0
            assert owned(after, table, order_id) == want, (order_id, table)
    return kept


def kill_during(config: Path, point: str, archive: Path) -> None:
    done = cli(
        "--config",
        config,
        "purge",
        "--before",
        BEFORE.isoformat(),
        "--archive-dir",
        archive,
        "--batch-size",
        "1",
        env=cli_env(EDI_GATEWAY_CRASH_AT=point),
    )
    assert done.returncode == -signal.SIGKILL, done.stderr


def test_kill_9_mid_purge_leaves_whole_orders_and_a_restorable_archive(
    world: Gateway, tmp_path: Path, database_url: str
) -> None:
    store = world.store
    config = configure(tmp_path, database_url)
    before = dump(store)
    kill_during(config, "purge-before-commit@2", tmp_path / "archive")
    after = dump(store)
    assert all_or_nothing(before, after) == {r[0] for r in after["orders"]}
    assert len(after["orders"]) == len(before["orders"]) - 1  # batch 1 committed, 2 not
    [path] = (tmp_path / "archive").iterdir()
    assert len(path.read_text().splitlines()) == 3  # header, batch 1, batch 2 (never deleted)
    refused = purge(config, "--before", BEFORE.isoformat(), "--no-archive", ok_codes=(1, 2))
    assert refused["error"]["code"] == "PURGE_RUNNING"  # the dead purge's lease has not run out
    assert "until" in refused["error"]["message"]
    refused = purge(config, "restore", path, ok_codes=(1, 2))  # one purge or restore at a time
    assert refused["error"]["code"] == "PURGE_RUNNING"
    expire_lease(store)
    back = purge(config, "restore", path)
    assert back["skipped_batches"] == 1 and dump(store) == before
    done = purge(config, "--before", BEFORE.isoformat(), "--archive-dir", tmp_path / "again")
    assert done["counts"]["orders"] == 2
    first, second = purge(config, "history")[::-1]
    assert first["state"] == "interrupted" and first["archive_sha256"] is not None
    assert second["state"] == "done"


def test_kill_9_after_the_archive_write_deletes_nothing(
    world: Gateway, tmp_path: Path, database_url: str
) -> None:
    store = world.store
    config = configure(tmp_path, database_url)
    before = dump(store)
    kill_during(config, "purge-after-archive", tmp_path / "archive")
    assert dump(store) == before
    [path] = (tmp_path / "archive").iterdir()
    expire_lease(store)  # the dead purge's lease (a restore waits for it too)
    back = purge(config, "restore", path)
    assert back["restored"] == {} and back["skipped_batches"] == 1 and dump(store) == before


def expire_lease(store: Store) -> None:
    with store.connect() as conn:
        conn.execute(update(s.leases).where(s.leases.c.name == "purge").values(until=BEFORE))


def test_the_daemon_purges_on_its_retention_schedule(
    world: Gateway, tmp_path: Path, database_url: str
) -> None:
    import subprocess

    store = world.store
    retention = {"after_days": 30, "archive_dir": "kept"}
    config = configure(tmp_path, database_url, retention=retention)
    daemon = subprocess.Popen(
        [str(EXE), "--config", str(config), "run"],
        cwd=tmp_path,
        env=cli_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        found: list[dict[str, Any]] = []
        while time.monotonic() < deadline and not (found and found[0]["state"] == "done"):
            time.sleep(0.5)
            found = purge(config, "history")
    finally:
        daemon.send_signal(signal.SIGTERM)
        _out, err = daemon.communicate(timeout=30)
    assert found and found[0]["state"] == "done", err[-3000:]
    assert found[0]["actor"].startswith("daemon ") and found[0]["counts"]["orders"] == 2
    assert Path(found[0]["archive"]).parent == tmp_path / "kept"
    assert refs(store) == ["PO-3"]
    assert "retention: purge run" in err
