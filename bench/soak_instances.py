"""Soak of several gateways on one PostgreSQL store: kills, crash points, server restarts.

    python bench/soak_instances.py [--orders 3000] [--seed 8] [--crashes 40] [--kills 24]
                                   [--side 600] [--restarts 3] [--only NAME ...] [--keep]

The long version of ``tests/integration/test_instances_transports.py``, with the same world and
count (``tests/integration/chaos.py``): three ``edi-gateway run`` on one PostgreSQL store, orders
from three buyers arriving by folder, SFTP (OpenSSH sshd) and RabbitMQ, each answered at once
and forwarded at once, out by folder, SFTP and RabbitMQ. PostgreSQL, RabbitMQ and sshd are
private servers started here (``../shared/RECIPES.md``). Scenarios, each on a new database:

- ``chaos``: ``--orders`` orders in waves; instances killed with SIGKILL at random moments
  (``--kills``) and at the named crash points (after-claim, after-intake-commit, after-send,
  after-process, during-recovery), ``--crashes`` times in all;
- ``postgresql``: ``--side`` orders, PostgreSQL stopped and started ``--restarts`` times;
- ``rabbitmq``: ``--side`` orders, the RabbitMQ node restarted ``--restarts`` times;
- ``rolling``: ``--side`` orders, ``--restarts`` rolling restarts (SIGTERM, start, in turn).

After each: lost 0; stored twice 0; every input in exactly one terminal place; every order
answered and forwarded exactly once; no second file in the outbox folder or on the SFTP server;
AMQP copies only under the same message id, at most one per crash that can fall between a send
and its commit; no traceback in a gateway's log. Prints the figures of each scenario and the
totals (orders, kills by kind, lost, doubled, AMQP duplicates by message id, wall time); exit 0
when every promise held, 1 otherwise, listing what broke (the gateways' folders are then kept).
"""

from __future__ import annotations

import argparse
import random
import shutil
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.integration import chaos  # noqa: E402
from tests.integration.chaos import Counts, World  # noqa: E402

SCENARIOS = ("chaos", "postgresql", "rabbitmq", "rolling")
SECONDS = 3600.0  # a scenario that has not settled by then counts what is left as lost


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=3000, help="orders of the chaos scenario")
    parser.add_argument("--seed", type=int, default=8, help="seed of the random choices")
    parser.add_argument("--crashes", type=int, default=40, help="crash points reached, chaos")
    parser.add_argument("--kills", type=int, default=24, help="random SIGKILLs, chaos")
    parser.add_argument("--side", type=int, default=600, help="orders of each other scenario")
    parser.add_argument("--restarts", type=int, default=3, help="restarts of each server, rolls")
    parser.add_argument("--only", nargs="+", choices=SCENARIOS, help="run only these")
    parser.add_argument("--keep", action="store_true", help="keep the gateways' folders")
    return parser.parse_args(argv)


def scenarios(args: argparse.Namespace) -> dict[str, Callable[[World, random.Random], Counts]]:
    side, restarts = args.side, args.restarts
    return {
        "chaos": lambda world, rng: chaos.chaos(
            world,
            args.orders,
            rng,
            crashes=args.crashes,
            kills=args.kills,
            parts=max(6, args.orders // 25),
            seconds=SECONDS,
        ),
        "postgresql": lambda world, rng: chaos.restart_server(
            world, side, rng, "postgresql", restarts=restarts, seconds=SECONDS
        ),
        "rabbitmq": lambda world, rng: chaos.restart_server(
            world, side, rng, "rabbitmq", restarts=restarts, seconds=SECONDS
        ),
        "rolling": lambda world, rng: chaos.rolling_restart(
            world, side, rng, rounds=restarts, seconds=SECONDS
        ),
    }


def report(results: dict[str, Counts], seconds: float) -> int:
    events: Counter[str] = Counter()
    for counts in results.values():
        events.update(counts.events)
    print("\nsoak of three gateways on one PostgreSQL store (folder, SFTP, RabbitMQ)")
    for name, counts in results.items():
        print(f"  {name:<11} {counts.line()}")
    total = {
        "orders": sum(c.orders for c in results.values()),
        "inputs": sum(c.inputs for c in results.values()),
        "lost": sum(c.lost for c in results.values()),
        "doubled": sum(c.doubled for c in results.values()),
        "AMQP duplicates by message id": sum(c.amqp_copies for c in results.values()),
        "allowed": sum(c.copies_allowed for c in results.values()),
    }
    print("  total       " + ", ".join(f"{k} {v}" for k, v in total.items()))
    kinds = ", ".join(f"{k} {v}" for k, v in sorted(events.items()))
    print(f"  kills and restarts by kind: {kinds}")
    print(f"  wall time {seconds:.0f} s")
    broken = {name: c.breaches for name, c in results.items() if c.breaches}
    for name, breaches in broken.items():
        print(f"\nBROKEN in {name}:")
        for breach in breaches[:30]:
            print(f"  - {breach[:500]}")
    return 1 if broken else 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="edi-gateway-soak-"))
    started = time.monotonic()
    results: dict[str, Counts] = {}
    with ExitStack() as stack:
        servers = chaos.Servers(stack)
        for n, (name, run) in enumerate(scenarios(args).items()):
            if args.only and name not in args.only:
                continue
            world = World(work / name, servers)
            try:
                results[name] = run(world, random.Random(args.seed + n))
            finally:
                world.close()
            print(f"{name}: {results[name].line()}", flush=True)
    code = report(results, time.monotonic() - started)
    if code == 0 and not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    else:
        print(f"\nthe gateways' folders (logs, archives, outboxes) are in {work}")
    return code


if __name__ == "__main__":
    sys.exit(main())
