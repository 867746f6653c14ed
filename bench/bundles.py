"""Bundle benchmark: one flush of N waiting orders into a workbook, zip or CSV, against floors.

    python bench/bundles.py [--sizes 100,1000,5000] [--lines 12] [--repeat 3]
                            [--formats workbook,zip,csv] [--zip-formats ubl,xlsx] [--json]
                            [--cold-config]

For every size N the orders are written with ``tests/factory.py`` and ingested ONCE
(``edi-gateway ingest``) into a template SQLite store whose supplier forwards with
``bundle: workbook, when_waiting: 1``: every order then has a ``waiting`` forward row (the
supplier's profile is read at flush time, so the same store serves every format).

Every gateway run has a folder and config of its own, validated beforehand, untimed
(``edi-gateway config check``: the config cache warm, as after any first command; see
``bench/intake.py``); ``--cold-config`` times that validation in every run too.

Per format and repetition, interleaved, two whole child processes with this interpreter:

* **gateway**: ``edi-gateway outbox flush`` on a fresh copy of the template store: reads the N
  waiting forwards, renders, builds the bundle (its parts, with ``--max-orders``), queues it in
  the outbox, delivers it to a folder connector and marks the forwards delivered;
* **floor**: this file with ``--floor KIND INPUT OUTPUT``: imports only openpyxl / csv /
  zipfile and writes THE SAME cells (values, number formats, fonts, fills, alignment, column
  widths, frozen panes, filters) with openpyxl's write-only mode, the same CSV rows with the
  csv module, the same zip members (each produced by its own floor) with zipfile. Its input
  is a pickle made (untimed) from the gateway's own output of the warm-up run.

Also timed, in the same repetitions: the gateway flushing ONE waiting order in that format
(``fixed``: start-up, imports, one cycle), so the per-order cost ``(gateway - fixed) / (N - 1)``
compares across sizes (linear: the same at 100, 1,000 and 5,000 orders).
Reported: medians (min), the ratio gateway / floor (medians), per-order cost, peak RSS of each
child (``os.wait4``). Targets (issue 12 point 5): ratio <= 2 at 1,000 orders, peak < 300 MB,
per-order cost within ~1.3x from 100 to 5,000 orders.

Exit 0 whatever the figures; 1 when something broke (a child failed, a bundle lost orders).
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import pickle
import shutil
import sqlite3
import statistics
import sys
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from intake import (  # bench/intake.py, beside this file
    CONFIG_CHECKED,
    BenchError,
    Run,
    environment,
    load_average,
    private_cache,
    run_child,
    warm_config,
)

REPO = Path(__file__).resolve().parents[1]
BUYER, SUPPLIER = "7300010000001", "7310000000003"  # the parties tests/factory.py writes
MAX_RATIO, MAX_PEAK_MB, MAX_SPREAD = 2.0, 300.0, 1.3
PROFILES = {
    "workbook": {"formats": ["xlsx"], "bundle": "workbook"},
    "csv": {"formats": ["csv"], "bundle": "csv"},
    "zip": {"bundle": "zip"},
}
GATEWAY_YAML = f"""\
# Written by bench/bundles.py: a SQLite store beside this file, the factory's two parties.
store:
  url: sqlite:///gateway.db
intake:
  max_size_mb: 64
  unknown_partner: reject
connectors:
  - {{name: to-seller, type: folder, direction: out, path: sup}}
partners:
  - id: bench-buyer
    name: Buyer AB
    role: buyer
    endpoint: {{scheme: "0088", value: "{BUYER}"}}
  - id: bench-supplier
    name: Seller BV
    role: supplier
    language: sv
    endpoint: {{scheme: "0088", value: "{SUPPLIER}"}}
    outbound: to-seller
    forward: FORWARD
