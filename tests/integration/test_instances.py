"""Three `edi-gateway run` on one PostgreSQL store and one folder inbox, killed with SIGKILL at
random moments and at named crash points, restarted, then stopped: nothing lost, nothing stored,
answered, forwarded or delivered twice (tests/integration/chaos.py counts).

The same over folder, SFTP and RabbitMQ, with PostgreSQL and RabbitMQ restarts and a rolling
restart: test_instances_transports.py; `make soak` runs the long one (bench/soak_instances.py).
"""

from __future__ import annotations

import random
import signal
import time
from collections.abc import Callable
from typing import Any

import pytest
import yaml

from tests.integration.chaos import Instance, check, fill, finish
from tests.integration.conftest import SAMPLES, Project

pytestmark = pytest.mark.integration

POINTS = ["after-claim", "after-intake-commit", "after-process", "after-send@3"]


def shared_store(project: Project, url: str) -> None:
    data: dict[str, Any] = yaml.safe_load(project.config.read_text())
    data["store"] = {"url": url}
    data["intake"]["batch_size"] = 20
    data.setdefault("daemon", {})["lease_seconds"] = 5
    data["daemon"]["outbox_every_seconds"] = 1
    for conn in data["connectors"]:
        if conn.get("direction") == "in":
            conn["every_seconds"] = 1
    project.config.write_text(yaml.safe_dump(data, allow_unicode=True))


def settled(project: Project) -> bool:
    if list(project.inbox.glob("*.xml")) or list((project.inbox / ".claimed").iterdir()):
        return False
    rows = project.json("outbox", "list")
    return bool(rows) and all(r["state"] == "sent" for r in rows)


def crash_point(rng: random.Random) -> str:
    """A named point and the how-many-th time it is reached (per process) to die there."""
    point = rng.choice(POINTS)
    return f"{point}@{rng.randint(1, 12 if point == 'after-send' else 3)}"


def test_three_instances_killed_at_random_and_at_crash_points_lose_and_double_nothing(
    make_project: Callable[..., Project], postgres_url: str
) -> None:
    """Each instance starts with a named crash point (whichever owns the inbox reaches the
    intake ones, any the delivery one); one that died there starts again with another, while
    others are killed with SIGKILL at random moments, until the work is done."""
    rng = random.Random(8)
    project = make_project(SAMPLES)
    shared_store(project, postgres_url)
    files = fill(project, orders=100)
    instances = [Instance(project, n) for n in range(3)]
    for instance in instances:
        instance.start(crash_point(rng))
    deadline = time.monotonic() + 300
    crashes = kills = 0
    try:
        while not settled(project):
            assert time.monotonic() < deadline, [i.log() for i in instances]
            for instance in instances:
                if instance.died():  # it reached its crash point
                    assert instance.process is not None
                    assert instance.process.returncode == -signal.SIGKILL, instance.log()
                    crashes += 1
                    instance.start(crash_point(rng) if crashes < 6 else None)
            if kills < 3 and rng.random() < 0.2:
                rng.choice(instances).kill()
                kills += 1
            time.sleep(rng.uniform(0.2, 1.0))
    finally:
        codes = [i.stop() for i in instances]
    assert crashes >= 2, "named crash points were reached"
    assert all(code in (0, -signal.SIGKILL) for code in codes), [i.log() for i in instances]
    finish(project)
    check(project, files, orders=100)
    logs = "".join(i.logfile.read_text(errors="replace") for i in instances)
    assert "Traceback" not in logs, logs[-6000:]
