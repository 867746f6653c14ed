"""Console page times with many orders in the store (issue 11 point 1: under 300 ms at 50,000).

    python bench/console.py [--orders 50000] [--lines 5] [--repeat 20] [--json]

A project made by ``edi-gateway init`` (SQLite store), filled through the store's own tables
with ``--orders`` orders of ``--lines`` lines each (statuses, buyers and dates spread), a user
added by ``edi-gateway users add``, then ``edi-gateway console`` started as its own process and
each page fetched ``--repeat`` times over HTTP by a signed-in client (after one warm-up fetch).
Printed per page: median, p95 and max milliseconds, against the 300 ms target. Exit 0 whatever
the figures (a MISS is a finding); 1 when something broke (a page did not answer 200).
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import httpx
from sqlalchemy import insert, select

REPO = Path(__file__).resolve().parents[1]
EXE = REPO / ".venv" / "bin" / "edi-gateway"
TARGET_MS = 300.0
PASSWORD = "bench password 1"
STATUSES = ["Received", "Acknowledged", "Accepted", "Partially delivered", "Fully invoiced"]
RESPONSE_CODES = [None, "AB", "AP", "AP", "AP"]  # as the statuses say
DESPATCHED = [0, 0, 0, 5, 10]  # per line
INVOICED = [0, 0, 0, 0, 10]
BUYERS = [("buyer-a", "7300010000001", "Region Alpha"), ("buyer-b", "7300010000025", "Beta AB")]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=50_000)
    parser.add_argument("--lines", type=int, default=5)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--json", action="store_true")
    return parser.parse_args(argv)


def fill(db: Path, count: int, lines: int) -> int:
    """``count`` orders of ``lines`` lines into the store at ``db``; the id of the last one."""
    from edi_gateway.store import search
    from edi_gateway.store.db import open_store
    from edi_gateway.store.schema import order_lines, orders

    store = open_store(f"sqlite:///{db}")
    start = datetime(2026, 1, 1, tzinfo=UTC)
    batch = 5_000
    for first in range(0, count, batch):
        heads, rows = [], []
        for n in range(first, min(first + batch, count)):
            partner, key, name = BUYERS[n % len(BUYERS)]
            at = start + timedelta(minutes=7 * n)
            heads.append(
                {
                    "id": n + 1,
                    "buyer_key": f"0088:{key}",
                    "order_number": f"PO-{n:07d}",
                    "buyer_name": name,
                    "seller_key": "0088:7310000000003",
                    "seller_name": "Seller BV",
                    "buyer_partner": partner,
                    "seller_partner": "supplier",
                    "issue_date": at.date(),
                    "currency": "EUR",
                    "total_amount": Decimal(100 + n % 900),
                    "status": STATUSES[n % len(STATUSES)],
                    "response_code": RESPONSE_CODES[n % len(STATUSES)],
                    "cancelled": False,
                    "created_at": at,
                    "updated_at": at,
                }
            )
            rows += [
                {
                    "order_id": n + 1,
                    "position": i,
                    "line_id": str(i + 1),
                    "item_name": f"Item {n % 300}-{i}",
                    "seller_item_id": f"SKU-{(n + i) % 1000}",
                    "unit": "EA",
                    "price": Decimal("9.50"),
                    "qty_ordered": Decimal(10),
                    "qty_despatched": Decimal(DESPATCHED[n % len(STATUSES)]),
                    "qty_received": Decimal(0),
                    "qty_invoiced": Decimal(INVOICED[n % len(STATUSES)]),
                    "qty_credited": Decimal(0),
                    # what the ledger's recompute would set (orders list --needs invoice)
                    "unbilled": DESPATCHED[n % len(STATUSES)] > INVOICED[n % len(STATUSES)],
                }
                for i in range(lines)
            ]
        with store.connect() as conn:
            conn.execute(insert(orders), heads)
            conn.execute(insert(order_lines), rows)
    with store.connect() as conn:
        search.catch_up(conn)  # what each processing transaction does (docs/adr/0035)
        last = conn.execute(select(orders.c.id).order_by(orders.c.id.desc()).limit(1)).scalar()
    store.close()
    return int(last or 0)


def cli(config: Path, *args: str, stdin: str | None = None) -> None:
    done = subprocess.run(
        [str(EXE), "--config", str(config), *args],
        input=stdin,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed: {done.stderr}")


def serve(config: Path) -> tuple[subprocess.Popen[str], str]:
    with socket_port() as port:
        pass
    server = subprocess.Popen(
        [str(EXE), "--config", str(config), "console", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                return server, base
        except httpx.HTTPError:
            time.sleep(0.1)
    server.kill()
    raise SystemExit("the console did not start")


class socket_port:
    """A free TCP port on loopback (released on exit, for the server to bind)."""

    def __enter__(self) -> int:
        import socket

        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        return int(self._sock.getsockname()[1])

    def __exit__(self, *exc: object) -> None:
        self._sock.close()


def sign_in(client: httpx.Client) -> None:
    form = client.get("/login").text
    token = re.search(r'name="csrf_token" value="([^"]+)"', form)
    assert token
    data = {"username": "bench", "password": PASSWORD, "csrf_token": token.group(1)}
    if client.post("/login", data=data).status_code != 303:
        raise SystemExit("sign-in failed")


def measure(client: httpx.Client, path: str, repeat: int) -> list[float]:
    times = []
    for _ in range(repeat + 1):
        began = time.perf_counter()
        answer = client.get(path)
        spent = (time.perf_counter() - began) * 1000
        if answer.status_code != 200:
            raise SystemExit(f"{path}: HTTP {answer.status_code}")
        times.append(spent)
    return times[1:]  # the first one warms caches


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="edi-console-bench-") as work:
        root = Path(work) / "p"
        subprocess.run([str(EXE), "init", str(root)], check=True, capture_output=True)
        config = root / "gateway.yaml"
        cli(config, "users", "add", "bench", "--role", "viewer", stdin=PASSWORD + "\n")
        began = time.perf_counter()
        last = fill(root / "gateway.db", args.orders, args.lines)
        filled = time.perf_counter() - began
        pages = [
            "/orders",
            f"/orders?offset={max(args.orders - 50, 0)}",
            "/orders?status=Accepted",
            "/orders?partner=buyer-b",
            "/orders?q=PO-00421",
            "/orders?q=SKU-777",
            "/orders?type=blanket",
            "/orders?attention=1",
            "/orders?overdue=1",
            "/orders?needs=response",
            "/orders?needs=despatch",
            "/orders?needs=invoice",
            "/today",
            "/kpi",
            "/kpi?since=2026-01-01&until=2027-01-01",
            f"/orders/{last}",
            "/messages",
            "/outbox",
            "/health",
        ]
        server, base = serve(config)
        try:
            headers = {"Accept": "text/html"}
            with httpx.Client(base_url=base, headers=headers, timeout=60) as client:
                sign_in(client)
                results = {path: measure(client, path, args.repeat) for path in pages}
        finally:
            server.terminate()
            server.wait(timeout=30)
    report(args, filled, results)
    return 0


def report(args: argparse.Namespace, filled: float, results: dict[str, list[float]]) -> None:
    rows = {
        path: {
            "median_ms": round(statistics.median(times), 1),
            "p95_ms": round(sorted(times)[max(int(len(times) * 0.95) - 1, 0)], 1),
            "max_ms": round(max(times), 1),
        }
        for path, times in results.items()
    }
    if args.json:
        print(json.dumps({"orders": args.orders, "lines": args.lines, "pages": rows}, indent=2))
        return
    print(
        f"{args.orders:,} orders x {args.lines} lines (filled in {filled:.1f} s), "
        f"{args.repeat} fetches per page, target {TARGET_MS:.0f} ms"
    )
    print(f"{'page':<28} {'median':>8} {'p95':>8} {'max':>8}")
    for path, row in rows.items():
        verdict = "ok" if row["p95_ms"] <= TARGET_MS else "MISS"
        print(f"{path:<28} {row['median_ms']:>8} {row['p95_ms']:>8} {row['max_ms']:>8}  {verdict}")


if __name__ == "__main__":
    sys.exit(main())
