"""Peppol rules at intake: ``edi-gateway ingest`` of one big order with ``validation: peppol``.

    python bench/rules.py [--lines 5000,10000,20000,40000] [--repeat 3] [--json]

For each size, three orders (whole child processes, start-up included, median of ``--repeat``):

* ``valid``: a T01 order that passes the rules (the factory's order made complete);
* ``rules``: the same with every line's unit code unknown: one fatal finding per line;
* ``xsd``: the same with a misspelt element in every line: one XSD error per line.

Each beside the floor (``../shared/tools/xsd-floor``: parse + XSD of the same file with lxml).
Printed: seconds, floor seconds, the ratio, the cost per 1,000 lines, and the targets of
issue 9: valid 20,000 lines <= 2 s; every line failing <= 2x the valid case; cost per line
flat from the smallest to the largest size (within 1.3x), as the marginal cost of a line
(seconds between the two largest sizes over seconds between the two smallest, per line), so
start-up and other fixed costs cannot hide a growing one. Exit 0 whatever the figures; 1 when
something broke (a child failed unexpectedly or the store does not hold what it should).
"""

from __future__ import annotations

import argparse
import json
import re
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from intake import (  # noqa: E402  (a sibling script, not a package)
    BUYER,
    FLOOR,
    SUPPLIER,
    BenchError,
    gateway_executable,
    order_xsd,
)

ARTEFACTS = REPO.parent / "shared" / "corpus" / "peppol-validation-artefacts" / "2026.5"
VALID_20K_SECONDS = 2.0
FAILING_RATIO = 2.0
FLAT = 1.3
CASES = ("valid", "rules", "xsd")
EXPECTED = {
    "valid": ("processed", None),
    "rules": ("failed", "RULES_FAILED"),
    "xsd": ("failed", "XSD_INVALID"),
}

GATEWAY_YAML = f"""\
# Written by bench/rules.py.
store:
  url: sqlite:///gateway.db
rules:
  dir: {{rules}}
intake:
  max_size_mb: 64
partners:
  - id: bench-buyer
    name: Buyer AB
    role: buyer
    endpoint: {{{{scheme: "0088", value: "{BUYER}"}}}}
    validation: peppol
  - id: bench-supplier
    name: Seller BV
    role: supplier
    endpoint: {{{{scheme: "0088", value: "{SUPPLIER}"}}}}
"""
_LINE_AMOUNT = re.compile(rb'<cbc:LineExtensionAmount currencyID="EUR">([0-9.]+)<')


def valid_order(lines: int) -> bytes:
    """The factory's detailed order, completed so that it passes the T01 rules."""
    from tests.factory import items, order

    payload = order(f"RULES-{lines}", items(lines), detailed=True)
    total = sum((Decimal(m.decode()) for m in _LINE_AMOUNT.findall(payload)), Decimal(0))
    address = (
        b"<cac:PostalAddress><cac:Country><cbc:IdentificationCode>NL</cbc:IdentificationCode>"
        b"</cac:Country></cac:PostalAddress>"
    )
    seller = b"<cac:PartyLegalEntity><cbc:RegistrationName>Seller BV"
    payload = payload.replace(seller, address + seller, 1)
    payable = b'<cac:AnticipatedMonetaryTotal><cbc:PayableAmount currencyID="EUR">'
    head, _, rest = payload.partition(payable)
    _, _, rest = rest.partition(b"</cbc:PayableAmount>")
    amounts = (
        f'<cac:AnticipatedMonetaryTotal><cbc:LineExtensionAmount currencyID="EUR">{total}'
        f'</cbc:LineExtensionAmount><cbc:PayableAmount currencyID="EUR">{total}'
        "</cbc:PayableAmount>"
    ).encode()
    return head + amounts + rest


def variant(payload: bytes, case: str) -> bytes:
    if case == "rules":
        return payload.replace(b'unitCode="C62"', b'unitCode="XYZQ"')
    if case == "xsd":
        return payload.replace(b"<cbc:Description>", b"<cbc:Descriptio>").replace(
            b"</cbc:Description>", b"</cbc:Descriptio>"
        )
    return payload


def timed(cmd: list[str], log: Path, ok: tuple[int, ...]) -> float:
    with log.open("wb") as out:
        start = time.perf_counter()
        code = subprocess.run(
            cmd, check=False, stdin=subprocess.DEVNULL, stdout=out, stderr=out
        ).returncode
        seconds = time.perf_counter() - start
    if code not in ok:
        raise BenchError(f"{' '.join(cmd)} exited {code}: {log.read_text()[-1500:]}")
    return seconds


def check_store(db: Path, case: str, lines: int) -> None:
    state, code = EXPECTED[case]
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        row = conn.execute("SELECT state, error_code FROM messages").fetchall()
        findings = conn.execute("SELECT count(*) FROM findings WHERE flag = 'fatal'").fetchone()[0]
    conn.close()
    if row != [(state, code)]:
        raise BenchError(f"{case} {lines}: expected one message {state} {code}, found {row}")
    wanted = {"valid": 0, "rules": min(lines, 1000), "xsd": min(lines, 100)}[case]  # kept
    if (case != "xsd" and findings < wanted) or (case == "valid" and findings):
        raise BenchError(f"{case} {lines}: {findings} fatal findings, expected {wanted}")


