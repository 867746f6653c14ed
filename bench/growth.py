"""Growth benchmark: is intake, and are the lists, as fast in a full store as in an empty one?

    python bench/growth.py [--sizes 0,10000,50000] [--orders 1000] [--repeat 3]
                           [--backends sqlite,postgresql] [--json]

Per backend, stores already holding each of ``--sizes`` orders are made once, through the real
pipeline: ``edi-gateway ingest`` over folders of ``tests/factory.py`` orders (3 lines each, two
buyers, one file in 100 not XML so ``messages list --state failed`` has rows), in chunks,
snapshotting the store at each size (SQLite: a copy of the file; PostgreSQL: a template
database). Then, per repetition and size, interleaved so drift on the machine hits every size
alike, a fresh copy of the snapshot gets:

* ``edi-gateway ingest`` of ``--orders`` new orders (12 detailed lines, as bench/intake.py):
  one whole child process, start-up included; the per-order cost is its wall time / orders;
* each list (``orders list`` with every filter and ``--search``, ``orders show``,
  ``messages list --state failed``, ``messages show``), one whole child process each.

Printed per backend and size: the median of each, and its ratio to the empty store (the floor,
measured in the same run). Targets (issue 12 point 2): per-order intake at 50,000 within 1.1x
of the empty store; every list within 1.2x. Exit 0 whatever the figures; 1 when something broke
(a child failed, or the store does not hold what it should).

The helpers that spawn and time a child are bench/intake.py's, imported, not copied.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import create_engine, text

sys.path.insert(0, str(Path(__file__).resolve().parent))
from intake import (  # bench/ is not a package: its sibling, by path
    GATEWAY_YAML,
    REPO,
    BenchError,
    environment,
    gateway_executable,
    run_child,
    write_orders,
)

sys.path.insert(0, str(REPO))
INTAKE_TARGET, LIST_TARGET = 1.1, 1.2
SEED_LINES, SEED_CHUNK, BROKEN_EVERY = 3, 5000, 100
OTHER_BUYER = "7300010000025"  # a second buyer, so --partner selects half the seeds
CONFIG = (
    GATEWAY_YAML
    + f"""\
  - id: bench-buyer-b
    name: Buyer B AB
    role: buyer
    endpoint: {{scheme: "0088", value: "{OTHER_BUYER}"}}