"""


@dataclass
class Case:
    """One format at one size: its repeated floor and gateway runs."""

    fmt: str
    orders: int
    floor: list[Run] = field(default_factory=list)
    gateway: list[Run] = field(default_factory=list)
    fixed: list[Run] = field(default_factory=list)
    files: int = 0

    def summary(self) -> dict[str, Any]:
        floor = statistics.median(r.seconds for r in self.floor)
        gateway = statistics.median(r.seconds for r in self.gateway)
        fixed = statistics.median(r.seconds for r in self.fixed)
        peak = max(r.peak_mb for r in self.gateway)
        return {
            "format": self.fmt,
            "orders": self.orders,
            "files": self.files,
            "floor_s": round(floor, 3),
            "floor_s_min": min(r.seconds for r in self.floor),
            "floor_peak_mb": max(r.peak_mb for r in self.floor),
            "gateway_s": round(gateway, 3),
            "gateway_s_min": min(r.seconds for r in self.gateway),
            "gateway_peak_mb": peak,
            "ratio": round(gateway / floor, 2),
            "fixed_s": round(fixed, 3),
            "ms_per_order": round(1000 * (gateway - fixed) / max(self.orders - 1, 1), 3),
            "floor_ms_per_order": round(1000 * floor / self.orders, 3),
        }


# -- floors: only openpyxl, csv and zipfile ----------------------------------------------------


def floor_main(kind: str, source: Path, target: Path) -> int:
    """The floor child: write ``source`` (a pickle) as ``kind`` to ``target``."""
    spec = pickle.loads(source.read_bytes())
    target.write_bytes(FLOORS[kind](spec))
    return 0


def floor_workbook(spec: dict[str, Any]) -> bytes:
    """The same cells with openpyxl's write-only mode (styles made once, as a careful
    programmer writing openpyxl directly would)."""
    from openpyxl import Workbook
    from openpyxl.cell import WriteOnlyCell
    from openpyxl.styles import Alignment, Font, PatternFill

    fonts: dict[Any, Any] = {}
    fills: dict[Any, Any] = {}
    aligns: dict[Any, Any] = {}
    book = Workbook(write_only=True)
    for sheet_spec in spec["sheets"]:
        sheet = book.create_sheet(sheet_spec["title"])
        for letter, width in sheet_spec["widths"].items():
            sheet.column_dimensions[letter].width = width
        if sheet_spec["freeze"]:
            sheet.freeze_panes = sheet_spec["freeze"]
        if sheet_spec["filter"]:
            sheet.auto_filter.ref = sheet_spec["filter"]
        for row in sheet_spec["rows"]:
            out: list[Any] = []
            for cell in row:
                if cell is None or len(cell) == 1:
                    out.append(cell and cell[0])
                    continue
                value, number_format, font, fill, align = cell
                styled = WriteOnlyCell(sheet, value=value)
                if number_format != "General":
                    styled.number_format = number_format
                if font is not None:
                    styled.font = fonts.get(font) or fonts.setdefault(
                        font, Font(bold=font[0], size=font[1])
                    )
                if fill is not None:
                    styled.fill = fills.get(fill) or fills.setdefault(
                        fill, PatternFill("solid", fgColor=fill)
                    )
                if align is not None:
                    styled.alignment = aligns.get(align) or aligns.setdefault(
                        align, Alignment(horizontal=align)
                    )
                out.append(styled)
            sheet.append(out)
        sheet.close()
    book.properties.title = spec["title"]
    data = io.BytesIO()
    book.save(data)
    return data.getvalue()


def floor_csv(spec: dict[str, Any]) -> bytes:
    """The same rows with the csv module."""
    out = io.StringIO(newline="")
    csv.writer(out, delimiter=spec["delimiter"], lineterminator="\r\n").writerows(spec["rows"])
    return out.getvalue().encode(spec["encoding"])


def floor_zip(spec: dict[str, Any]) -> bytes:
    """The same members, each by its own floor, with zipfile."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, kind, member in spec["members"]:
            data = member if kind == "bytes" else FLOORS[kind](member)
            archive.writestr(
                zipfile.ZipInfo(name, (1980, 1, 1, 0, 0, 0)), data, zipfile.ZIP_DEFLATED
            )
    return out.getvalue()


FLOORS = {"workbook": floor_workbook, "csv": floor_csv, "zip": floor_zip}


# -- floor inputs, read (untimed) from the gateway's own output --------------------------------