class Bench:
    def __init__(self, work: Path) -> None:
        self.work, self.runs = work, 0
        self.exe, self.xsd = gateway_executable(), order_xsd()
        self.rules = work / "rules"
        install = [
            str(self.exe),
            "--config",
            str(self._config()),
            "rules",
            "install",
            str(ARTEFACTS),
        ]
        timed(install, work / "install.log", (0,))

    def _config(self) -> Path:
        self.runs += 1
        home = self.work / f"gw-{self.runs}"
        home.mkdir()
        config = home / "gateway.yaml"
        config.write_text(GATEWAY_YAML.format(rules=self.rules), encoding="utf-8")
        return config

    def floor(self, file: Path) -> float:
        cmd = [sys.executable, str(FLOOR), str(self.xsd), str(file)]
        return timed(cmd, self.work / "floor.log", (0, 1))

    def ingest(self, file: Path, case: str, lines: int) -> float:
        config = self._config()
        cmd = [str(self.exe), "--config", str(config), "ingest", str(file)]
        seconds = timed(cmd, config.parent / "ingest.log", (0, 1))
        check_store(config.parent / "gateway.db", case, lines)
        return seconds


def measure(bench: Bench, sizes: list[int], repeat: int) -> list[dict[str, object]]:
    rows = []
    for lines in sizes:
        base = valid_order(lines)
        for case in CASES:
            file = bench.work / f"{case}-{lines}.xml"
            file.write_bytes(variant(base, case))
            floor, gateway = [], []
            for _ in range(repeat):
                floor.append(bench.floor(file))
                gateway.append(bench.ingest(file, case, lines))
            f_s, g_s = statistics.median(floor), statistics.median(gateway)
            rows.append(
                {
                    "lines": lines,
                    "case": case,
                    "mb": round(file.stat().st_size / 1e6, 1),
                    "floor_s": round(f_s, 3),
                    "gateway_s": round(g_s, 3),
                    "ratio": round(g_s / f_s, 2),
                    "ms_per_1000_lines": round(g_s / lines * 1e6, 1),
                }
            )
    return rows


def verdicts(rows: list[dict[str, object]]) -> list[str]:
    def seconds(lines: int, case: str) -> float:
        return next(
            float(str(r["gateway_s"])) for r in rows if r["lines"] == lines and r["case"] == case
        )

    sizes = sorted({int(str(r["lines"])) for r in rows})
    out = []
    if 20000 in sizes:
        s = seconds(20000, "valid")
        out.append(
            f"valid 20,000 lines {s:.2f} s, target <= {VALID_20K_SECONDS:g} s: "
            f"{'PASS' if s <= VALID_20K_SECONDS else 'MISS'}"
        )
    for case in ("rules", "xsd"):
        worst = max(seconds(n, case) / seconds(n, "valid") for n in sizes)
        out.append(
            f"every line failing ({case}) / valid, worst {worst:.2f}x, target <= "
            f"{FAILING_RATIO:g}x: {'PASS' if worst <= FAILING_RATIO else 'MISS'}"
        )
    if len(sizes) >= 3:  # marginal cost per line: start-up and fixed costs cancel out
        for case in CASES:
            a, b, c, d = sizes[0], sizes[1], sizes[-2], sizes[-1]
            first = (seconds(b, case) - seconds(a, case)) / (b - a)
            last = (seconds(d, case) - seconds(c, case)) / (d - c)
            growth = last / first
            out.append(
                f"{case}: marginal cost per line {first * 1e6:.0f} us ({a:,}-{b:,}) -> "
                f"{last * 1e6:.0f} us ({c:,}-{d:,}) = {growth:.2f}x, target <= {FLAT:g}: "
                f"{'PASS' if growth <= FLAT else 'MISS'}"
            )
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", default="5000,10000,20000,40000")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    sizes = sorted(int(n) for n in args.lines.split(","))
    try:
        with tempfile.TemporaryDirectory(prefix="edi-rules-") as tmp:
            rows = measure(Bench(Path(tmp)), sizes, args.repeat)
    except BenchError as exc:
        print(f"bench/rules.py: BROKEN: {exc}", file=sys.stderr)
        return 1
    if args.json:
        json.dump({"rows": rows, "verdicts": verdicts(rows)}, sys.stdout, indent=2)
        print()
        return 0
    print(
        f"{'lines':>6} {'case':<6} {'MB':>5} {'floor s':>8} {'gateway s':>10} {'ratio':>6} "
        f"{'ms/1000 lines':>14}"
    )
    for r in rows:
        print(
            f"{r['lines']:>6} {r['case']:<6} {r['mb']:>5} {r['floor_s']:>8} "
            f"{r['gateway_s']:>10} {r['ratio']:>6} {r['ms_per_1000_lines']:>14}"
        )
    print(f"medians of {args.repeat} whole processes each; ratio = gateway / floor")
    print("\n".join(verdicts(rows)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