"""
)


def lists(last: str) -> dict[str, list[str]]:
    """What is timed after the ingest: name -> CLI arguments. ``last`` is the reference of an
    order of the measured batch (``orders show``)."""
    page = ["--limit", "50"]
    return {
        "orders list": ["orders", "list", *page],
        "--status": ["orders", "list", "--status", "Received", *page],
        "--status (none)": ["orders", "list", "--status", "Shipped", *page],
        "--partner": ["orders", "list", "--partner", "bench-buyer-b", *page],
        "--since/--until": [
            "orders",
            "list",
            "--since",
            "2026-01-01",
            "--until",
            "2099-01-01",
            *page,
        ],
        "--type": ["orders", "list", "--type", "blanket", *page],
        "--attention": ["orders", "list", "--attention", *page],
        "--needs": ["orders", "list", "--needs", "despatch", *page],
        "--needs invoice": ["orders", "list", "--needs", "invoice", *page],  # its partial index
        "--overdue": ["orders", "list", "--overdue", *page],
        "--order": ["orders", "list", "--order", last, *page],
        "--search number": ["orders", "list", "--search", "PO-000777", *page],
        "--search item": ["orders", "list", "--search", "NOPE-ITEM-42", *page],
        "orders show": ["orders", "show", last],
        "messages --failed": ["messages", "list", "--state", "failed", *page],
        "messages show": ["messages", "show", "1"],
    }


class Backend:
    """Where the stores live: a folder of SQLite files, or one private PostgreSQL server."""

    name: str

    def __init__(self, work: Path) -> None:
        self.work = work
        self.made = 0

    def fresh(self) -> str:
        """The URL of a new, empty store."""
        raise NotImplementedError

    def snapshot(self, url: str, size: int) -> None:
        """Keep the store at ``url`` as it is now, as the snapshot for ``size``."""
        raise NotImplementedError

    def copy(self, size: int) -> str:
        """A new store, a copy of the snapshot for ``size``; its URL."""
        raise NotImplementedError

    def drop(self, url: str) -> None:
        """Remove a store made by :meth:`copy` or :meth:`fresh`."""
        raise NotImplementedError

    def counts(self, url: str) -> tuple[dict[str, int], int]:
        """Messages by state, and orders."""
        engine = create_engine(url)
        try:
            with engine.connect() as conn:
                rows = conn.execute(text("SELECT state, count(*) FROM messages GROUP BY state"))
                states = {str(s): int(n) for s, n in rows}
                orders = int(conn.execute(text("SELECT count(*) FROM orders")).scalar() or 0)
        finally:
            engine.dispose()
        return states, orders


class SQLite(Backend):
    name = "sqlite"

    def _file(self, url: str) -> Path:
        return Path(url.removeprefix("sqlite:///"))

    def fresh(self) -> str:
        self.made += 1
        return f"sqlite:///{self.work / f'store-{self.made}.db'}"

    def snapshot(self, url: str, size: int) -> None:
        # every process has closed it: SQLite checkpointed its WAL into the file
        shutil.copyfile(self._file(url), self.work / f"snapshot-{size}.db")

    def copy(self, size: int) -> str:
        url = self.fresh()
        shutil.copyfile(self.work / f"snapshot-{size}.db", self._file(url))
        # on disk before the clock starts: else the ingest's first fsyncs (synchronous=FULL)
        # write out the copy's dirty pages too, hundreds of MB for the larger stores, which a
        # store in use never has
        with self._file(url).open("rb") as copied:
            os.fsync(copied.fileno())
        return url

    def drop(self, url: str) -> None:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{self._file(url)}{suffix}").unlink(missing_ok=True)


class PostgreSQL(Backend):
    name = "postgresql"

    def __init__(self, work: Path, server: str) -> None:
        super().__init__(work)
        self.server = server
        self.admin = create_engine(f"{server}/postgres", isolation_level="AUTOCOMMIT")

    def _run(self, sql: str) -> None:
        with self.admin.connect() as conn:
            conn.execute(text(sql))

    def fresh(self) -> str:
        self.made += 1
        self._run(f'CREATE DATABASE "store{self.made}"')
        return f"{self.server}/store{self.made}"

    def snapshot(self, url: str, size: int) -> None:
        engine = create_engine(url, isolation_level="AUTOCOMMIT")
        with engine.connect() as conn:  # what autovacuum does to a store in use: statistics
            conn.execute(text("ANALYZE"))
        engine.dispose()
        name = url.rsplit("/", 1)[1]
        self._run(f'CREATE DATABASE "snapshot{size}" TEMPLATE "{name}" STRATEGY FILE_COPY')

    def copy(self, size: int) -> str:
        self.made += 1
        self._run(
            f'CREATE DATABASE "store{self.made}" TEMPLATE "snapshot{size}" STRATEGY FILE_COPY'
        )
        return f"{self.server}/store{self.made}"

    def drop(self, url: str) -> None:
        self._run(f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}" WITH (FORCE)')


class Growth:
    """Seeds the stores, then times the ingest and the lists on copies of them."""

    def __init__(self, work: Path, backend: Backend, args: argparse.Namespace) -> None:
        self.work, self.backend, self.args = work, backend, args
        self.gateway = gateway_executable()
        self.runs = 0

    def cli(self, url: str, *argv: str, name: str) -> tuple[float, float]:
        """One whole ``edi-gateway`` child process on the store at ``url``: its wall time
        and its CPU time (user + system, from the children's rusage around it: ``run_child``
        reaps exactly this child; a database server's own CPU is not in it)."""
        self.runs += 1
        home = self.work / f"run-{self.runs}"
        home.mkdir()
        config = home / "gateway.yaml"
        config.write_text(CONFIG.replace("sqlite:///gateway.db", url), encoding="utf-8")
        log = home / f"{name.replace(' ', '_').replace('/', '_')}.log"
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        seconds = run_child([str(self.gateway), "--config", str(config), *argv], log).seconds
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        shutil.rmtree(home)
        cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        return seconds, cpu

    def untimed(self, url: str, *argv: str) -> None:
        """A child process whose exit status 1 (some messages failed) is expected; what it
        did is checked by counting afterwards."""
        home = self.work / "untimed"
        home.mkdir()
        config = home / "gateway.yaml"
        config.write_text(CONFIG.replace("sqlite:///gateway.db", url), encoding="utf-8")
        cmd = [str(self.gateway), "--config", str(config), *argv]
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
        shutil.rmtree(home)
        if done.returncode not in (0, 1):
            raise BenchError(f"{' '.join(argv)} exited {done.returncode}: {done.stderr[-2000:]}")

    def seed(self, sizes: list[int]) -> None:
        """Snapshots holding each size, made by ingesting seed orders in chunks."""
        from tests.factory import items, order

        url = self.backend.fresh()
        self.untimed(url, "orders", "list")  # creates the schema, outside any timing
        held = 0
        body = items(SEED_LINES)
        for size in sorted(sizes):
            while held < size:
                folder = self.work / "seed"
                folder.mkdir()
                upto = min(size, held + SEED_CHUNK)
                for n in range(held + 1, upto + 1):
                    if n % BROKEN_EVERY == 0:  # a failed message: not XML at all
                        payload = b"<Order>not UBL"
                    else:
                        buyer = OTHER_BUYER if n % 2 else "7300010000001"
                        payload = order(f"SEED-{n:07d}", body, buyer=buyer)
                    (folder / f"SEED-{n:07d}.xml").write_bytes(payload)
                self.untimed(url, "ingest", str(folder))  # exits 1: some seeds fail on purpose
                shutil.rmtree(folder)
                held = upto
            states, orders = self.backend.counts(url)
            expected_failed = size // BROKEN_EVERY
            if orders != size - expected_failed or states.get("failed", 0) != expected_failed:
                raise BenchError(f"seeding {size}: {orders} orders, messages {states}")
            self.backend.snapshot(url, size)
            print(
                f"  {self.backend.name}: store of {size:,} orders ready",
                file=sys.stderr,
                flush=True,
            )
        self.backend.drop(url)

    def measure(self, sizes: list[int], batch: Path) -> dict[int, dict[str, list[float]]]:
        timed: dict[int, dict[str, list[float]]] = {size: {} for size in sizes}
        commands = lists(f"bench-buyer:PO-{self.args.orders // 2:06d}")
        for rep in range(self.args.repeat):
            for size in sizes:  # interleaved: drift hits every size alike
                url = self.backend.copy(size)
                try:
                    took, cpu = self.cli(url, "ingest", str(batch), name="ingest")
                    self.check(url, size)
                    timed[size].setdefault("ingest", []).append(took / self.args.orders)
                    timed[size].setdefault("ingest CPU", []).append(cpu / self.args.orders)
                    for name, argv in commands.items():
                        # the best of --list-runs: a shared machine's spikes are not the store's
                        runs = [self.cli(url, *argv, name=name) for _ in range(self.args.list_runs)]
                        timed[size].setdefault(name, []).append(min(w for w, _ in runs))
                        cpu_name = f"{name} CPU"  # the child's own: steadier under load
                        timed[size].setdefault(cpu_name, []).append(min(c for _, c in runs))
                finally:
                    self.backend.drop(url)
            print(
                f"  {self.backend.name}: run {rep + 1} of {self.args.repeat} done",
                file=sys.stderr,
                flush=True,
            )
        return timed

    def check(self, url: str, size: int) -> None:
        states, orders = self.backend.counts(url)
        failed = size // BROKEN_EVERY
        wanted = {"processed": size - failed + self.args.orders} | (
            {"failed": failed} if failed else {}
        )
        if states != wanted or orders != size - failed + self.args.orders:
            raise BenchError(f"after ingest into {size:,}: messages {states}, {orders} orders")


@contextmanager
def backends(names: list[str], work: Path) -> Iterator[list[Backend]]:
    made: list[Backend] = []
    if "sqlite" in names:
        folder = work / "sqlite"
        folder.mkdir()
        made.append(SQLite(folder))
    if "postgresql" not in names:
        yield made
        return
    from tests.servers import postgresql

    base = Path(tempfile.mkdtemp(prefix="edi-growth-pg-"))  # the server's own (chowned)
    with postgresql(base) as server:
        folder = work / "pg-stores"
        folder.mkdir()
        backend = PostgreSQL(folder, server)
        try:
            yield [*made, backend]
        finally:
            backend.admin.dispose()
    shutil.rmtree(base, ignore_errors=True)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="0,10000,50000", help="orders already in the store")
    parser.add_argument("--orders", type=int, default=1000, help="orders ingested into each")
    parser.add_argument("--repeat", type=int, default=3, help="runs per measurement")
    parser.add_argument(
        "--list-runs", type=int, default=3, help="each list per run: the fastest counts"
    )
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args(argv)
    try:
        args.sizes = sorted({int(s) for s in args.sizes.split(",")})
    except ValueError:
        parser.error("--sizes: comma-separated numbers of orders, e.g. 0,10000,50000")
    if not args.sizes or args.sizes[0] != 0:
        parser.error("--sizes must include 0: the empty store every ratio is taken against")
    args.backends = [b.strip() for b in args.backends.split(",")]
    if not set(args.backends) <= {"sqlite", "postgresql"} or not args.backends:
        parser.error("--backends: sqlite, postgresql or both")
    if args.orders < 1 or args.repeat < 1 or args.list_runs < 1:
        parser.error("--orders, --repeat and --list-runs must be at least 1")
    return args


