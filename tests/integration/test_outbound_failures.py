"""Outbound failures are first-class (issue 11, point 5): an environment problem gets a real code
(never INTERNAL_ERROR), `run --once` says what did not go and what to do, `outbox retry --now`
delivers at once after the fix, `/healthz` is degraded and `/metrics` counts the failing rows
while deliveries fail. Everything through the real console script and real file systems (a
64 KiB tmpfs for a full disk, remounted read-only for a read-only target)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import yaml

from tests.integration.conftest import (
    SAMPLES,
    Project,
    cli,
    metric_samples,
    start_daemon,
    stop_daemon,
)
from tests.integration.test_daemon_http import _free_port, _get, _wait_for
from tests.servers import unavailable

pytestmark = pytest.mark.integration


def _project(tmp_path: Path) -> Project:
    root = tmp_path / "deploy"
    done = cli("init", root, "--samples", SAMPLES)
    assert done.returncode == 0, done.stderr
    return Project(root)


def _rows(project: Project, *extra: str) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = project.json("outbox", "list", *extra)
    return rows


def test_unwritable_target_is_coded_summarised_and_retried_now(tmp_path: Path) -> None:
    project = _project(tmp_path)
    outbox = project.root / "outbox"
    shutil.rmtree(outbox, ignore_errors=True)
    outbox.write_text("a file where the outbound folder should be")

    done = project.run("run", "--once")
    assert done.returncode == 0, done.stderr
    assert "Outbox:   outbox:" in done.stdout, done.stdout
    assert "TARGET_UNWRITABLE: cannot write" in done.stdout
    assert "then `outbox retry --now`" in done.stdout  # the remedy of the code
    assert "INTERNAL_ERROR" not in done.stdout + done.stderr

    rows = _rows(project)
    assert rows and all(r["state"] == "pending" and r["attempts"] == 1 for r in rows)
    assert all(str(r["last_error"]).startswith("TARGET_UNWRITABLE: ") for r in rows)
    assert len(_rows(project, "--code", "TARGET_UNWRITABLE")) == len(rows)
    summary = project.json("run", "--once")
    assert summary["outbox"]["outbox"]["retrying"] == len(rows)
    assert summary["outbox"]["outbox"]["status"] == "failing"

    # A row waiting out its backoff long past its due time, with nobody delivering: overdue.
    from edi_gateway.outbound.outbox import delivery_report
    from edi_gateway.pipeline.history import now
    from edi_gateway.store.db import open_store

    store = open_store(f"sqlite:///{project.db}", migrate=False)
    try:
        with store.session() as session:
            later = delivery_report(
                session, ["outbox", "idle"], now() + timedelta(hours=3), grace=timedelta(minutes=1)
            )
    finally:
        store.close()
    assert later["outbox"].overdue == len(rows) and later["outbox"].failing
    assert later["idle"].pending == 0 and not later["idle"].failing

    # Dry run: says which, changes nothing.
    plan = project.json("outbox", "retry", "--now", "--dry-run")
    assert sorted(plan["would_retry"]) == sorted(r["id"] for r in rows)
    assert [r["attempts"] for r in _rows(project)] == [r["attempts"] for r in rows]

    # Usage mistakes are usage errors; an unknown row says so.
    assert project.run("outbox", "retry").returncode == 2
    unknown = project.run("outbox", "retry", "99999")
    assert unknown.returncode == 1 and "no pending or failed outbox row #99999" in unknown.stderr

    # One document must not go any more: withdrawn for good, with the reason in its history.
    gone = rows[-1]
    assert project.run("outbox", "withdraw", str(gone["id"])).returncode == 2  # no --reason
    withdrawn = project.json("outbox", "withdraw", str(gone["id"]), "--reason", "sent by mail")
    assert withdrawn == {"withdrawn": [gone["id"]]}
    again = project.run("outbox", "withdraw", str(gone["id"]), "--reason", "twice")
    assert (
        again.returncode == 1 and f"no pending or failed outbox row #{gone['id']}" in again.stderr
    )
    rest = [r for r in rows if r["id"] != gone["id"]]

    # The operator fixes the folder: everything goes now, in this command, each row once.
    outbox.unlink()
    outbox.mkdir()
    retried = project.json("outbox", "retry", "--now")
    assert sorted(r["id"] for r in retried["retried"]) == sorted(r["id"] for r in rest)
    assert {r["state"] for r in retried["retried"]} == {"sent"}
    assert len(list(outbox.iterdir())) == len(rest)
    states = {r["id"]: r["state"] for r in _rows(project)}
    assert states.pop(gone["id"]) == "withdrawn" and set(states.values()) == {"sent"}
    assert project.json("outbox", "retry", "--now")["retried"] == []
    assert "Outbox:" not in project.run("run", "--once").stdout
    order = next(r for r in rows if r["order_id"])
    history = project.json("orders", "show", str(order["order_id"]))["history"]
    assert any(h["event"] == "outbox.retried" for h in history)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 64 KiB tmpfs (root only; under CI=true a failed mount fails the test)."""
    mount = tmp_path / "small-disk"
    mount.mkdir()
    if os.geteuid() != 0:
        unavailable("mounting a tmpfs needs root")
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        unavailable(f"cannot mount a tmpfs: {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def _remount(mount: Path, mode: str) -> None:
    subprocess.run(["mount", "-o", f"remount,{mode}", str(mount)], check=True)


def test_full_disk_and_read_only_target_get_their_codes(tmp_path: Path, small_disk: Path) -> None:
    project = _project(tmp_path)
    data = yaml.safe_load(project.config.read_text(encoding="utf-8"))
    [out] = [c for c in data["connectors"] if c["name"] == "outbox"]
    out["path"] = str(small_disk / "out")
    project.config.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    (small_disk / "out").mkdir()
    filler = small_disk / "filler"
    with filler.open("wb", buffering=0) as handle:  # fill the disk to the last byte
        for size in (4096, 1):
            try:
                while handle.write(b"\0" * size):
                    pass
            except OSError:
                pass

    assert project.run("run", "--once").returncode == 0
    rows = _rows(project)
    assert rows and all(str(r["last_error"]).startswith("DISK_FULL: ") for r in rows), rows
    assert "No space left" in str(rows[0]["last_error"])

    filler.unlink()
    _remount(small_disk, "ro")
    assert project.run("outbox", "retry", "--now").returncode == 1  # still not delivered
    rows = _rows(project)
    assert all(str(r["last_error"]).startswith("TARGET_UNWRITABLE: ") for r in rows), rows
    assert "Read-only file system" in str(rows[0]["last_error"])

    _remount(small_disk, "rw")
    done = project.run("outbox", "retry", "--now")
    assert done.returncode == 0, done.stdout + done.stderr
    assert {r["state"] for r in _rows(project)} == {"sent"}
    assert len(list((small_disk / "out").iterdir())) == len(rows)


def test_health_is_degraded_and_metrics_count_while_deliveries_fail(tmp_path: Path) -> None:
    project = _project(tmp_path)
    outbox = project.root / "outbox"
    shutil.rmtree(outbox, ignore_errors=True)
    outbox.write_text("not a folder")
    port = _free_port()
    data = yaml.safe_load(project.config.read_text(encoding="utf-8"))
    data["daemon"] = {"http": {"host": "127.0.0.1", "port": port}, "outbox_every_seconds": 0.5}
    project.config.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    base = f"http://127.0.0.1:{port}"
    daemon = start_daemon(project)

    def health() -> dict[str, object]:
        found: dict[str, object] = json.loads(_get(f"{base}/healthz")[2])
        return found

    try:
        retrying = 'edi_outbox_retrying{connector="outbox"}'

        def failing() -> bool:  # the gauges follow the flush that made the health say so
            gauges = metric_samples(_get(f"{base}/metrics")[2])
            return health()["deliveries"]["failing"] == ["outbox"] and gauges.get(retrying, 0) >= 1  # type: ignore[index]

        assert _wait_for(failing, 60), "deliveries never showed as failing"
        seen = health()
        samples = metric_samples(_get(f"{base}/metrics")[2])

        outbox.unlink()
        outbox.mkdir()
        fixed = project.run("outbox", "retry", "--now")

        def calm() -> bool:
            gauges = metric_samples(_get(f"{base}/metrics")[2])
            return health()["status"] == "ok" and gauges[retrying] == 0

        recovered = _wait_for(calm, 60)
    finally:
        _out, err = stop_daemon(daemon)
    assert daemon.returncode == 0, err[-3000:]

    assert seen["status"] == "degraded"
    entry = seen["deliveries"]["connectors"]["outbox"]  # type: ignore[index]
    assert entry["status"] == "failing" and entry["retrying"] >= 1 and entry["failed"] == 0
    assert entry["last_error"].startswith("TARGET_UNWRITABLE: ")
    assert samples['edi_outbox_retrying{connector="outbox"}'] >= 1
    assert samples['edi_outbox_failed{connector="outbox"}'] == 0
    assert all(c["up"] for c in seen["connectors"].values())  # type: ignore[attr-defined]

    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    assert recovered, "health and gauges never recovered after the fix"
    assert len(list(outbox.iterdir())) >= 1
