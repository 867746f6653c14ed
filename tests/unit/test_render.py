"""Human formats of outbound documents: PDF (read back with pypdf), Excel (openpyxl), CSV."""

from __future__ import annotations

import csv
import io
import json
import re
from dataclasses import dataclass, replace
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from openpyxl import load_workbook
from pypdf import PdfReader

from edi_gateway.domain.documents import (
    DespatchAdvice,
    Document,
    DocumentKind,
    Invoice,
    Line,
    Order,
    Party,
    PartyId,
    Quantity,
)
from edi_gateway.domain.sscc import sscc
from edi_gateway.outbound import i18n
from edi_gateway.outbound.render import vat_breakdown
from edi_gateway.outbound.render.csv import orders_csv
from edi_gateway.outbound.render.labels import packing_slip_pdf
from edi_gateway.outbound.render.pdf import invoice_pdf, order_pdf
from edi_gateway.outbound.render.xlsx import orders_workbook
from edi_gateway.ubl.parse import parse
from edi_gateway.ubl.read import interpret
from tests import factory

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "samples"
SOURCES = ROOT / "src" / "edi_gateway" / "outbound"
LOCALES = SOURCES / "locales"
MASK = "一次性医用口罩"


def read(payload: bytes) -> Document:
    return interpret(parse(payload, max_size=50_000_000))


def sample(name: str) -> Document:
    return read((SAMPLES / name).read_bytes())


def chinese_order() -> Order:
    order = sample("order-rijnoever-4500012901.xml")
    assert isinstance(order, Order)
    return order


def swedish_order() -> Order:
    items = [
        factory.Item("1", "12", "89.50", "Sjukvårdsartiklar", seller_item="NV-1"),
        factory.Item("2", "2.500", "4.10", "Kompresser 10×10 cm, blå", unit="KGM"),
    ]
    xml = factory.order("VS-2026-7001", items, buyer_name="Region Västra Sjukvård")
    order = read(xml)
    assert isinstance(order, Order)
    order.currency = "SEK"
    return order


def pdf_text(data: bytes) -> list[str]:
    """The text of every page, with no-break spaces as spaces."""
    assert data.startswith(b"%PDF-")
    return [
        page.extract_text().replace("\u00a0", " ") for page in PdfReader(io.BytesIO(data)).pages
    ]


# -- catalogues ---------------------------------------------------------------------------


def used_keys() -> set[str]:
    pattern = re.compile(
        r"""["']((?:order|doc|party|column|despatch|label|invoice|delivery|contact)\.[a-z_]+)["']"""
    )
    sources = [SOURCES / "i18n.py", *(SOURCES / "render").glob("*.py")]
    return {key for path in sources for key in pattern.findall(path.read_text("utf-8"))}


def test_every_key_in_every_catalogue() -> None:
    catalogues = {
        lang: json.loads((LOCALES / f"{lang}.json").read_text("utf-8")) for lang in i18n.LANGUAGES
    }
    english = set(catalogues["en"])
    keys = used_keys()
    assert len(keys) > 40, keys
    for lang, catalogue in catalogues.items():
        assert set(catalogue) == english, f"{lang}: {set(catalogue) ^ english}"
        assert not keys - set(catalogue), f"{lang} lacks {keys - set(catalogue)}"
        assert all(text.strip() for text in catalogue.values()), lang
        for key, text in catalogue.items():
            placeholders = set(re.findall(r"\{(\w+)\}", text))
            assert placeholders == set(re.findall(r"\{(\w+)\}", catalogues["en"][key])), (lang, key)


def test_translator_picks_language_and_falls_back() -> None:
    assert i18n.translator("sv")("order.title") == "Inköpsorder"
    assert i18n.translator("nl-NL")("column.quantity") == "Aantal"
    assert i18n.translator("zh_CN")("column.item") == "品名"
    assert i18n.translator("fr")("order.title") == "Purchase order"
    assert i18n.translator("en")("no.such.key") == "no.such.key"
    assert i18n.unit_name("XBX", "nl") == "doos"
    assert i18n.unit_name("ZZZ", "nl") == "ZZZ"


