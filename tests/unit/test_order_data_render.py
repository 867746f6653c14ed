"""Issue 10 point 5: what a supplier gets says where and when to deliver (PDF, xlsx, CSV and
mappings/ layouts), with the order type, buyer reference, contacts, notes and attachments."""

from __future__ import annotations

import csv
import io
import shutil
import subprocess
from datetime import datetime
from pathlib import Path

import openpyxl
import pytest
from lxml import etree

from edi_gateway.outbound.forward import flush_all
from edi_gateway.outbound.layout import LayoutError, find_layout, load_columns
from edi_gateway.outbound.render import csv as csv_render
from edi_gateway.outbound.render import pdf, xlsx
from edi_gateway.store.db import Store
from tests import factory as f
from tests.servers import debian_command
from tests.unit.order_data_support import (
    DELIVERY,
    EXPRESS,
    attachment,
    order_example,
    order_with_data,
    read,
)
from tests.unit.support import receive
from tests.unit.test_forward import MAPPINGS, gateway, sent

PERIOD = "2026-12-14 08:00:00 – 2026-12-15 16:00:00"


def pdf_text(data: bytes, tmp_path: Path) -> str:
    """The text pdftotext (poppler) reads from ``data``, lines joined by single spaces."""
    path = tmp_path / "order.pdf"
    path.write_bytes(data)
    tool = debian_command("pdftotext", "poppler-utils")
    done = subprocess.run([tool, "-layout", str(path), "-"], capture_output=True, check=True)
    return " ".join(done.stdout.decode("utf-8").split())


def _order() -> bytes:
    return order_with_data(
        attachments=attachment("D1", filename="plan.pdf"),
        delivery=DELIVERY.format(shipment=EXPRESS),
        notes=("Ring at gate B",),
    )


def test_forwarded_pdf_xlsx_and_csv_say_where_and_when(store: Store, tmp_path: Path) -> None:
    gw = gateway(store, tmp_path, formats=["pdf", "xlsx", "csv"])
    receive(gw, _order())
    flush_all(gw.store, gw.settings)
    files = {p.suffix: p.read_bytes() for p in sent(tmp_path)}
    assert sorted(files) == [".csv", ".pdf", ".xlsx"]

    text = pdf_text(files[".pdf"], tmp_path)  # the supplier's language: Swedish
    for expected in (
        "Ordertyp Ramorder (221), Expressleverans",
        "Köparens referens REF-77",
        "Leveransmottagare Dock 4 (0088:7300010000099)",
        "Leveransadress Kajen 7, 41101 Göteborg, SE",
        f"Önskad leverans {PERIOD}",
        "Kontakt köpare Anna Buyer, anna@buyer.example",
        "Kontakt leverans Eva, +46 31 100",
        "Bilagor Drawing D1 (plan.pdf)",
        "Ring at gate B",
    ):
        assert expected in text, (expected, text)

    sheet = openpyxl.load_workbook(io.BytesIO(files[".xlsx"])).active
    block = {
        sheet.cell(row=r, column=c).value: sheet.cell(row=r, column=c + 1).value
        for r in range(2, 6)
        for c in (1, 4, 7, 10, 13)
    }
    assert block["Ordertyp"] == "Ramorder (221), Expressleverans"
    assert block["Leveransmottagare"] == "Dock 4 (0088:7300010000099)"
    assert block["Leveransadress"] == "Kajen 7, 41101 Göteborg, SE"
    assert block["Önskad leverans"] == PERIOD
    assert block["Köparens referens"] == "REF-77"
    assert block["Anteckningar"] == "Ring at gate B"
    assert block["Kontakt köpare"] == "Anna Buyer, anna@buyer.example"
    assert block["Kontakt leverans"].startswith("Eva, +46 31 100")
    assert block["Bilagor"] == "Drawing D1 (plan.pdf)"  # the workbook lists what the PDF does
    assert sheet.cell(row=6, column=1).value == "Rad"  # the line table stays where it was

    rows = list(csv.reader(io.StringIO(files[".csv"].decode("utf-8-sig")), delimiter=";"))
    header, first = rows[0], dict(zip(rows[0], rows[1], strict=True))
    assert len(rows) == 1 + 3 and "Leveransadress" in header
    assert first["Leveransmottagare"] == "Dock 4 (0088:7300010000099)"
    assert first["Leveransadress"] == "Kajen 7, 41101 Göteborg, SE"
    assert (first["Leverans från"], first["Leverans senast"]) == ("2026-12-14", "2026-12-15")
    assert first["Ordertyp"] == "221" and first["Köparens referens"] == "REF-77"
    assert first["Kontakt leverans"].startswith("Eva, +46 31 100")
    assert first["Bilagor"] == "Drawing D1 (plan.pdf)"


