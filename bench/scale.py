"""Scale benchmark: 1, 2 and 3 `edi-gateway run` on one local PostgreSQL, same orders.

    python bench/scale.py [--orders 2000] [--inboxes 6] [--instances 1,2,3] [--repeat 1]
                          [--lines 12] [--json]

A private PostgreSQL server (``tests/servers.py``: initdb + pg_ctl in a temporary folder) and,
per instance count and repetition, a fresh database and project: ``--inboxes`` folder inbound
connectors (polled every 0.5 s), a buyer and a supplier to whom every order is forwarded at once
as UBL through an outbound folder (``forward: {bundle: none}``), and ``--orders`` distinct
orders of ``--lines`` lines (tests/factory.py) spread evenly over the inboxes. The gateways are
started first and left to share the connectors (leases, docs/adr/0018); then every file is
moved into its inbox at once and the clock runs until every message is ``processed`` and every
order's forward ``delivered``.

Printed per instance count: wall seconds, orders/s, the speed-up over one instance, and CPU
seconds per order spent by the gateways (``/proc/<pid>/stat`` of each ``run``) and by
PostgreSQL (the postmaster, its live backends, and what it reaped), over the timed window.
Target (issue 8): 2 instances >= 1.5x one on this 2-core machine. Exit 0 whatever the figures;
1 when something broke (a gateway died, work was lost or doubled, the run did not finish).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from sqlalchemy import Engine, create_engine, text

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
EXE = REPO / ".venv" / "bin" / "edi-gateway"
TICKS = os.sysconf("SC_CLK_TCK")
TARGET = 1.5  # two instances against one
FINISH_SECONDS = 900


@dataclass
class Run:
    """One timed run of N instances."""

    instances: int
    seconds: float
    gateway_cpu: float
    postgres_cpu: float
    orders: int
    owners: list[int] = field(default_factory=list)
    """How many connectors each instance polled at the start."""

    @property
    def rate(self) -> float:
        return self.orders / self.seconds


def config(root: Path, url: str, inboxes: int) -> str:
    from tests.factory import BUYER_GLN, SELLER_GLN

    connectors = "\n".join(
        f"  - {{name: in{n}, type: folder, direction: in, path: {root}/in{n}, every_seconds: 0.5}}"
        for n in range(inboxes)
    )
    return f"""\
# Written by bench/scale.py.
store:
  url: {url}
intake:
  max_size_mb: 64
  unknown_partner: reject
  batch_size: 100
daemon:
  lease_seconds: 6
  outbox_every_seconds: 0.5
  log_level: warning
partners:
  - id: buyer
    name: Buyer AB
    role: buyer
    endpoint: {{scheme: "0088", value: "{BUYER_GLN}"}}
    outbound: out
  - id: supplier
    name: Seller BV
    role: supplier
    endpoint: {{scheme: "0088", value: "{SELLER_GLN}"}}
    outbound: out
    forward: {{formats: [ubl], bundle: none}}
connectors:
{connectors}
  - {{name: out, type: folder, direction: out, path: {root}/out}}
"""


def write_orders(staging: Path, orders: int, lines: int, inboxes: int) -> None:
    from tests.factory import items, order

    body = items(lines)
    for n in range(orders):
        folder = staging / f"in{n % inboxes}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"PO-{n:06d}.xml").write_bytes(order(f"PO-{n:06d}", body))


def cpu_of(pid: int, children: bool = False) -> float:
    """CPU seconds of process ``pid`` (with ``children``: plus those it reaped)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except FileNotFoundError:
        return 0.0
    ticks = int(fields[11]) + int(fields[12])  # utime, stime
    if children:
        ticks += int(fields[13]) + int(fields[14])  # cutime, cstime
    return ticks / TICKS