@pytest.mark.parametrize(
    ("language", "amount", "quantity"),
    [
        ("en", "1,234,567.50", "2.5"),
        ("nl", "1.234.567,50", "2,5"),
        ("sv", "1\u00a0234\u00a0567,50", "2,5"),
        ("zh", "1,234,567.50", "2.5"),
    ],
)
def test_number_formats(language: str, amount: str, quantity: str) -> None:
    assert i18n.format_amount(Decimal("1234567.495"), language) == amount
    assert i18n.format_quantity(Decimal("2.500"), language) == quantity
    assert i18n.format_quantity(Decimal("40.000"), language) == "40"
    assert i18n.format_quantity(Decimal("1E+2"), language) == "100"
    assert i18n.format_amount(Decimal("3"), language).endswith("00")


# -- PDF ----------------------------------------------------------------------------------


def test_order_pdf_in_chinese_carries_cjk_text() -> None:
    pages = pdf_text(order_pdf(chinese_order(), language="zh"))
    text = "\n".join(pages)
    for expected in (
        "采购订单",
        "4500012901",
        "订单号",
        "品名",
        "数量",
        "金额",
        "订单总额",
        MASK,
        "乳胶检查手套",
        "848.05 EUR",
        "第 1 页，共 1 页",
    ):
        assert expected in text, expected
    assert "Zorggroep Rijnoever" in text and "2026-11-06" in text


def test_order_pdf_in_swedish_and_dutch_keeps_diacritics() -> None:
    swedish = "\n".join(pdf_text(order_pdf(swedish_order(), language="sv")))
    for expected in (
        "Inköpsorder VS-2026-7001",
        "Sjukvårdsartiklar",
        "Region Västra Sjukvård",
        "Köpare",
        "Leverantör",
        "À-pris",
        "10×10 cm, blå",
        "1 074,00",
        "2,5",
        "Sida 1 av 1",
    ):
        assert expected in swedish, expected
    dutch_order = sample("order-rijnoever-4500012873.xml")
    assert isinstance(dutch_order, Order)
    dutch = "\n".join(pdf_text(order_pdf(dutch_order, language="nl")))
    for expected in (
        "Inkooporder",
        "Geïsoleerde koelbox",
        "Café Crème",
        "Pipetpunten 200 µl",
        "Aantal",
        "Bedrag",
        "Pagina 1 van 1",
    ):
        assert expected in dutch, expected


def test_long_order_paginates_with_headings_and_page_numbers() -> None:
    order = read(factory.order("PO-300", factory.items(300)))
    assert isinstance(order, Order)
    pages = pdf_text(order_pdf(order))
    assert len(pages) >= 5
    total = len(pages)
    for number, page in enumerate(pages, start=1):
        assert f"Page {number} of {total}" in page
        assert "Purchase order PO-300" in page  # title on page 1, footer on every page
        assert "Quantity" in page and "Amount" in page  # the table heading repeats
    text = "\n".join(pages)
    assert all(f"Article {n}\n" in text for n in (1, 150, 300))
    lines_total = sum((ln.line_amount or Decimal(0) for ln in order.lines), Decimal(0))
    assert f"{lines_total:,.2f} EUR" in pages[-1]


def test_order_pdf_is_reproducible() -> None:
    order = chinese_order()
    assert order_pdf(order, language="zh") == order_pdf(order, language="zh")


def despatch() -> DespatchAdvice:
    advice = sample("despatchadvice-nordisk-880412.xml")
    assert isinstance(advice, DespatchAdvice)
    return advice


def test_packing_slip_has_delivery_note_and_one_label_per_box() -> None:
    order = sample("order-vastra-1001.xml")
    assert isinstance(order, Order)
    advice = despatch()
    boxes = [sscc(0, "7340001", serial) for serial in (1, 2, 3)]
    for n, line in enumerate(advice.lines):
        line.handling_unit = boxes[n % 3]
    assert len(advice.lines) >= 3
    pages = pdf_text(packing_slip_pdf(advice, order, language="sv"))
    note, labels = "\n".join(pages[:-3]), pages[-3:]
    assert "Kollietikett" not in note and len(pages) == 5
    for expected in (
        "Följesedel NV-DA-880412",
        "VS-2026-1001",
        "Beställt",
        "Levererat",
        "Leveransmottagare",
        "Region Västra Sjukvård",
        "DHL Freight (Sweden) AB",
        "1234567890",
        "Handsprit 85 % etanol",
    ):
        assert expected in note, expected
    assert re.search(r"\n3\n120\n100\nst\n3\n", note), "line 3: ordered 120, delivered 100, box 3"
    for box, sscc_value in enumerate(boxes, start=1):
        contents = f"Innehåll i kolli {box} av 3 · SSCC {sscc_value}"
        assert contents in note, contents
    for box, label in enumerate(labels, start=1):
        for expected in (
            "Kollietikett",
            "VS-2026-1001",
            "Region Västra Sjukvård",
            f"Kolli {box} av 3",
            "DHL Freight (Sweden) AB",
            "1234567890",
            f"(00) {boxes[box - 1]}",
        ):
            assert expected in label, expected