def workbook_spec(data: bytes) -> dict[str, Any]:
    """Every cell of an .xlsx as the workbook floor writes it back."""
    from openpyxl import load_workbook

    book = load_workbook(io.BytesIO(data))
    sheets = []
    for ws in book.worksheets:
        rows = []
        for row in ws.iter_rows():
            cells: list[Any] = []
            for c in row:
                if not c.has_style:
                    cells.append(None if c.value is None else (c.value,))
                    continue
                font = (bool(c.font.b), c.font.sz) if c.font.b or c.font.sz != 11 else None
                fill = c.fill.fgColor.rgb[-6:] if c.fill.fill_type == "solid" else None
                cells.append((c.value, c.number_format, font, fill, c.alignment.horizontal))
            rows.append(cells)
        sheets.append(
            {
                "title": ws.title,
                "widths": {k: d.width for k, d in ws.column_dimensions.items() if d.customWidth},
                "freeze": ws.freeze_panes,
                "filter": ws.auto_filter.ref,
                "rows": rows,
            }
        )
    return {"title": book.properties.title, "sheets": sheets}


def csv_spec(data: bytes) -> dict[str, Any]:
    text = data.decode("utf-8-sig")
    return {
        "rows": list(csv.reader(io.StringIO(text, newline=""), delimiter=";")),
        "delimiter": ";",
        "encoding": "utf-8-sig",
    }


def zip_spec(data: bytes) -> dict[str, Any]:
    members: list[tuple[str, str, Any]] = []
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        for name in archive.namelist():
            member = archive.read(name)
            if name.endswith(".xlsx"):
                members.append((name, "workbook", workbook_spec(member)))
            elif name.endswith(".csv"):
                members.append((name, "csv", csv_spec(member)))
            else:
                members.append((name, "bytes", member))
    return {"members": members}


SPECS = {"workbook": workbook_spec, "csv": csv_spec, "zip": zip_spec}


def spec_main(kind: str, target: Path, files: list[Path]) -> int:
    """The floor input child: the cells of ``files`` (the parts of one flush) as one pickle.
    A child, so the benchmark process stays small: a child's peak RSS as ``wait4`` reports it
    includes its parent's at the fork."""
    specs = [SPECS[kind](p.read_bytes()) for p in files]
    target.write_bytes(pickle.dumps(specs[0] if len(specs) == 1 else _merge(kind, specs)))
    return 0


