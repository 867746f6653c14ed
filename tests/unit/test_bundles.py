"""Bundles that scale (issue 12 point 5, docs/adr/0039): write-only workbooks equal to what the
renderers wrote before, parts by ``max_orders`` / ``max_bytes``, each opened as a supplier
would, and a kill -9 between parts that neither loses nor doubles an order."""

from __future__ import annotations

import csv
import io
import logging
import os
import resource
import signal
import subprocess
import sys
import zipfile
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import openpyxl
import pytest
from pydantic import ValidationError
from sqlalchemy import select

from edi_gateway.app import Gateway
from edi_gateway.outbound.forward import flush_all, flush_forwards
from edi_gateway.outbound.layout import (
    columns_workbook,
    find_layout,
    layout_problem,
)
from edi_gateway.outbound.render.csv import orders_csv
from edi_gateway.outbound.render.xlsx import orders_workbook
from edi_gateway.store.db import Store
from edi_gateway.store.tables import Forward, OutboxRow
from tests import factory as f
from tests.unit.bundle_support import GOLDEN, ROOT, varied_orders
from tests.unit.support import detail, receive
from tests.unit.test_forward import _yaml, gateway, sent, settings, states

INKOP = find_layout(ROOT / "mappings", "nordisk", "inkop")
WORKBOOKS: dict[str, Callable[[], bytes]] = {
    "sheets-nl.xlsx": lambda: orders_workbook(varied_orders(), language="nl"),
    "one-sheet-zh.xlsx": lambda: orders_workbook(varied_orders(), language="zh", one_sheet=True),
    "cancelled-sv.xlsx": lambda: orders_workbook(
        varied_orders()[:2], language="sv", cancelled="CX-1: no longer needed"
    ),
    "empty-en.xlsx": lambda: orders_workbook([], language="en"),
    "columns-inkop.xlsx": lambda: columns_workbook(INKOP, varied_orders()),
    "columns-cancelled.xlsx": lambda: columns_workbook(
        INKOP, varied_orders()[:1], cancelled="CX-2: duplicate"
    ),
}


def snapshot(data: bytes) -> dict[str, Any]:
    """Everything a supplier sees in a workbook, read back with openpyxl (not write-only)."""
    book = openpyxl.load_workbook(io.BytesIO(data))
    out: dict[str, Any] = {"title": book.properties.title, "sheets": book.sheetnames}
    for sheet in book.worksheets:
        cells = {
            c.coordinate: (
                c.value,
                c.data_type,
                c.number_format,
                c.font.b,
                c.font.sz,
                c.fill.fgColor.rgb if c.fill.fill_type else None,
                c.alignment.horizontal,
            )
            for row in sheet.iter_rows()
            for c in row
            if c.value is not None or c.has_style
        }
        widths = {k: d.width for k, d in sheet.column_dimensions.items() if d.customWidth}
        out[sheet.title] = {
            "cells": cells,
            "widths": widths,
            "freeze": sheet.freeze_panes,
            "filter": sheet.auto_filter.ref,
        }
    return out


@pytest.mark.parametrize("name", sorted(WORKBOOKS))
def test_workbooks_are_what_the_renderers_wrote_before(name: str) -> None:
    """Same sheets, cells (value, type, number format, font, fill, alignment), widths, frozen
    panes and filters as the golden written by the pre-write-only code (README there)."""
    old, new = snapshot((GOLDEN / name).read_bytes()), snapshot(WORKBOOKS[name]())
    assert new["sheets"] == old["sheets"]
    for title in old["sheets"]:
        assert new[title]["cells"] == old[title]["cells"], title
        assert new[title] == old[title], title
    assert new == old


def test_golden_bundle_is_varied_enough_to_mean_something() -> None:
    old = snapshot((GOLDEN / "sheets-nl.xlsx").read_bytes())
    assert len(old["sheets"]) == 6 and len(set(old["sheets"])) == 6
    big = old["BIG-1"]
    assert big["filter"] == "A6:L1009"  # 1,003 lines under the header in row 6
    assert big["cells"]["E1009"][0] == "item 1003"
    # width of column E: the 50 w's of line 1,001 count, the 58 y's of line 1,002 do not
    assert big["widths"]["E"] == 51
    kinds = {v[1] for sheet in old["sheets"] for v in old[sheet]["cells"].values()}
    assert {"s", "n", "d"} <= kinds