def test_renders_of_an_order_without_data_leave_the_fields_empty(tmp_path: Path) -> None:
    order = read(f.order("PO-1"))
    text = pdf_text(pdf.order_pdf(order), tmp_path)
    assert "Order type Purchase order (220)" in text  # Peppol's default, said as such
    assert "Delivery address" not in text and "Requested delivery" not in text
    rows = list(
        csv.reader(io.StringIO(csv_render.orders_csv([order]).decode("utf-8-sig")), delimiter=";")
    )
    first = dict(zip(rows[0], rows[1], strict=True))
    assert first["Deliver to"] == first["Delivery address"] == first["Deliver from"] == ""
    book = openpyxl.load_workbook(io.BytesIO(xlsx.orders_workbook([order], one_sheet=True)))
    head = [c.value for c in book.active[1]]
    assert book.active.cell(row=2, column=head.index("Deliver from") + 1).value is None


def test_one_sheet_workbook_has_typed_delivery_dates() -> None:
    order = read(order_example().read_bytes())
    book = openpyxl.load_workbook(io.BytesIO(xlsx.orders_workbook([order], one_sheet=True)))
    sheet = book.active
    head = [c.value for c in sheet[1]]
    start = sheet.cell(row=2, column=head.index("Deliver from") + 1)
    assert isinstance(start.value, datetime) and start.is_date
    assert start.value.date().isoformat() == "2012-10-10"
    assert sheet.cell(row=2, column=head.index("Delivery address") + 1).value == (
        "Solheimsveien 10, Add, 3rd Address line, 1473 Lørenskog, Region, NO"
    )


def test_delftlab_layout_carries_the_delivery(store: Store, tmp_path: Path) -> None:
    gw = gateway(store, tmp_path, "delftlab", formats=["layout:bestelling"])
    receive(gw, _order())
    receive(gw, f.order("PO-2"))  # no delivery: no Levering element, no error
    flush_all(gw.store, gw.settings)
    one, two = (etree.fromstring(p.read_bytes()) for p in sent(tmp_path))
    ns = {"d": "urn:example:delftlab:bestelling:1"}
    [levering] = one.findall("d:Levering", ns)
    assert levering.get("soort") == "221" and levering.get("spoed") == "ja"
    assert levering.findtext("d:Plaats", namespaces=ns) == "Dock 4"
    assert levering.find("d:Plaats", ns).get("gln") == "7300010000099"
    assert levering.findtext("d:Adres/d:Plaatsnaam", namespaces=ns) == "Göteborg"
    assert levering.findtext("d:Vanaf", namespaces=ns) == "2026-12-14 08:00:00"
    assert levering.findtext("d:Uiterlijk", namespaces=ns) == "2026-12-15 16:00:00"
    assert one.findtext("d:Referentie", namespaces=ns) == "REF-77"
    assert two.findall("d:Levering", ns) == []