def summary(timed: dict[int, dict[str, list[float]]]) -> dict[str, dict[str, object]]:
    """Per measured thing: median per size and the ratio to the empty store."""
    out: dict[str, dict[str, object]] = {}
    for name in timed[0]:
        medians = {size: statistics.median(timed[size][name]) for size in timed}
        target = INTAKE_TARGET if name.startswith("ingest") else LIST_TARGET
        ratios = {size: medians[size] / medians[0] for size in timed}
        out[name] = {
            "median_s": {str(k): round(v, 5) for k, v in medians.items()},
            "ratio": {str(k): round(v, 3) for k, v in ratios.items()},
            "target": target,
            "verdict": "PASS" if all(r <= target for r in ratios.values()) else "MISS",
            "runs": {str(k): [round(x, 5) for x in v[name]] for k, v in timed.items()},
        }
    return out


def table(backend: str, sizes: list[int], rows: dict[str, dict[str, object]]) -> str:
    head = f"{backend:<24}" + "".join(f"{f'{s:,}':>18}" for s in sizes) + "  target  result"
    lines = [head, "-" * len(head)]
    for name, row in rows.items():
        medians, ratios = row["median_s"], row["ratio"]
        assert isinstance(medians, dict) and isinstance(ratios, dict)
        cells = "".join(f"{medians[str(s)] * 1000:>9.2f} {ratios[str(s)]:>6.2f}x  " for s in sizes)
        label = f"{name} ms/order" if name.startswith("ingest") else name
        lines.append(f"{label:<24}{cells}{row['target']:>5}x  {row['verdict']}")
    lines.append(
        "cells: median of the runs (ms per order for ingest, wall and the child's CPU; for the "
        "rest ms per whole process, the best of --list-runs each run) and ratio to the empty "
        "store"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = os.getloadavg()[0]  # 1-minute load average: the machine may be shared
    results: dict[str, dict[str, dict[str, object]]] = {}
    try:
        with tempfile.TemporaryDirectory(prefix="edi-growth-") as tmp:
            work = Path(tmp)
            batch = work / "batch"
            write_orders(batch, args.orders, 12, "PO")
            with backends(args.backends, work) as found:
                for backend in found:
                    growth = Growth(backend.work, backend, args)
                    growth.seed(args.sizes)
                    results[backend.name] = summary(growth.measure(args.sizes, batch))
    except BenchError as exc:
        print(f"bench/growth.py: BROKEN: {exc}", file=sys.stderr)
        return 1
    load = (started, os.getloadavg()[0])
    env = environment(args) | {"sizes": args.sizes, "orders": args.orders, "load": load}
    if args.json:
        json.dump({"environment": env, "backends": results}, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0
    print(
        f"edi-gateway growth benchmark, {env['date']}, Python {env['python']}, {env['cpus']} "
        f"CPUs, load {load[0]:.2f} at the start, {load[1]:.2f} at the end, {args.repeat} runs "
        f"each, {args.orders} orders ingested"
    )
    for name, rows in results.items():
        print()
        print(table(name, args.sizes, rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