def test_csv_is_byte_for_byte_what_it_was() -> None:
    orders = varied_orders()
    assert orders_csv(orders, language="sv") == (GOLDEN / "bundle-sv.csv").read_bytes()
    cancelled = orders_csv(
        orders[:4], language="en", cancelled="CX-3: wrong site", delimiter=",", encoding="utf-16"
    )
    assert cancelled == (GOLDEN / "cancelled-en.csv").read_bytes()


def test_a_workbook_of_many_sheets_keeps_no_file_open_per_sheet() -> None:
    """Write-only sheets buffer in temporary files: closed as each is done, so a bundle of
    more orders than the process may open files still saves."""
    order = varied_orders()[1]
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    opened = len(os.listdir("/proc/self/fd"))
    resource.setrlimit(resource.RLIMIT_NOFILE, (opened + 64, hard))
    try:
        data = orders_workbook([order] * 300, language="en")
        layout_data = columns_workbook(INKOP, [order] * 300)
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    assert len(openpyxl.load_workbook(io.BytesIO(data)).sheetnames) == 300
    assert len(openpyxl.load_workbook(io.BytesIO(layout_data)).sheetnames) == 300


def test_a_column_map_workbook_of_no_orders_still_opens() -> None:
    book = openpyxl.load_workbook(io.BytesIO(columns_workbook(INKOP, [])))
    assert book.sheetnames == ["orders"] and book["orders"].max_row == 1


def test_a_column_map_cell_that_is_no_cell_stops_start_up(tmp_path: Path) -> None:
    folder = tmp_path / "seller"
    folder.mkdir()
    text = INKOP.path.read_text(encoding="utf-8").replace("  A3: Kund", "  A3:B4: Kund")
    (folder / "inkop.columns.yaml").write_text(text, encoding="utf-8")
    problem = layout_problem(tmp_path, "seller", "inkop", workbook=True)
    assert problem is not None and "cell 'A3:B4', expected a cell such as B3" in problem


@pytest.mark.parametrize(
    "cell", ["A1", "B3", "b3", "B03", "Z9", "AA10", "az27", "ZZ702", "XFD1", "A1048576"]
)
def test_a_cell_is_read_as_openpyxl_reads_it(cell: str) -> None:
    """Column maps name cells without openpyxl (its import was most of validating a config):
    the same (row, column) as openpyxl's own reading."""
    from openpyxl.utils.cell import coordinate_to_tuple

    from edi_gateway.outbound.layout import _coordinate

    assert _coordinate(INKOP, cell) == coordinate_to_tuple(cell)


@pytest.mark.parametrize(
    "cell",
    [
        "",
        "A",
        "3",
        "B0",
        "A0001048577",
        "XFE1",
        "AAAA1",
        "A3:B4",
        "$B$3",
        "B 3",
        "B3 ",
        "B-3",
        "B\u0663",
    ],
)
def test_what_is_no_cell_of_a_sheet_is_refused(cell: str) -> None:
    from edi_gateway.outbound.layout import LayoutError, _coordinate

    with pytest.raises(LayoutError, match="expected a cell such as B3"):
        _coordinate(INKOP, cell)


# -- parts ----------------------------------------------------------------------------------


def fill(gw: Gateway, count: int, lines: int = 2) -> list[str]:
    numbers = [f"PO-{n}" for n in range(1, count + 1)]
    for number in numbers:
        receive(gw, f.order(number, f.items(lines)))
    return numbers