COLUMN_MAP = """
sheet: "{order}"
header_row: 4
labels: {A1: Leveransadress, A2: Leveransdatum}
cells:
  B1: order.delivery.address.street
  C1: order.delivery.address.city
  B2: order.delivery.start_date
  C2: order.delivery.end_date
  D1: order.order_type
  D2: order.buyer_contact.email
columns:
  - {title: Rad, field: line.line_id}
"""


def _column_layout(tmp_path: Path, text: str) -> Path:
    folder = tmp_path / "mappings" / "seller"
    shutil.copytree(MAPPINGS / "nordisk", folder)
    (folder / "leverans.columns.yaml").write_text(text, encoding="utf-8")
    return folder


def test_a_column_map_takes_delivery_fields(store: Store, tmp_path: Path) -> None:
    _column_layout(tmp_path, COLUMN_MAP)
    gw = gateway(store, tmp_path, formats=["layout:leverans"], bundle="workbook", when_waiting=2)
    receive(gw, _order())
    receive(gw, f.order("PO-2"))
    flush_all(gw.store, gw.settings)
    [book_file] = sent(tmp_path)
    book = openpyxl.load_workbook(book_file)
    po1, po2 = book["PO-1"], book["PO-2"]
    assert (po1["B1"].value, po1["C1"].value, po1["D1"].value) == ("Kajen 7", "Göteborg", "221")
    assert po1["B2"].value.date().isoformat() == "2026-12-14"
    assert po1["C2"].value.date().isoformat() == "2026-12-15"
    assert po1["D2"].value == "anna@buyer.example"
    assert po2["B1"].value is None and po2["B2"].value is None  # says nothing: empty cells


@pytest.mark.parametrize(
    ("field", "why"),
    [
        ("order.delivery.adress.city", "'adress' is not a field here"),
        ("order.delivery.address", "not a single value"),
        ("order.attachments", "not a single value"),
    ],
)
def test_a_column_map_with_a_wrong_delivery_field_is_refused(
    tmp_path: Path, field: str, why: str
) -> None:
    folder = _column_layout(tmp_path, COLUMN_MAP.replace("order.delivery.address.city", field))
    with pytest.raises(LayoutError, match=why):
        load_columns(find_layout(folder.parent, "seller", "leverans"))


def test_a_line_delivery_place_is_printed_and_a_csv_column(tmp_path: Path) -> None:
    from tests.unit.test_order_data import LINE_DELIVERY

    text = f.order("PO-1").decode()
    first_price = text.index("<cac:Price>")
    order = read((text[:first_price] + LINE_DELIVERY + text[first_price:]).encode())
    printed = pdf_text(pdf.order_pdf(order), tmp_path)
    assert "Deliver to: Ward 3 (0088:7300010000111), Malmö" in printed
    data = csv_render.orders_csv([order], language="sv").decode("utf-8-sig")
    rows = list(csv.reader(io.StringIO(data), delimiter=";"))
    places = [dict(zip(rows[0], r, strict=True))["Rad levereras till"] for r in rows[1:]]
    assert places == ["Ward 3 (0088:7300010000111), Malmö", "", ""]


@pytest.mark.parametrize("language", ["en", "nl", "sv", "zh"])
def test_every_peppol_order_type_is_named_in_every_language(language: str) -> None:
    from edi_gateway.domain.order_data import ORDER_TYPES
    from edi_gateway.outbound.i18n import catalogue, translator
    from edi_gateway.outbound.render import order_type_label

    own = catalogue(language)
    assert {f"order_type.{code}" for code in ORDER_TYPES} <= set(own)
    t = translator(language)
    for code in ORDER_TYPES:
        order = read(order_with_data(type_code=code, delivery=None))
        assert order_type_label(order, t) == f"{own[f'order_type.{code}']} ({code})"
    odd = read(order_with_data(type_code="999", delivery=DELIVERY.format(shipment=EXPRESS)))
    assert order_type_label(odd, t) == f"999, {own['delivery.express']}"  # shown as sent