def test_packing_slip_without_order_in_chinese() -> None:
    advice = despatch()
    advice.lines[0].item_name = MASK
    pages = pdf_text(packing_slip_pdf(advice, language="zh"))
    assert len(pages) == 2
    assert "送货单" in pages[0] and MASK in pages[0] and "订购数量" not in pages[0]
    assert "第 1 箱，共 1 箱" in pages[1] and "箱标签" in pages[1]
    advice.lines[0].handling_unit = sscc(0, "7340001", 9)  # one line boxed, the rest loose
    pages = pdf_text(packing_slip_pdf(advice, language="zh"))
    assert "第 1 箱，共 2 箱" in pages[-2] and "(00) 073400010000000092" in pages[-2]
    assert "第 2 箱，共 2 箱" in pages[-1] and "(00)" not in pages[-1]
    with pytest.raises(ValueError, match="label size"):
        packing_slip_pdf(advice, label_size="letter")


def test_invoice_pdf_shows_the_invoice_totals() -> None:
    invoice = sample("invoice-nordisk-30817.xml")
    assert isinstance(invoice, Invoice)
    text = "\n".join(pdf_text(invoice_pdf(invoice, language="en")))
    for expected in (
        "Invoice NV-INV-2026-30817",
        "Due date",
        "2026-12-10",
        "SE556789123801",
        "Total excl. VAT",
        "20,399.00 SEK",
        "Total VAT",
        "5,099.75 SEK",
        "Amount due",
        "25,498.75 SEK",
        "Undersökningshandskar",
    ):
        assert expected in text, expected
    credit = replace(invoice, kind=DocumentKind.CREDIT_NOTE, type_code="381")
    assert "Kreditnota NV-INV-2026-30817" in pdf_text(invoice_pdf(credit, language="sv"))[0]


@dataclass(slots=True)
class VatLine(Line):
    """A line with the VAT fields another change adds to Line (read by getattr)."""

    vat_category: str | None = None
    vat_rate: Decimal | None = None


def test_invoice_vat_breakdown_by_category_and_rate() -> None:
    lines: list[Line] = [
        VatLine(
            "1",
            Quantity(Decimal(2), "C62"),
            item_name="Geïsoleerde koelbox",
            price=Decimal("50.00"),
            line_amount=Decimal("100.00"),
            vat_category="S",
            vat_rate=Decimal(21),
        ),
        VatLine(
            "2",
            Quantity(Decimal(1), "KGM"),
            item_name="Koffie",
            price=Decimal("10.00"),
            line_amount=Decimal("10.00"),
            vat_category="S",
            vat_rate=Decimal(9),
        ),
        VatLine(
            "3",
            Quantity(Decimal(3), "C62"),
            item_name="Thermometer",
            price=Decimal("33.33"),
            line_amount=Decimal("99.99"),
            vat_category="S",
            vat_rate=Decimal(21),
        ),
    ]
    assert vat_breakdown(lines) == [
        ("S", Decimal(21), Decimal("199.99"), Decimal("42.00")),
        ("S", Decimal(9), Decimal("10.00"), Decimal("0.90")),
    ]
    invoice = Invoice(
        DocumentKind.INVOICE,
        "F-1",
        date(2026, 11, 10),
        currency="EUR",
        lines=lines,
        seller=Party(name="Delftse Lab"),
        buyer=Party(
            endpoint=PartyId("8712345000004", "0088"), name="Zorggroep Rijnoever Coöperatie U.A."
        ),
        tax_exclusive_amount=Decimal("209.99"),
        tax_amount=Decimal("42.90"),
        payable_amount=Decimal("252.89"),
    )
    text = "\n".join(pdf_text(invoice_pdf(invoice, language="nl")))
    for expected in (
        "Factuur F-1",
        "Btw-specificatie",
        "Btw-tarief",
        "21 %",
        "9 %",
        "199,99",
        "42,00",
        "0,90",
        "Te betalen",
        "252,89 EUR",
        "Coöperatie",
    ):
        assert expected in text, expected
    assert vat_breakdown([Line("1", line_amount=Decimal(1))]) == []


