"""Three `edi-gateway run` on one PostgreSQL store, orders arriving by folder, SFTP (OpenSSH
sshd) and RabbitMQ, answered at once and forwarded at once to folder, SFTP and RabbitMQ outputs
(tests/integration/chaos.py, "several gateways over folder, SFTP and RabbitMQ").

Disturbed four ways, each counted afterwards: SIGKILL at random moments and at the named crash
points; PostgreSQL restarted mid-run; RabbitMQ restarted mid-run; a rolling restart (SIGTERM,
start again, in turn). After each: lost 0; stored twice 0; every input in exactly one terminal
place; every order answered and forwarded exactly once; no second file in the outbox folder or
on the SFTP server; over AMQP, copies only under the same message id and no more than the
crashes that can fall between a send and its commit; no traceback in a daemon's log.

The servers are private to this module (the PostgreSQL and RabbitMQ restarts touch no other
test's); each test has a new database, emptied SFTP folders and queues. The short version for
the suite; `make soak` runs the long one (bench/soak_instances.py).
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from tests.integration.chaos import (
    NAMED_POINTS,
    Counts,
    Servers,
    World,
    chaos,
    restart_server,
    rolling_restart,
)

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def servers() -> Iterator[Servers]:
    with ExitStack() as stack:
        yield Servers(stack)


@pytest.fixture
def world(servers: Servers, tmp_path: Path) -> Iterator[World]:
    made = World(tmp_path / "gateway", servers)
    try:
        yield made
    finally:
        made.close()


def nothing_lost_or_doubled(counts: Counts) -> None:
    print(counts.line())
    assert counts.breaches == [], f"{counts.line()}\n" + "\n".join(counts.breaches[:20])
    assert counts.lost == 0 and counts.doubled == 0, counts.line()


def test_killed_at_random_and_at_every_named_crash_point(world: World) -> None:
    counts = chaos(world, orders=120, rng=random.Random(8))
    nothing_lost_or_doubled(counts)
    reached = {point: counts.events[point] for point in NAMED_POINTS}
    assert all(reached.values()), f"named crash points reached: {reached}"


def test_postgresql_restarted_mid_run(world: World) -> None:
    counts = restart_server(world, orders=60, rng=random.Random(9), server="postgresql")
    nothing_lost_or_doubled(counts)
    assert counts.events["postgresql restart"] == 1


def test_rabbitmq_restarted_mid_run(world: World) -> None:
    counts = restart_server(world, orders=60, rng=random.Random(10), server="rabbitmq")
    nothing_lost_or_doubled(counts)
    assert counts.events["rabbitmq restart"] == 1


def test_rolling_restart(world: World) -> None:
    counts = rolling_restart(world, orders=60, rng=random.Random(11))
    nothing_lost_or_doubled(counts)
    assert counts.events["SIGTERM"] == 3
