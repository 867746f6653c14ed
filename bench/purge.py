"""Purge and restore against a floor (issue 12 point 3, docs/adr/0037).

    python bench/purge.py [--orders 2000] [--keep 2000] [--lines 5] [--repeat 3] [--json]

A SQLite store filled through its own tables: ``--orders`` finished orders (Fully invoiced,
last touched in 2025) of ``--lines`` lines, each with its Order message and 2 KB payload, its
document and document lines, three history events and a delivered outbox row; and ``--keep``
open orders of the same shape (Received, recent) that must stay. Each repetition copies that
store twice and, in alternating order, times on one copy:

- **purge**: ``store.purge.purge`` (candidate query, closure checks, archive written and fsynced
  per batch, deletes, dedup keys, run record), in this process;
- **floor**: the same rows read (``SELECT *``) and deleted, children first, per 200 orders in one
  transaction each, with plain SQL and no checks, archive or bookkeeping;

then **restore** of the purge's archive into its copy. Printed: medians of each, the purge/floor
ratio, rows per second, the archive's size, and the load (``uptime``) before and after. Times
are printed, never asserted; exit 1 only when something broke (rows left or lost).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from intake import load_average  # bench/intake.py, beside this file
from sqlalchemy import create_engine, func, insert, select, text

FLOOR_TABLES = (
    "findings",
    "history",
    "outbox_payloads",
    "outbox",
    "document_lines",
    "documents",
    "order_keys",
    "order_lines",
    "message_payloads",
    "messages",
    "orders",
)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=2000, help="finished orders (purged)")
    parser.add_argument("--keep", type=int, default=2000, help="open orders (kept)")
    parser.add_argument("--lines", type=int, default=5)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    return parser.parse_args(argv)


def fill(db: Path, finished: int, kept: int, lines: int) -> None:
    """The store at ``db``: ``finished`` old Fully invoiced orders, then ``kept`` recent open
    ones, each with its message, payload, document, lines, history and outbox row."""
    from edi_gateway.store import schema as s
    from edi_gateway.store import search
    from edi_gateway.store.db import open_store

    store = open_store(f"sqlite:///{db}")
    old, recent = datetime(2025, 2, 1, tzinfo=UTC), datetime.now(UTC) - timedelta(days=1)
    for first in range(0, finished + kept, 1000):
        rows: dict[str, list[dict[str, Any]]] = {t: [] for t in FLOOR_TABLES}
        for n in range(first, min(first + 1000, finished + kept)):
            done = n < finished
            at = old + timedelta(minutes=n) if done else recent
            oid = mid = did = n + 1
            rows["orders"].append(
                {
                    "id": oid,
                    "buyer_key": "0088:7300010000001",
                    "order_number": f"PO-{n:07d}",
                    "buyer_name": "Buyer AB",
                    "seller_key": "0088:7310000000003",
                    "seller_name": "Seller BV",
                    "issue_date": at.date(),
                    "currency": "EUR",
                    "total_amount": Decimal("95.00"),
                    "status": "Fully invoiced" if done else "Received",
                    "response_code": "AP" if done else None,
                    "cancelled": False,
                    "created_at": at,
                    "updated_at": at,
                }
            )
            payload = (f"<Order><ID>PO-{n:07d}</ID>" + "x" * 2000 + "</Order>").encode()
            rows["messages"].append(
                {
                    "id": mid,
                    "received_at": at,
                    "source": "bench",
                    "source_ref": f"r{n}",
                    "filename": f"po-{n}.xml",
                    "sha256": hashlib.sha256(payload).hexdigest(),
                    "size": len(payload),
                    "state": "processed",
                    "doc_kind": "Order",
                    "doc_id": f"PO-{n:07d}",
                    "sender_key": "0088:7300010000001",
                    "order_id": oid,
                    "attempts": 1,
                    "updated_at": at,
                }
            )
            rows["message_payloads"].append({"message_id": mid, "payload": payload})
            rows["documents"].append(
                {
                    "id": did,
                    "message_id": mid,
                    "direction": "in",
                    "kind": "Order",
                    "doc_number": f"PO-{n:07d}",
                    "sender_key": "0088:7300010000001",
                    "order_id": oid,
                    "state": "attached",
                    "created_at": at,
                }
            )
            rows["order_keys"].append(
                {"order_id": oid, "role": "buyer", "party_key": "0088:7300010000001"}
            )
            for i in range(lines):
                rows["order_lines"].append(
                    {
                        "id": oid * 1000 + i,
                        "order_id": oid,
                        "position": i,
                        "line_id": str(i + 1),
                        "item_name": f"Item {i}",
                        "qty_ordered": Decimal(10),
                        "qty_despatched": Decimal(10 if done else 0),
                        "qty_received": Decimal(0),
                        "qty_invoiced": Decimal(10 if done else 0),
                        "qty_credited": Decimal(0),
                    }
                )
                rows["document_lines"].append(
                    {
                        "document_id": did,
                        "order_line_id": oid * 1000 + i,
                        "line_ref": str(i + 1),
                        "quantity": Decimal(10),
                    }
                )
            for event in ("message.received", "order.received", "message.processed"):
                rows["history"].append(
                    {"at": at, "order_id": oid, "message_id": mid, "event": event, "actor": "b"}
                )
            rows["outbox"].append(
                {
                    "id": n + 1,
                    "created_at": at,
                    "order_id": oid,
                    "partner": "buyer",
                    "connector": "out",
                    "kind": "OrderResponse",
                    "doc_number": f"PO-{n:07d}-R1",
                    "filename": f"r-{n}.xml",
                    "media_type": "application/xml",
                    "state": "sent" if done else "pending",
                    "attempts": 1,
                    "next_attempt_at": at,
                    "sent_at": at if done else None,
                }
            )
            rows["outbox_payloads"].append({"outbox_id": n + 1, "payload": b"<OrderResponse/>"})
        with store.connect() as conn:
            for name in reversed(FLOOR_TABLES):
                if rows[name]:
                    conn.execute(insert(s.metadata.tables[name]), rows[name])
    with store.connect() as conn:
        search.catch_up(conn)
    store.close()


def floor(db: Path, finished: int) -> float:
    """Read and delete the finished orders' rows with plain SQL, 200 orders a transaction."""
    engine = create_engine(f"sqlite:///{db}")
    by = {
        "findings": "message_id",
        "message_payloads": "message_id",
        "outbox_payloads": "outbox_id",  # each order's one outbox row has the order's id
        "messages": "order_id",
        "document_lines": "document_id",
        "orders": "id",
    }
    started = time.perf_counter()
    for first in range(1, finished + 1, 200):
        ids = ",".join(str(i) for i in range(first, min(first + 200, finished + 1)))
        with engine.begin() as conn:
            for name in FLOOR_TABLES:
                where = f"{by.get(name, 'order_id')} IN ({ids})"
                conn.execute(text(f"SELECT * FROM {name} WHERE {where}")).all()
                conn.execute(text(f"DELETE FROM {name} WHERE {where}"))
    took = time.perf_counter() - started
    engine.dispose()
    return took


