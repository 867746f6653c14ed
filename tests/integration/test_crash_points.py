"""kill -9 at every named crash point (src/edi_gateway/crashpoints.py), then restarts: nothing
lost, nothing stored or delivered twice.

A real project (`init --samples`): orders from `vastra` are answered at once (auto-acknowledge,
an Order Response into the outbox folder), orders from `rijnoever` are forwarded at once to
`delftlab` (two files each). `run --once` is killed with SIGKILL at a named point, again during
the recovery of what the first crash left claimed, then runs to the end. Afterwards: every input
file in exactly one of archive/ or error/, one message per file, every message terminal, every
order stored once, every expected outbound file delivered exactly once (no `-1` copy), no
temporary file and no claimed file left behind.
"""

from __future__ import annotations

import re
import signal
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.integration.conftest import SAMPLES, Project, cli_env, original_name

pytestmark = pytest.mark.integration

ORDERS = 30  # of each buyer
TERMINAL = {"processed", "failed", "orphan", "duplicate"}


def vastra(n: int) -> bytes:
    raw = (SAMPLES / "order-vastra-1001.xml").read_bytes()
    return raw.replace(b"<cbc:ID>VS-2026-1001</cbc:ID>", f"<cbc:ID>VS-CP-{n:03d}</cbc:ID>".encode())


def rijnoever(n: int) -> bytes:
    raw = (SAMPLES / "order-rijnoever-4500012873.xml").read_bytes()
    return raw.replace(b"<cbc:ID>4500012873</cbc:ID>", f"<cbc:ID>77{n:06d}</cbc:ID>".encode())


def fill(project: Project) -> dict[str, bytes]:
    for sample in project.inbox.glob("*.xml"):
        sample.unlink()  # the samples answer each other; this test counts its own files
    files = {f"v{n:03d}.xml": vastra(n) for n in range(ORDERS)}
    files |= {f"r{n:03d}.xml": rijnoever(n) for n in range(ORDERS)}
    files["bad.xml"] = vastra(999)[:500]
    for name, payload in files.items():
        project.drop(name, payload)
    return files


def crash(project: Project, point: str) -> None:
    done = project.run("run", "--once", env=cli_env(EDI_GATEWAY_CRASH_AT=point), timeout=300)
    assert done.returncode == -signal.SIGKILL, (point, done.returncode, done.stderr[-2000:])


def finish(project: Project) -> None:
    done = project.run("run", "--once", timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]


def check(project: Project, files: dict[str, bytes]) -> None:
    placed = Counter(
        original_name(p.name)
        for folder in (project.archive, project.error)
        for p in folder.iterdir()
    )
    assert placed == Counter(files.keys()), "every input in exactly one of archive/ or error/"
    assert not list((project.inbox / ".claimed").iterdir())
    assert not list(project.inbox.glob("*.xml"))
    messages = project.json("messages", "list")
    assert Counter(m["filename"] for m in messages) == Counter(files.keys()), "one message per file"
    assert {m["state"] for m in messages} <= TERMINAL
    failed = {m["filename"] for m in messages if m["state"] == "failed"}
    assert failed == {"bad.xml"}
    orders = project.json("orders", "list")
    numbers = Counter(o["order_number"] for o in orders)
    assert len(numbers) == 2 * ORDERS and set(numbers.values()) == {1}
    outbox = project.root / "outbox"
    names = [p.name for p in outbox.iterdir()]
    assert not [n for n in names if n.startswith(".")], f"temporary files left: {names}"
    assert not [n for n in names if re.search(r"-\d+\.xml$", n)], f"second copies: {names}"
    responses = Counter(n for n in names if n.startswith("OrderResponse-VS-CP-"))
    assert len(responses) == ORDERS
    forwarded = Counter(n for n in names if n.startswith("delftlab-77"))
    assert len(forwarded) == 2 * ORDERS
    rows = project.json("outbox", "list")
    assert Counter(r["state"] for r in rows)["sent"] == len(rows)


@pytest.mark.parametrize(
    "point",
    ["after-claim", "after-intake-commit", "after-process", "after-temp-write", "after-send"],
)
def test_kill_at_a_named_point_then_during_recovery(
    make_project: Callable[..., Project], point: str
) -> None:
    project = make_project(SAMPLES)
    files = fill(project)
    crash(project, point)
    if point in ("after-claim", "after-intake-commit", "after-process"):
        assert list((project.inbox / ".claimed").iterdir()), "the crash left claimed files"
        crash(project, "during-recovery")
    finish(project)
    finish(project)  # a second run finds nothing left to do and changes nothing
    check(project, files)


def test_a_temporary_file_left_by_a_crash_is_removed_and_delivered_once(
    make_project: Callable[..., Project], tmp_path: Path
) -> None:
    project = make_project(SAMPLES)
    files = fill(project)
    crash(project, "after-temp-write")
    outbox = project.root / "outbox"
    assert [p.name for p in outbox.iterdir() if p.name.endswith(".tmp")], "a temp was left"
    finish(project)
    check(project, files)


def test_a_crash_after_a_send_leaves_only_that_row_to_send_again(
    make_project: Callable[..., Project],
) -> None:
    """Each delivered row commits on its own: killed after the 5th send, the 4 rows before it
    are already `sent`, so a transport that cannot recognise a re-send gets at most one."""
    project = make_project(SAMPLES)
    files = fill(project)
    crash(project, "after-send@5")
    rows = project.json("outbox", "list")
    assert Counter(r["state"] for r in rows)["sent"] == 4
    finish(project)
    check(project, files)
