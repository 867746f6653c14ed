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

from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.integration.chaos import check, crash, fill, finish
from tests.integration.conftest import SAMPLES, Project

pytestmark = pytest.mark.integration


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