def postgres_cpu(postmaster: int) -> float:
    """The server's CPU seconds: postmaster and what it reaped, plus its live children."""
    total = cpu_of(postmaster, children=True)
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parent = int(entry.joinpath("stat").read_text().rsplit(")", 1)[1].split()[1])
            except (FileNotFoundError, ProcessLookupError, IndexError):
                continue
            if parent == postmaster:
                total += cpu_of(int(entry.name))
    return total


def postmaster_pid(server_base: Path) -> int:
    return int((server_base / "data" / "postmaster.pid").read_text().split()[0])


def counts(engine: Engine) -> tuple[dict[str, int], dict[str, int], int, int]:
    """Messages and outbox rows by state, orders, forwards delivered."""
    with engine.connect() as conn:
        messages = dict(
            conn.execute(text("SELECT state, count(*) FROM messages GROUP BY state")).all()
        )
        outbox = dict(conn.execute(text("SELECT state, count(*) FROM outbox GROUP BY state")).all())
        orders = conn.execute(text("SELECT count(*) FROM orders")).scalar() or 0
        forwarded = conn.execute(
            text("SELECT count(*) FROM forwards WHERE state = 'delivered'")
        ).scalar()
    return messages, outbox, int(orders), int(forwarded or 0)


def owners(engine: Engine) -> dict[str, int]:
    """Gateway -> how many connectors it holds a current lease on."""
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT holder, count(*) FROM leases WHERE name LIKE 'connector:%' "
                "AND until > clock_timestamp() GROUP BY holder"
            )
        ).all()
    return {str(holder): int(n) for holder, n in rows}