def test_max_orders_splits_a_workbook_into_parts_in_sequence(store: Store, tmp_path: Path) -> None:
    gw = gateway(store, tmp_path, formats=["xlsx"], bundle="workbook", when_waiting=5, max_orders=2)
    numbers = fill(gw, 5)
    flush_all(gw.store, gw.settings)
    files = sent(tmp_path)
    day = files[0].name.split("-", 1)[1].rsplit("-", 1)[0]
    assert [p.name for p in files] == [f"seller-{day}-{n:04d}.xlsx" for n in (1, 2, 3)]
    sheets = [openpyxl.load_workbook(p).sheetnames for p in files]
    assert sheets == [numbers[0:2], numbers[2:4], numbers[4:5]]  # whole orders, in order
    book = openpyxl.load_workbook(files[1])
    assert book[numbers[2]]["B2"].value == numbers[2]
    assert book[numbers[3]].cell(row=7, column=2).value == "SKU-00001"
    assert states(gw) == ["delivered"] * 5
    with gw.store.session() as session:
        bundles = list(session.scalars(select(Forward.bundle).order_by(Forward.id)))
        rows = list(session.execute(select(OutboxRow.doc_number, OutboxRow.filename)))
    assert bundles == ["seller-1", "seller-1", "seller-2", "seller-2", "seller-3"]
    assert sorted(d for d, _ in rows) == ["seller-1", "seller-2", "seller-3"]
    queued = [h for h in detail(gw, "PO-3")["history"] if h["event"] == "forward.queued"]
    assert [h["detail"] for h in queued] == [
        f"in bundle seller-2 for seller: seller-{day}-0002.xlsx"
    ]
    # the next flush goes on from the last part's number
    receive(gw, f.order("PO-6"))
    for number in ("PO-7", "PO-8", "PO-9", "PO-10"):
        receive(gw, f.order(number))
    flush_all(gw.store, gw.settings)
    assert [p.name[-9:] for p in sent(tmp_path)][3:] == ["0004.xlsx", "0005.xlsx", "0006.xlsx"]


def test_parts_may_say_which_part_they_are(store: Store, tmp_path: Path) -> None:
    gw = gateway(
        store,
        tmp_path,
        formats=["ubl", "csv"],
        bundle="zip",
        when_waiting=5,
        max_orders=2,
        bundle_filename="{supplier}-{seq}-part{part}.{ext}",
        filename="{order}-{seq}.{ext}",
    )
    fill(gw, 3)
    flush_forwards(gw.store, gw.settings, force=True)  # fewer than when_waiting: forced
    receive(gw, f.order("PO-4", f.items(2)))
    receive(gw, f.order("PO-5", f.items(2)))
    flush_forwards(gw.store, gw.settings, force=True)
    flush_all(gw.store, gw.settings)
    files = sent(tmp_path)
    assert [p.name for p in files] == [
        "seller-1-part1.zip",
        "seller-2-part2.zip",
        "seller-3-part1.zip",  # the next flush counts its parts from 1 again
    ]
    members = [sorted(zipfile.ZipFile(p).namelist()) for p in files]
    assert members == [
        ["PO-1-1.csv", "PO-1-1.xml", "PO-2-1.csv", "PO-2-1.xml"],
        ["PO-3-2.csv", "PO-3-2.xml"],
        ["PO-4-3.csv", "PO-4-3.xml", "PO-5-3.csv", "PO-5-3.xml"],
    ]
    archive = zipfile.ZipFile(files[1])
    assert archive.read("PO-3-2.xml") == f.order("PO-3", f.items(2))  # unchanged bytes
    rows = list(
        csv.reader(io.StringIO(archive.read("PO-3-2.csv").decode("utf-8-sig")), delimiter=";")
    )
    assert [r[0] for r in rows[1:]] == ["PO-3", "PO-3"]