# -- the runs ----------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100,1000,5000", help="orders per bundle, comma list")
    parser.add_argument("--lines", type=int, default=12, help="lines per order")
    parser.add_argument("--repeat", type=int, default=3, help="runs per measurement")
    parser.add_argument("--formats", default="workbook,zip,csv", help="bundle kinds measured")
    parser.add_argument("--zip-formats", default="ubl,xlsx", help="each order's files in a zip")
    parser.add_argument("--max-orders", type=int, help="bundle.max_orders: split into parts")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument(
        "--cold-config",
        action="store_true",
        help="validate the config in every timed gateway run (none beforehand)",
    )
    parser.add_argument(
        "--floor", nargs=3, metavar=("KIND", "INPUT", "OUTPUT"), help=argparse.SUPPRESS
    )
    parser.add_argument("--spec", nargs="+", metavar="KIND OUTPUT FILE", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.floor or args.spec:
        return args
    args.sizes = [int(s) for s in args.sizes.split(",")]
    args.formats = args.formats.split(",")
    if min(args.sizes) < 1 or args.repeat < 1 or args.lines < 1:
        parser.error("--sizes, --lines and --repeat must be at least 1")
    if set(args.formats) - set(PROFILES):
        parser.error(f"--formats: expected some of {', '.join(PROFILES)}")
    return args


class Bench:
    """Seeds one template store per size and runs floors and gateways over copies of it."""

    def __init__(self, work: Path, args: argparse.Namespace) -> None:
        self.work, self.args, self.runs = work, args, 0
        self.gateway = Path(sys.executable).parent / "edi-gateway"
        if not self.gateway.is_file():
            raise BenchError(f"{self.gateway} not found: install the package first")

    def profile(self, fmt: str) -> dict[str, Any]:
        forward: dict[str, Any] = {**PROFILES[fmt], "when_waiting": 1}
        if fmt == "zip":
            forward["formats"] = self.args.zip_formats.split(",")
        if self.args.max_orders:
            forward["max_orders"] = self.args.max_orders
        return forward

    def home(self, fmt: str, template: Path | None) -> Path:
        """A fresh folder with a gateway.yaml for ``fmt`` and a copy of ``template``."""
        self.runs += 1
        home = self.work / f"run-{self.runs}"
        (home / "sup").mkdir(parents=True)
        text = GATEWAY_YAML.replace("FORWARD", json.dumps(self.profile(fmt)))
        (home / "gateway.yaml").write_text(text, encoding="utf-8")
        if not self.args.cold_config:
            warm_config(self.gateway, home / "gateway.yaml")
        if template is not None:
            shutil.copyfile(template, home / "gateway.db")
        return home

    def seed(self, size: int) -> Path:
        """The template store of ``size`` waiting orders (one ``ingest`` of factory orders)."""
        sys.path.insert(0, str(REPO))
        from tests.factory import items, order

        folder = self.work / f"orders-{size}"
        folder.mkdir()
        lines = items(self.args.lines)
        for n in range(1, size + 1):
            number = f"PO-{n:06d}"
            (folder / f"{number}.xml").write_bytes(order(number, lines, detailed=True))
        home = self.home("workbook", None)
        cmd = [str(self.gateway), "--config", str(home / "gateway.yaml"), "ingest", str(folder)]
        run_child(cmd, home / "ingest.log")
        shutil.rmtree(folder)
        if waiting(home / "gateway.db") != size:
            raise BenchError(f"seeding {size} orders left {waiting(home / 'gateway.db')} waiting")
        return home / "gateway.db"

    def flush(self, fmt: str, template: Path | None, expected: int) -> tuple[Run, list[Path]]:
        home = self.home(fmt, template)
        cmd = [str(self.gateway), "--config", str(home / "gateway.yaml"), "outbox", "flush"]
        run = run_child(cmd, home / "flush.log")
        files = sorted((home / "sup").iterdir())
        delivered = delivered_orders(home / "gateway.db")
        if delivered != expected or (expected and not files):
            raise BenchError(f"{fmt}: {delivered} of {expected} orders delivered in {files}")
        return run, files

    def floor(self, fmt: str, spec: Path) -> Run:
        self.runs += 1
        out = self.work / f"floor-{self.runs}.out"
        cmd = [sys.executable, __file__, "--floor", fmt, str(spec), str(out)]
        return run_child(cmd, self.work / f"floor-{self.runs}.log")

    def size(self, size: int, one: Path) -> list[Case]:
        """Every format at ``size`` orders; ``one``: the store of one waiting order."""
        template = self.seed(size)
        cases: list[Case] = []
        for fmt in self.args.formats:
            _, files = self.flush(fmt, template, size)  # warm-up; its output feeds the floor
            spec = self.work / f"{fmt}-{size}.pickle"
            cmd = [sys.executable, __file__, "--spec", fmt, str(spec), *map(str, files)]
            run_child(cmd, self.work / f"spec-{fmt}-{size}.log")
            case = Case(fmt, size, files=len(files))
            for _ in range(self.args.repeat):  # interleaved: drift hits both sides alike
                case.floor.append(self.floor(fmt, spec))
                case.gateway.append(self.flush(fmt, template, size)[0])
                case.fixed.append(self.flush(fmt, one, 1)[0])
            cases.append(case)
        template.unlink()
        return cases


def _merge(fmt: str, specs: list[dict[str, Any]]) -> dict[str, Any]:
    """Several parts as one floor input (the floor writes one file: the same cells)."""
    if fmt == "workbook":
        return {"title": specs[0]["title"], "sheets": [s for p in specs for s in p["sheets"]]}
    if fmt == "csv":
        rows = specs[0]["rows"] + [r for p in specs[1:] for r in p["rows"][1:]]
        return {**specs[0], "rows": rows}
    return {"members": [m for p in specs for m in p["members"]]}


def waiting(db: Path) -> int:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        found = conn.execute("SELECT count(*) FROM forwards WHERE state = 'waiting'").fetchone()
    conn.close()
    return int(found[0])


def delivered_orders(db: Path) -> int:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        found = conn.execute("SELECT count(*) FROM forwards WHERE state = 'delivered'").fetchone()
    conn.close()
    return int(found[0])


def table(summaries: list[dict[str, Any]]) -> str:
    head = (
        f"{'format':<8} {'orders':>6} {'files':>5}  {'floor s':>15}  {'gateway s':>15}  "
        f"{'ratio':>5}  {'fixed s':>7} {'ms/order':>8} {'floor ms/o':>10}  {'peak MB':>7} "
        f"{'floor MB':>8}"
    )
    rows = [head, "-" * len(head)]
    for s in summaries:
        rows.append(
            f"{s['format']:<8} {s['orders']:>6} {s['files']:>5}  "
            f"{s['floor_s']:>6.3f} ({s['floor_s_min']:.3f})  "
            f"{s['gateway_s']:>6.3f} ({s['gateway_s_min']:.3f})  {s['ratio']:>5.2f}  "
            f"{s['fixed_s']:>7.3f} {s['ms_per_order']:>8.3f} {s['floor_ms_per_order']:>10.3f}  "
            f"{s['gateway_peak_mb']:>7.1f} {s['floor_peak_mb']:>8.1f}"
        )
    rows.append(
        "times: median (min) of whole processes; ratio = gateway / floor (medians); fixed = "
        "gateway flushing ONE order; ms/order = (gateway - fixed) / (orders - 1); floor ms/o = "
        "floor / orders; peak MB = max RSS of the child (wait4)"
    )
    for fmt in {s["format"] for s in summaries}:
        costs = [s["ms_per_order"] for s in summaries if s["format"] == fmt]
        spread = max(costs) / min(costs) if min(costs) > 0 else float("inf")
        at = [s for s in summaries if s["format"] == fmt and s["orders"] == 1000]
        verdicts = [f"per-order cost spread {spread:.2f}x (target <= {MAX_SPREAD})"]
        if at:
            verdicts.append(f"ratio at 1,000 {at[0]['ratio']:.2f} (target <= {MAX_RATIO})")
        peak = max(s["gateway_peak_mb"] for s in summaries if s["format"] == fmt)
        verdicts.append(f"peak {peak:.0f} MB (target < {MAX_PEAK_MB:.0f})")
        rows.append(f"{fmt}: " + "; ".join(verdicts))
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.floor:
        return floor_main(args.floor[0], Path(args.floor[1]), Path(args.floor[2]))
    if args.spec:
        return spec_main(args.spec[0], Path(args.spec[1]), [Path(f) for f in args.spec[2:]])
    before = load_average()
    try:
        with tempfile.TemporaryDirectory(prefix="edi-bundles-") as tmp:
            private_cache(Path(tmp))
            bench = Bench(Path(tmp), args)
            bench.flush("workbook", None, 0)  # warm-up: page cache, .pyc files
            one = bench.seed(1)
            cases = [case for size in args.sizes for case in bench.size(size, one)]
    except BenchError as exc:
        print(f"bench/bundles.py: BROKEN: {exc}", file=sys.stderr)
        return 1
    summaries = [case.summary() for case in cases]
    env = {
        **environment(args),
        "load_before": before,
        "load_after": load_average(),
        "config": "validated in each timed run" if args.cold_config else CONFIG_CHECKED,
    }
    if args.json:
        json.dump({"environment": env, "cases": summaries}, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0
    print(
        f"edi-gateway bundle benchmark, {env['date']}, Python {env['python']}, {env['cpus']} "
        f"CPUs, {args.repeat} runs each, {args.lines} lines an order; load average before "
        f"{before}, after {env['load_after']}; config {env['config']}"
    )
    print(table(summaries))
    return 0


if __name__ == "__main__":
    sys.exit(main())