def one_run(
    server: str, pg_base: Path, base: Path, n: int, args: argparse.Namespace, number: int
) -> Run:
    from tests.conftest import new_postgres_database

    url = new_postgres_database(server)
    engine = create_engine(url)  # the benchmark's own looks at the store, one pool per run
    root = Path(tempfile.mkdtemp(prefix=f"scale{n}-", dir=base))
    staging = root / "staging"
    write_orders(staging, args.orders, args.lines, args.inboxes)
    for k in range(args.inboxes):
        (root / f"in{k}").mkdir()
    (root / "gateway.yaml").write_text(config(root, url, args.inboxes))
    env = {**os.environ, "EDI_GATEWAY_OPERATOR": "bench"}
    init = subprocess.run(
        [str(EXE), "--config", str(root / "gateway.yaml"), "orders", "list"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )  # creates the schema before the gateways race for it
    if init.returncode != 0:
        raise SystemExit(f"could not open the store: {init.stderr}")
    gateways = [
        subprocess.Popen(
            [str(EXE), "--config", str(root / "gateway.yaml"), "run"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=(root / f"gateway{i}.log").open("w"),
        )
        for i in range(n)
    ]
    try:
        deadline = time.monotonic() + 60
        while True:  # until the connectors are shared out: each gateway holds its share
            held = owners(engine)
            share = -(-args.inboxes // n)
            shared = len(held) == n and sum(held.values()) == args.inboxes
            if shared and all(v <= share for v in held.values()):
                break
            if time.monotonic() > deadline:
                raise SystemExit(f"the gateways did not share the connectors: {held}")
            time.sleep(0.2)
        spread = sorted(held.values(), reverse=True)
        pm = postmaster_pid(pg_base)
        gw0 = sum(cpu_of(g.pid) for g in gateways)
        pg0 = postgres_cpu(pm)
        started = time.perf_counter()
        for k in range(args.inboxes):
            for file in sorted((staging / f"in{k}").iterdir()):
                file.rename(root / f"in{k}" / file.name)
        finish = time.monotonic() + FINISH_SECONDS
        while True:
            for g in gateways:
                if g.poll() is not None:
                    raise SystemExit(f"a gateway died: see {root}/gateway*.log")
            messages, outbox, orders, forwarded = counts(engine)
            if messages.get("processed", 0) == forwarded == args.orders:
                break  # every order processed, forwarded and its file delivered
            if time.monotonic() > finish:
                raise SystemExit(f"not finished: messages {messages}, outbox {outbox}")
            time.sleep(0.1)
        seconds = time.perf_counter() - started
        gw = sum(cpu_of(g.pid) for g in gateways) - gw0
        pg = postgres_cpu(pm) - pg0
    finally:
        for g in gateways:
            g.send_signal(signal.SIGTERM)
        for g in gateways:
            g.wait(timeout=120)
    messages, outbox, orders, forwarded = counts(engine)
    engine.dispose()
    delivered = len(list((root / "out").glob("*.xml")))
    if sum(messages.values()) != args.orders or orders != args.orders:
        raise SystemExit(f"lost or doubled: {messages}, {orders} orders")
    if delivered != args.orders or sum(outbox.values()) != args.orders:
        raise SystemExit(f"forwarded {delivered} files, {outbox} outbox rows for {args.orders}")
    shutil.rmtree(root, ignore_errors=True)
    print(
        f"  run {number}: {n} instance(s), connectors {spread}: {seconds:.2f} s, "
        f"gateways {gw:.1f} CPU s, PostgreSQL {pg:.1f} CPU s",
        flush=True,
    )
    return Run(n, seconds, gw, pg, args.orders, spread)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--orders", type=int, default=2000)
    parser.add_argument("--lines", type=int, default=12)
    parser.add_argument("--inboxes", type=int, default=6)
    parser.add_argument("--instances", default="1,2,3")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    from tests.servers import postgresql

    counts_wanted = [int(x) for x in args.instances.split(",")]
    base = Path(tempfile.mkdtemp(prefix="edi-gateway-scale-"))
    pg_base = Path(tempfile.mkdtemp(prefix="edi-gateway-scale-pg-"))  # the server's own
    runs: list[Run] = []
    try:
        with postgresql(pg_base) as server:
            number = 0
            for _ in range(args.repeat):  # interleaved: drift hits every count alike
                for n in counts_wanted:
                    number += 1
                    runs.append(one_run(server, pg_base, base, n, args, number))
    finally:
        shutil.rmtree(base, ignore_errors=True)
        shutil.rmtree(pg_base, ignore_errors=True)
    report(runs, counts_wanted, args)
    return 0


def report(runs: list[Run], wanted: list[int], args: argparse.Namespace) -> None:
    median = {n: statistics.median(r.seconds for r in runs if r.instances == n) for n in wanted}
    one = median.get(1)
    print(
        f"\n{args.orders} orders of {args.lines} lines over {args.inboxes} folder inboxes, "
        f"each forwarded as UBL; {os.cpu_count()} CPUs; median of {args.repeat}"
    )
    print(
        f"{'instances':>9} {'wall s':>8} {'orders/s':>9} {'speed-up':>9} "
        f"{'gw CPU ms/order':>16} {'pg CPU ms/order':>16}"
    )
    rows = []
    for n in wanted:
        mine = [r for r in runs if r.instances == n]
        gw = statistics.median(r.gateway_cpu for r in mine) / args.orders * 1000
        pg = statistics.median(r.postgres_cpu for r in mine) / args.orders * 1000
        speed = one / median[n] if one else float("nan")
        rows.append(
            {
                "instances": n,
                "seconds": median[n],
                "orders_per_s": args.orders / median[n],
                "speed_up": speed,
                "gateway_cpu_ms_per_order": gw,
                "postgres_cpu_ms_per_order": pg,
            }
        )
        print(
            f"{n:>9} {median[n]:>8.2f} {args.orders / median[n]:>9.1f} {speed:>8.2f}x "
            f"{gw:>16.2f} {pg:>16.2f}"
        )
    if one and 2 in median:
        got = one / median[2]
        verdict = "MEETS" if got >= TARGET else "MISSES"
        print(f"2 instances: {got:.2f}x one; target >= {TARGET}x: {verdict}")
    if args.json:
        print(json.dumps({"rows": rows, "runs": [asdict(r) for r in runs]}, indent=2))


if __name__ == "__main__":
    sys.exit(main())