# -- Excel --------------------------------------------------------------------------------


def test_workbook_one_sheet_per_order_typed_and_translated() -> None:
    orders = [chinese_order(), swedish_order()]
    book = load_workbook(io.BytesIO(orders_workbook(orders, language="nl")))
    assert book.sheetnames == ["4500012901", "VS-2026-7001"]
    sheet = book["4500012901"]
    assert sheet["A1"].value == "Inkooporder 4500012901"
    assert (sheet["A2"].value, sheet["B2"].value) == ("Ordernummer", "4500012901")
    assert sheet["A3"].value == "Orderdatum"
    assert isinstance(sheet["B3"].value, datetime) and sheet["B3"].is_date
    assert sheet["B3"].value.date() == date(2026, 11, 6)
    assert (sheet["A4"].value, sheet["B4"].value) == ("Valuta", "EUR")
    assert sheet["D2"].value == "Koper" and "Zorggroep Rijnoever" in sheet["E2"].value
    assert sheet["D4"].value == "Ordertotaal" and sheet["E4"].value == pytest.approx(848.05)
    header = [c.value for c in sheet[6]]
    assert header[:9] == [
        "Regel",
        "Artikelnr. leverancier",
        "Artikelnr. koper",
        "GTIN",
        "Artikel",
        "Aantal",
        "Eenheid",
        "Stukprijs",
        "Bedrag",
    ]
    assert sheet.freeze_panes == "A7"
    first = {header[i]: c for i, c in enumerate(sheet[7]) if header[i]}
    assert first["Regel"].value == 1 and first["Regel"].data_type == "n"
    assert first["Artikel"].value.startswith(MASK)
    assert first["GTIN"].value == "8719333071015" and first["GTIN"].data_type == "s"
    assert first["Aantal"].value == 40 and isinstance(first["Aantal"].value, int)
    assert first["Stukprijs"].value == pytest.approx(4.8) and first["Stukprijs"].data_type == "n"
    assert (
        first["Bedrag"].value == pytest.approx(192.0)
        and first["Bedrag"].number_format == "#,##0.00"
    )
    assert first["Eenheid"].value == "XBX"
    assert sheet.max_row == 6 + 6
    assert sheet.column_dimensions["E"].width > sheet.column_dimensions["A"].width
    swedish = book["VS-2026-7001"]
    quantity = swedish.cell(row=8, column=6)
    assert quantity.value == pytest.approx(2.5) and quantity.data_type == "n"
    assert swedish.cell(row=7, column=5).value == "Sjukvårdsartiklar"


def test_workbook_all_lines_on_one_sheet() -> None:
    orders = [chinese_order(), swedish_order()]
    book = load_workbook(io.BytesIO(orders_workbook(orders, language="sv", one_sheet=True)))
    assert book.sheetnames == ["Ordrar"]
    sheet = book.active
    header = [c.value for c in sheet[1]]
    assert header[:3] == ["Ordernummer", "Orderdatum", "Valuta"] and "Antal" in header
    assert sheet.freeze_panes == "A2"
    assert sheet.max_row == 1 + 6 + 2
    ids = [sheet.cell(row=r, column=1).value for r in range(2, sheet.max_row + 1)]
    assert ids == ["4500012901"] * 6 + ["VS-2026-7001"] * 2
    assert all(isinstance(sheet.cell(row=r, column=2).value, datetime) for r in range(2, 10))
    amounts = [sheet.cell(row=r, column=header.index("Belopp") + 1).value for r in range(2, 10)]
    assert all(isinstance(a, int | float) for a in amounts)
    assert sheet.cell(row=8, column=header.index("Artikel") + 1).value == "Sjukvårdsartiklar"


def test_workbook_sheet_titles_are_valid_and_unique() -> None:
    order = chinese_order()
    twins = [
        replace(order, document_id="A/B:C*" + "x" * 40),
        replace(order, document_id="A/B:C*" + "x" * 40),
    ]
    names = load_workbook(io.BytesIO(orders_workbook(twins))).sheetnames
    assert len(set(names)) == 2 and all(
        len(n) <= 31 and not set(n) & set("[]:*?/\\") for n in names
    )
    empty = load_workbook(io.BytesIO(orders_workbook([], language="zh")))
    assert empty.sheetnames == ["订单"]


