"""Supplier layouts: templates and Excel column maps from mappings/, rendered from an Order."""

from __future__ import annotations

import io
import shutil
from datetime import date
from decimal import Decimal
from pathlib import Path

import openpyxl
import pytest
from lxml import etree

from edi_gateway.domain.documents import Order
from edi_gateway.outbound.layout import (
    LayoutError,
    columns_workbook,
    find_layout,
    layout_problem,
    render_template,
)
from edi_gateway.ubl.parse import parse
from edi_gateway.ubl.read import interpret
from tests import factory as f

MAPPINGS = Path(__file__).resolve().parents[2] / "mappings"
DAY = date(2026, 11, 22)


def order(order_id: str = "PO-1", lines: int = 2, buyer_name: str = "Buyer AB") -> Order:
    payload = f.order(order_id, f.items(lines), buyer_name=buyer_name)
    document = interpret(parse(payload, max_size=len(payload) + 1))
    assert isinstance(document, Order)
    return document


def test_fixed_width_layout_keeps_every_column_in_place() -> None:
    layout = find_layout(MAPPINGS, "nordisk", "erp")
    text = render_template(layout, order(lines=3), supplier="nordisk", sent_on=DAY).decode()
    records = text.splitlines()
    assert [r[0] for r in records] == ["H", "L", "L", "L", "T"]
    assert {len(r) for r in records[1:4]} == {1 + 6 + 20 + 40 + 12 + 3 + 12 + 8}
    first = records[1]
    assert first[1:7] == "     1" and first[7:27].rstrip() == "SKU-00001"
    assert first[67:79] == "      10.000" and first[79:82] == "C62"
    assert records[0].startswith("HPO-1") and "20261101" in records[0]
    assert records[-1] == "T     3"


def test_xml_layout_is_escaped_and_well_formed() -> None:
    layout = find_layout(MAPPINGS, "delftlab", "bestelling")
    assert (layout.kind, layout.extension, layout.media_type) == (
        "template",
        "xml",
        "application/xml",
    )
    payload = render_template(
        layout, order(buyer_name="Lab & <Kantoor> B.V."), supplier="delftlab", sent_on=DAY
    )
    root = etree.fromstring(payload)
    ns = {"d": "urn:example:delftlab:bestelling:1"}
    assert root.get("nummer") == "PO-1"
    assert root.findtext("d:Klant", namespaces=ns) == "Lab & <Kantoor> B.V."
    assert [r.findtext("d:Aantal", namespaces=ns) for r in root.findall("d:Regel", ns)] == [
        "10.000",
        "10.000",
    ]


def test_csv_template_quotes_what_needs_it() -> None:
    layout = find_layout(MAPPINGS, "delftlab", "regels")
    payload = render_template(layout, order("PO;7"), supplier="delftlab", sent_on=DAY)
    rows = payload.decode().splitlines()
    assert rows[0].startswith("bestelnummer;regel;artikel")
    assert rows[1].startswith('"PO;7";1;SKU-00001;Article 1;10,000;C62;2,25')
    assert len(rows) == 3


def test_excel_column_map_writes_typed_cells_one_sheet_per_order() -> None:
    layout = find_layout(MAPPINGS, "nordisk", "inkop")
    assert layout.kind == "columns" and layout.extension == "xlsx"
    book = openpyxl.load_workbook(io.BytesIO(columns_workbook(layout, [order(), order("PO-2")])))
    assert book.sheetnames == ["Order PO-1", "Order PO-2"]
    sheet = book["Order PO-1"]
    assert (sheet["A1"].value, sheet["B1"].value) == ("Inköpsorder", "PO-1")
    assert sheet["B2"].value.date() == date(2026, 11, 1)
    titles = [c.value for c in sheet[5]]
    assert titles[:5] == ["Rad", "Artikelnr", "GTIN", "Benämning", "Antal"]
    quantity, price = sheet.cell(row=6, column=5), sheet.cell(row=6, column=7)
    assert quantity.value == 10 and isinstance(quantity.value, int | float)
    assert Decimal(str(price.value)) == Decimal("2.25") and price.number_format == "#,##0.00"
    assert sheet.cell(row=8, column=1).value is None  # two lines, nothing after


def test_templates_run_sandboxed_and_strict(tmp_path: Path) -> None:
    folder = tmp_path / "acme"
    folder.mkdir()
    (folder / "sneaky.txt.j2").write_text("{{ order.__class__.__mro__[1].__subclasses__() }}")
    (folder / "typo.txt.j2").write_text("{{ order.documnet_id }}")
    for name in ("sneaky", "typo"):
        layout = find_layout(tmp_path, "acme", name)
        with pytest.raises(LayoutError, match="failed on order PO-1"):
            render_template(layout, order(), supplier="acme", sent_on=DAY)


def test_problems_are_found_when_the_config_is_loaded(tmp_path: Path) -> None:
    shutil.copytree(MAPPINGS / "nordisk", tmp_path / "acme")
    assert layout_problem(tmp_path, "acme", "erp") is None
    assert "layouts there: erp, inkop" in (layout_problem(tmp_path, "acme", "nope") or "")
    assert "expected an Excel column map" in (
        layout_problem(tmp_path, "acme", "erp", workbook=True) or ""
    )
    (tmp_path / "acme" / "broken.txt.j2").write_text("{% for line in lines %}no end")
    assert "line 1: not a usable template" in (layout_problem(tmp_path, "acme", "broken") or "")
    (tmp_path / "acme" / "bad.columns.yaml").write_text(
        "columns:\n  - {title: X, field: line.quantity.colour}\n"
    )
    assert "'colour' is not a field" in (layout_problem(tmp_path, "acme", "bad") or "")
    (tmp_path / "acme" / "list.columns.yaml").write_text(
        "columns:\n  - {title: X, field: order.lines}\n"
    )
    assert "not a single value" in (layout_problem(tmp_path, "acme", "list") or "")
