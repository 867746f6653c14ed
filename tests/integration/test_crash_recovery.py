"""`kill -9` during `edi-gateway run`, then a restart: every file in exactly one terminal state.

~400 small orders plus a few bad files go into the inbox of a real project; the daemon (not
``--once``) is SIGKILLed at several moments, then ``run --once`` restarts it. Afterwards each
original file is in exactly one of archive/ or error/, the store holds exactly one message per
file, every message is terminal and every good order exists exactly once.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from tests import factory
from tests.integration.conftest import EXE, Project, cli_env, original_name

pytestmark = pytest.mark.integration

GOOD_COUNT = 400
TERMINAL = {"processed", "failed", "orphan", "duplicate"}
BAD = {
    "bad-truncated.xml": (factory.order("CRASH-BAD-1")[:700], "NOT_WELL_FORMED"),
    "bad-empty.xml": (b"", "EMPTY"),
    "bad-xsd.xml": (factory.order("CRASH-BAD-3").replace(b"IssueDate", b"IsueDate"), "XSD_INVALID"),
    "bad-partner.xml": (factory.order("CRASH-BAD-4", buyer="7300099999991"), "UNKNOWN_PARTNER"),
    "bad-dtd.xml": (
        factory.order("CRASH-BAD-5").replace(b"?>\n", b'?>\n<!DOCTYPE Order [<!ENTITY a "b">]>', 1),
        "FORBIDDEN_DTD",
    ),
}


def good_name(n: int) -> str:
    return f"order-{n:04d}.xml"


def order_id(n: int) -> str:
    return f"CRASH-{n:04d}"


def _fill_inbox(project: Project) -> None:
    one_line = [factory.Item("1", "2", "3.50", "Plaster")]
    for n in range(GOOD_COUNT):
        project.drop(good_name(n), factory.order(order_id(n), one_line))
        if n % 80 == 40:
            name = sorted(BAD)[(n // 80) % len(BAD)]
            project.drop(name, BAD[name][0])
    for name, (payload, _) in BAD.items():
        if not (project.inbox / name).exists():
            project.drop(name, payload)


def _kill_when(proc: subprocess.Popen[bytes], project: Project, when: str, log: Path) -> None:
    """SIGKILL the daemon at ``when``: ``"0.3s"`` after start or ``"archived>=N"`` files."""
    deadline = time.monotonic() + 30
    if when.endswith("s"):
        time.sleep(float(when[:-1]))
    else:
        wanted = int(when.split(">=")[1])
        while time.monotonic() < deadline and proc.poll() is None:
            if project.archive.is_dir() and len(os.listdir(project.archive)) >= wanted:
                break
            time.sleep(0.005)
    assert proc.poll() is None, f"the daemon stopped by itself: {log.read_text()[-3000:]}"
    assert time.monotonic() < deadline, f"nothing archived in 30 s: {log.read_text()[-3000:]}"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)


@pytest.mark.parametrize("when", ["0.3s", "0.8s", "archived>=1", "archived>=200"])
def test_kill_9_then_restart_leaves_one_terminal_state_per_file(
    make_project: Callable[..., Project], when: str
) -> None:
    project = make_project(batch_size=20)
    _fill_inbox(project)
    expected_names = {good_name(n) for n in range(GOOD_COUNT)} | set(BAD)
    assert set(os.listdir(project.inbox)) == expected_names

    log = project.root / "daemon.log"
    with log.open("wb") as stderr:
        proc = subprocess.Popen(
            [str(EXE), "--config", str(project.config), "-v", "run"],
            cwd=project.root,
            env=cli_env(),
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
        try:
            _kill_when(proc, project, when, log)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    done_at_kill = len(os.listdir(project.archive)) + len(os.listdir(project.error))
    claimed = project.inbox / ".claimed"
    claimed_at_kill = len(os.listdir(claimed)) if claimed.is_dir() else 0
    print(f"kill at {when}: {done_at_kill} acknowledged, {claimed_at_kill} claimed")
    if when.startswith("archived"):  # the kill landed mid-stream
        assert 0 < done_at_kill < len(expected_names)
    restart = project.run("run", "--once")
    assert restart.returncode == 0, restart.stderr
    assert "Traceback" not in restart.stderr

    # Every original file is in exactly one of archive/ or error/; nothing waits anywhere.
    archived = Counter(original_name(n) for n in os.listdir(project.archive))
    errored = Counter(original_name(n) for n in os.listdir(project.error))
    assert os.listdir(project.inbox) == [".claimed"]
    assert os.listdir(project.inbox / ".claimed") == []
    assert archived + errored == Counter(dict.fromkeys(expected_names, 1))
    if set(errored) != set(BAD):  # say why good files were refused
        failed = project.json("messages", "list", "--state", "failed")
        why = {
            r["filename"]: (r["error_code"], r["id"]) for r in failed if r["filename"] not in BAD
        }
        first = project.json("messages", "show", str(next(iter(why.values()))[1])) if why else {}
        raise AssertionError(f"good files refused: {why}; first: {first.get('error_detail')}")

    # Exactly one message per file, all terminal, none a crash-made duplicate.
    rows = project.json("messages", "list")
    per_file = Counter(r["filename"] for r in rows)
    assert {name: n for name, n in per_file.items() if n != 1} == {}
    assert set(per_file) == expected_names
    states = Counter(r["state"] for r in rows)
    assert set(states) <= TERMINAL and states["duplicate"] == 0, states
    by_name = {r["filename"]: r for r in rows}
    assert {
        name: by_name[name]["error_code"] for name in BAD if by_name[name]["state"] == "failed"
    } == {name: code for name, (_, code) in BAD.items()}
    assert states == Counter(processed=GOOD_COUNT, failed=len(BAD))

    # Every good order exists exactly once.
    orders = project.json("orders", "list", "--search", "CRASH-")
    numbers = Counter(o["order_number"] for o in orders)
    assert numbers == Counter({order_id(n): 1 for n in range(GOOD_COUNT)})