# -- CSV ----------------------------------------------------------------------------------


def test_csv_defaults_utf8_bom_semicolon_translated() -> None:
    data = orders_csv([chinese_order(), swedish_order()], language="sv")
    assert data.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(io.StringIO(data.decode("utf-8-sig"), newline=""), delimiter=";"))
    header, body = rows[0], rows[1:]
    assert header[:4] == ["Ordernummer", "Orderdatum", "Valuta", "Köpare"]
    assert len(body) == 8 and {len(r) for r in rows} == {len(header)}
    first = dict(zip(header, body[0], strict=True))
    assert first["Ordernummer"] == "4500012901" and first["Orderdatum"] == "2026-11-06"
    assert first["Artikel"].startswith(MASK)
    assert (first["Antal"], first["À-pris"], first["Belopp"]) == ("40", "4,80", "192,00")
    last = dict(zip(header, body[-1], strict=True))
    assert (last["Artikel"], last["Antal"], last["Enhet"]) == (
        "Kompresser 10×10 cm, blå",
        "2,5",
        "KGM",
    )
    assert dict(zip(header, body[-2], strict=True))["Artikel"] == "Sjukvårdsartiklar"


def test_csv_other_delimiter_and_encoding_quotes_fields() -> None:
    data = orders_csv([swedish_order()], language="en", delimiter=",", encoding="utf-16")
    rows = list(csv.reader(io.StringIO(data.decode("utf-16"), newline=""), delimiter=","))
    assert rows[0][:2] == ["Order number", "Order date"]
    line = dict(zip(rows[0], rows[2], strict=True))
    assert line["Item"] == "Kompresser 10×10 cm, blå" and line["Quantity"] == "2.5"
    assert b'"\x00K\x00o\x00m' in data  # the comma-holding name is quoted
    assert orders_csv([], language="nl").decode("utf-8-sig").startswith("Ordernummer;")
    with pytest.raises(ValueError, match="single character"):
        orders_csv([], delimiter=";;")


def test_csv_numbers_equal_in_value_keep_their_own_text() -> None:
    """The CSV makes each number's text once per bundle (render/csv.py ``_cell``): amounts
    ``0`` and ``-0`` (equal, with one hash) must still read ``0.00`` and ``-0.00``, as each
    number's own text did before (these expected texts are the earlier renderer's)."""

    def line(n: int, quantity: str, price: str, amount: str) -> Line:
        return Line(
            str(n),
            quantity=Quantity(Decimal(quantity), "C62"),
            price=Decimal(price),
            line_amount=Decimal(amount),
        )

    first = Order(DocumentKind.ORDER, "PO-1")
    first.lines = [line(1, "2.50", "0.0125", "0"), line(2, "-0", "2.5", "-0")]
    second = Order(DocumentKind.ORDER, "PO-2")
    second.lines = [line(1, "0", "0.01250", "-0.004"), line(2, "2.5", "-0", "0.005")]
    data = orders_csv([first, second], language="en", delimiter=",")
    rows = list(csv.reader(io.StringIO(data.decode("utf-8-sig"), newline=""), delimiter=","))
    texts = [(r[0], r[17], r[22], r[24], r[25]) for r in rows[1:]]
    assert texts == [
        ("PO-1", "1", "2.5", "0.0125", "0.00"),
        ("PO-1", "2", "0", "2.50", "-0.00"),
        ("PO-2", "1", "0", "0.0125", "-0.00"),
        ("PO-2", "2", "2.5", "-0.00", "0.01"),
    ]


def test_an_order_without_lines_still_renders() -> None:
    empty = Order(DocumentKind.ORDER, "PO-EMPTY")
    assert "Purchase order PO-EMPTY" in pdf_text(order_pdf(empty))[0]
    sheet = load_workbook(io.BytesIO(orders_workbook([empty]))).active
    assert sheet["B2"].value == "PO-EMPTY" and sheet.max_row == 6
    rows = list(csv.reader(io.StringIO(orders_csv([empty]).decode("utf-8-sig")), delimiter=";"))
    assert rows[1][0] == "PO-EMPTY" and not any(rows[1][1:])