def test_max_bytes_cuts_a_csv_into_files_that_fit(
    store: Store, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    gw = gateway(store, tmp_path, formats=["csv"], bundle="csv", when_waiting=12, max_bytes=4096)
    fill(gw, 11, lines=2)
    receive(gw, f.order("PO-BIG", f.items(40)))  # more than 4 KB on its own
    with caplog.at_level(logging.WARNING):
        flush_all(gw.store, gw.settings)
    files = sent(tmp_path)
    assert len(files) > 2
    seen: list[str] = []
    for path in files:
        rows = list(csv.reader(io.StringIO(path.read_text("utf-8-sig")), delimiter=";"))
        assert rows[0][0] == "Ordernummer"  # every part a complete file with its header
        orders = list(dict.fromkeys(r[0] for r in rows[1:]))
        seen += orders
        if orders != ["PO-BIG"]:
            assert path.stat().st_size <= 4096, path.name
    assert seen == [f"PO-{n}" for n in range(1, 12)] + ["PO-BIG"]  # once each, in order
    assert files[-1].stat().st_size > 4096
    assert "order PO-BIG alone makes a csv of" in caplog.text
    assert states(gw) == ["delivered"] * 12


def test_max_bytes_on_a_workbook_and_on_a_zip(store: Store, tmp_path: Path) -> None:
    gw = gateway(
        store, tmp_path, formats=["xlsx"], bundle="workbook", when_waiting=8, max_bytes=12_000
    )
    fill(gw, 8, lines=3)
    flush_all(gw.store, gw.settings)
    files = sent(tmp_path)
    assert len(files) > 1 and all(p.stat().st_size <= 12_000 for p in files)
    sheets = [s for p in files for s in openpyxl.load_workbook(p).sheetnames]
    assert sheets == [f"PO-{n}" for n in range(1, 9)]


def test_zip_parts_fit_max_bytes(store: Store, tmp_path: Path) -> None:
    gw = gateway(store, tmp_path, formats=["ubl"], bundle="zip", when_waiting=9, max_bytes=4096)
    fill(gw, 9, lines=3)
    flush_all(gw.store, gw.settings)
    files = sent(tmp_path)
    assert len(files) > 1 and all(p.stat().st_size <= 4096 for p in files)
    members = [n for p in files for n in zipfile.ZipFile(p).namelist()]
    assert members == [f"seller-PO-{n}-ubl.xml" for n in range(1, 10)]


@pytest.mark.parametrize(
    ("profile", "message"),
    [
        ({"max_orders": 10}, "found max_orders with bundle: none"),
        ({"max_bytes": 100_000}, "found max_bytes with bundle: none"),
        (
            {"bundle": "csv", "formats": ["csv"], "at": ["08:00"], "max_orders": 0},
            "greater than or equal to 1",
        ),
        (
            {"bundle": "csv", "formats": ["csv"], "at": ["08:00"], "max_bytes": 100},
            "greater than or equal to 1024",
        ),
        (
            {"bundle": "csv", "formats": ["csv"], "at": ["08:00"], "max_orders": "many"},
            "valid integer",
        ),
        (
            {"bundle": "csv", "formats": ["csv"], "at": ["08:00"], "max_orders": True},
            "valid integer",
        ),
        (
            {"bundle": "csv", "formats": ["csv"], "at": ["08:00"], "max_bytes": 2.0e6},
            "valid integer",
        ),
        (
            {"bundle": "csv", "formats": ["csv"], "at": ["08:00"], "max_files": 3},
            "max_files",
        ),
        (
            {
                "bundle": "csv",
                "formats": ["csv"],
                "at": ["08:00"],
                "bundle_filename": "{supplier}-{part:02d}-of-{parts}.{ext}",
            },
            r"\{parts\}",
        ),
    ],
)
def test_cap_config_errors(tmp_path: Path, profile: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        settings(tmp_path, **profile)


def test_cap_and_part_placeholders_load(tmp_path: Path) -> None:
    loaded = settings(
        tmp_path,
        formats=["csv"],
        bundle="csv",
        at=["08:00"],
        max_orders=500,
        max_bytes=10_000_000,
        bundle_filename="{supplier}-{date}-{seq:04d}-{part:02d}.{ext}",
    )
    profile = loaded.partners[1].forward
    assert profile is not None and (profile.max_orders, profile.max_bytes) == (500, 10_000_000)


# -- kill -9 between parts --------------------------------------------------------------------


def test_kill_between_parts_loses_nothing_and_sends_nothing_twice(
    store: Store, tmp_path: Path
) -> None:
    """SIGKILL after the second part is queued (crash point ``after-bundle-part``), before the
    flush commits: nothing is queued, every order still waits; the next flush sends each order
    in exactly one part, and one more flush sends nothing."""
    gw = gateway(store, tmp_path, formats=["csv"], bundle="csv", when_waiting=7, max_orders=3)
    fill(gw, 7)
    config = tmp_path / "gateway.yaml"
    config.write_text(_yaml(gw, tmp_path), encoding="utf-8")
    command = [str(Path(sys.executable).with_name("edi-gateway")), "--config", str(config)]

    def flush(crash_at: str | None = None) -> int:
        env = {k: v for k, v in os.environ.items() if k != "EDI_GATEWAY_CRASH_AT"}
        if crash_at:
            env["EDI_GATEWAY_CRASH_AT"] = crash_at
        return subprocess.run(
            [*command, "outbox", "flush"], env=env, capture_output=True, timeout=120, check=False
        ).returncode

    assert flush("after-bundle-part@2") == -signal.SIGKILL
    with gw.store.session() as session:
        assert session.scalars(select(OutboxRow)).all() == []
    assert states(gw) == ["waiting"] * 7 and sent(tmp_path) == []
    assert flush() == 0
    assert flush() == 0  # a re-run finds nothing to bundle or send
    files = sent(tmp_path)
    assert len(files) == 3
    orders = Counter(
        row[0]
        for path in files
        for row in list(csv.reader(io.StringIO(path.read_text("utf-8-sig")), delimiter=";"))[1:]
    )
    assert sorted(orders) == sorted(f"PO-{n}" for n in range(1, 8))
    assert set(orders.values()) == {2}  # each order's two lines, in one file only
    assert states(gw) == ["delivered"] * 7
    assert [h["event"] for h in detail(gw, "PO-7")["history"]].count("forward.queued") == 1


ORM_PROBE = """\
import atexit, json, sys

atexit.register(lambda: print("IMPORTED " + json.dumps(
    [m for m in ("sqlalchemy.orm", "edi_gateway.store.tables") if m in sys.modules]
), file=sys.stderr))
from edi_gateway.cli import main

sys.exit(main(sys.argv[1:]))
"""


def test_a_bundle_flush_delivers_without_importing_the_orm(store: Store, tmp_path: Path) -> None:
    """``outbox flush`` of a CSV bundle reads, queues, delivers and marks with Core only: the
    ORM and its mapping cost more start-up than the flush's own work (docs/adr/0039)."""
    gw = gateway(store, tmp_path, formats=["csv"], bundle="csv", when_waiting=3)
    fill(gw, 3)
    config = tmp_path / "gateway.yaml"
    config.write_text(_yaml(gw, tmp_path), encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "-c", ORM_PROBE, "--config", str(config), "outbox", "flush"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "delivered 1," in done.stdout
    said = [ln for ln in done.stderr.splitlines() if ln.startswith("IMPORTED ")]
    assert said == ["IMPORTED []"], done.stderr
    assert states(gw) == ["delivered"] * 3 and len(sent(tmp_path)) == 1


def test_a_cancellation_withdraws_only_its_own_part(store: Store, tmp_path: Path) -> None:
    """Each part is a bundle of its own: cancelling an order of an unsent part withdraws that
    part (its other orders wait again), never the parts beside it."""
    gw = gateway(
        store, tmp_path, formats=["ubl", "csv"], bundle="zip", when_waiting=4, max_orders=2
    )
    fill(gw, 4, lines=1)
    assert len(flush_forwards(gw.store, gw.settings)["seller"]) == 2  # two parts queued
    receive(gw, f.order_cancellation("C-1", "PO-3"))
    with gw.store.session() as session:
        query = select(OutboxRow.doc_number, OutboxRow.state).where(OutboxRow.partner == "seller")
        outbox = {number: state for number, state in session.execute(query)}
    assert outbox == {"seller-1": "pending", "seller-2": "withdrawn"}
    assert states(gw) == ["queued", "queued", "withdrawn", "waiting"]
    flush_forwards(gw.store, gw.settings, force=True)
    flush_all(gw.store, gw.settings)
    members = [sorted(zipfile.ZipFile(p).namelist()) for p in sent(tmp_path)]
    assert [n for m in members for n in m if n.endswith(".xml")] == [
        "seller-PO-1-ubl.xml",
        "seller-PO-2-ubl.xml",
        "seller-PO-4-ubl.xml",  # PO-3 never goes; PO-4 in the next bundle, seller-3
    ]
    assert states(gw) == ["delivered", "delivered", "withdrawn", "delivered"]


def test_with_max_orders_a_flush_reads_one_part_at_a_time(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What bounds a big flush's memory: each part's orders are read and rendered only once
    the part before is queued."""
    from edi_gateway.outbound import forward

    gw = gateway(store, tmp_path, formats=["xlsx"], bundle="workbook", when_waiting=7, max_orders=3)
    fill(gw, 7, lines=1)
    real, read = forward._render, []

    def render(session: Any, partner: Any, rows: Any, moment: Any) -> Any:
        queued = session.scalars(select(OutboxRow.id)).all()  # in the flush's transaction
        read.append((len(rows), len(queued)))
        return real(session, partner, rows, moment)

    monkeypatch.setattr(forward, "_render", render)
    flush_all(gw.store, gw.settings)
    assert read == [(3, 0), (3, 1), (1, 2)]  # 3 orders read, queued; the next 3...
    assert len(sent(tmp_path)) == 3 and states(gw) == ["delivered"] * 7