def purge_once(db: Path, archive: Path) -> tuple[float, float, dict[str, int], int]:
    """purge() then restore() on the store at ``db``: seconds each, counts, archive bytes."""
    from edi_gateway.store.db import open_store
    from edi_gateway.store.purge import purge, restore

    store = open_store(f"sqlite:///{db}")
    started = time.perf_counter()
    done = purge(store, datetime(2026, 1, 1, tzinfo=UTC), actor="bench", archive_dir=archive)
    purged = time.perf_counter() - started
    assert done.archive is not None
    size = Path(done.archive).stat().st_size
    started = time.perf_counter()
    restore(store, Path(done.archive))
    restored = time.perf_counter() - started
    store.close()
    return purged, restored, dict(done.counts), size


def count_orders(db: Path) -> int:
    from edi_gateway.store.schema import orders

    engine = create_engine(f"sqlite:///{db}")
    with engine.connect() as conn:
        found = int(conn.scalar(select(func.count()).select_from(orders)) or 0)
    engine.dispose()
    return found


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="bench-purge-"))
    try:
        template = work / "template.db"
        fill(template, args.orders, args.keep, args.lines)
        before = load_average()
        times: dict[str, list[float]] = {"purge": [], "floor": [], "restore": []}
        counts: dict[str, int] = {}
        size = 0
        for rep in range(args.repeat):
            for which in ("purge", "floor") if rep % 2 == 0 else ("floor", "purge"):
                db = work / f"{which}-{rep}.db"
                shutil.copy(template, db)
                if which == "floor":
                    times["floor"].append(floor(db, args.orders))
                    if count_orders(db) != args.keep:
                        print("floor: rows left or lost", file=sys.stderr)
                        return 1
                else:
                    purged, restored, counts, size = purge_once(db, work / f"archive-{rep}")
                    times["purge"].append(purged)
                    times["restore"].append(restored)
                    if count_orders(db) != args.orders + args.keep:
                        print("restore: orders lost", file=sys.stderr)
                        return 1
                db.unlink()
        report(args, times, counts, size, before)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


def report(
    args: argparse.Namespace,
    times: dict[str, list[float]],
    counts: dict[str, int],
    size: int,
    before: str,
) -> None:
    med = {name: statistics.median(values) for name, values in times.items()}
    rows = sum(counts.values())
    result = {
        "orders_purged": args.orders,
        "orders_kept": args.keep,
        "lines_per_order": args.lines,
        "repeat": args.repeat,
        "rows_purged": rows,
        "archive_bytes": size,
        "median_seconds": {k: round(v, 3) for k, v in med.items()},
        "purge_over_floor": round(med["purge"] / med["floor"], 2),
        "restore_over_floor": round(med["restore"] / med["floor"], 2),
        "purge_rows_per_second": round(rows / med["purge"]),
        "load_before": before,
        "load_after": load_average(),
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"{args.orders} finished orders purged ({rows} rows), {args.keep} open ones kept")
    for name in ("floor", "purge", "restore"):
        print(
            f"  {name:<8} median {med[name]:7.3f} s  ({', '.join(f'{t:.3f}' for t in times[name])})"
        )
    print(
        f"  purge/floor {result['purge_over_floor']}x, restore/floor "
        f"{result['restore_over_floor']}x, {result['purge_rows_per_second']} rows/s purged, "
        f"archive {size / 1e6:.1f} MB"
    )
    print(f"  load (1, 5, 15 min) before {before}, after {result['load_after']}")


if __name__ == "__main__":
    sys.exit(main())
