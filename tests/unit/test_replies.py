"""Tests of edi_gateway.replies: supplier CSV / Excel replies -> domain documents.

The example maps in ``mappings/<supplier>/replies/`` are read against the sample files in
``samples/replies/``; smaller inline files exercise the rules and every error path.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
import zipfile
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from lxml import etree
from openpyxl import Workbook

from edi_gateway.domain.billing import InvoiceLine
from edi_gateway.domain.documents import (
    DespatchAdvice,
    Document,
    DocumentKind,
    Invoice,
    Line,
    OrderResponse,
    Party,
    PartyId,
    Quantity,
)
from edi_gateway.errors import ConfigError, DocumentError, ErrorCode
from edi_gateway.replies import ReplyKind, ReplyMap, load_map, parse_map, read_reply
from edi_gateway.replies.cells import CellError, date_of, decimal_of, excel_decimal, text_of
from edi_gateway.ubl.read import interpret
from edi_gateway.ubl.validate import validate_document
from edi_gateway.ubl.write import write_despatch_advice, write_order_response
from tests.conftest import shared_dir

ROOT = Path(__file__).resolve().parents[2]
MAPS = ROOT / "mappings"
SAMPLES = ROOT / "samples" / "replies"


def party(gln: str, name: str, country: str) -> Party:
    return Party(
        endpoint=PartyId(gln, "0088"), ids=[PartyId(gln, "0088")], name=name, country=country
    )


NORDISK = party("7350099000003", "Nordisk Vårdutrustning AB", "SE")
DELFTLAB = party("8719333000008", "Delftse Lab- en Kantoorartikelen B.V.", "NL")
VASTRA = party("7350051600005", "Region Västra Sjukvård", "SE")
RIJNOEVER = party("8712345000004", "Zorggroep Rijnoever Coöperatie U.A.", "NL")


def sample(supplier: str, map_name: str, file_name: str, buyer: Party) -> list[Document]:
    mapping = load_map(MAPS / supplier / "replies" / f"{map_name}.yaml")
    seller = NORDISK if supplier == "nordisk" else DELFTLAB
    payload = (SAMPLES / file_name).read_bytes()
    return read_reply(payload, file_name, mapping, supplier=seller, buyer=buyer)


def csv_map(kind: str, columns: dict[str, str], **extra: Any) -> ReplyMap:
    return parse_map(
        {"kind": kind, "format": "csv", "delimiter": ";", "columns": columns, **extra}, "t.yaml"
    )


CONFIRM_COLUMNS = {"order_id": "Order", "line_id": "Line", "quantity": "Qty", "unit": "Unit"}
DESPATCH_COLUMNS = {
    **CONFIRM_COLUMNS,
    "despatch_id": "Note",
    "carrier": "Carrier",
    "tracking_id": "Tracking",
    "despatch_date": "Shipped",
}
INVOICE_COLUMNS = {
    **CONFIRM_COLUMNS,
    "invoice_number": "Invoice",
    "price": "Price",
    "line_amount": "Amount",
    "vat_rate": "VAT",
    "invoice_date": "Date",
    "payment_means_code": "Means",
    "payment_account": "Account",
    "payment_reference": "Ref",
    "payable_amount": "Total",
}
INVOICE_HEAD = "Order;Line;Qty;Unit;Invoice;Price;Amount;VAT;Date;Means;Account;Ref;Total\n"
INVOICE_DEFAULTS = {"currency": "EUR", "vat_category": "S"}
PAID = ["2026-11-12", "30", "SE4550000000058398257466", "OCR-77"]
"""The invoice date, means code, account and payment reference of the invoice tests' rows."""


def paid(cells: str, total: str) -> str:
    """An invoice row: ``cells`` (order to VAT) then the payment cells and the total."""
    return ";".join([cells, *PAID, total]) + "\n"


def read(mapping: ReplyMap, text: str, name: str = "reply.csv") -> list[Document]:
    return read_reply(text.encode("utf-8"), name, mapping, supplier=NORDISK, buyer=VASTRA)


def failure(mapping: ReplyMap, payload: bytes | str, name: str = "reply.csv") -> DocumentError:
    data = payload.encode("utf-8") if isinstance(payload, str) else payload
    with pytest.raises(DocumentError) as caught:
        read_reply(data, name, mapping, supplier=NORDISK)
    return caught.value


def workbook(rows: list[list[Any]], title: str = "Sheet") -> bytes:
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.title = title
    for row in rows:
        sheet.append(row)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


# --- the example maps and their sample files --------------------------------------------------


@pytest.mark.parametrize(
    ("path", "kind", "fmt"),
    [
        ("nordisk/replies/confirmation.yaml", ReplyKind.CONFIRMATION, "csv"),
        ("nordisk/replies/despatch.yaml", ReplyKind.DESPATCH, "csv"),
        ("delftlab/replies/confirmation.yaml", ReplyKind.CONFIRMATION, "xlsx"),
        ("delftlab/replies/despatch.yaml", ReplyKind.DESPATCH, "xlsx"),
        ("delftlab/replies/invoice.yaml", ReplyKind.INVOICE, "csv"),
    ],
)
def test_example_maps_load(path: str, kind: ReplyKind, fmt: str) -> None:
    mapping = load_map(MAPS / path)
    assert (mapping.kind, mapping.format) == (kind, fmt)
    assert mapping.source.endswith(path)


def test_nordisk_confirmation_csv_becomes_one_order_response_with_every_line() -> None:
    [doc] = sample("nordisk", "confirmation", "nordisk-confirmation-VS-2026-1002.csv", VASTRA)
    assert isinstance(doc, OrderResponse)
    assert doc.kind is DocumentKind.ORDER_RESPONSE
    assert doc.document_id == "nordisk-confirmation-VS-2026-1002-VS-2026-1002"
    assert (doc.response_code, doc.order_refs) == ("CA", ["VS-2026-1002"])
    assert (doc.seller, doc.buyer) == (NORDISK, VASTRA)
    assert doc.seller is not NORDISK  # a copy: the caller's party is never shared
    assert (doc.issue_date, doc.currency) == (None, None)
    assert len(doc.lines) == 25
    statuses = {line.line_id: line.status_code for line in doc.lines}
    assert {k: v for k, v in statuses.items() if v != "5"} == {"3": "3", "6": "7", "12": "3"}
    assert doc.lines[0] == Line(
        "1",
        Quantity(Decimal(12), "C62"),
        order_line_ref="1",
        item_name="Blodtrycksmanschett vuxen, M",
        seller_item_id="NV-90001",
        status_code="5",
        delivery_date=date(2026, 11, 12),
    )
    assert doc.lines[2] == Line(
        "3",
        Quantity(Decimal(20), "C62"),
        order_line_ref="3",
        item_name="Infusionsaggregat 150 cm",
        seller_item_id="NV-90003",
        status_code="3",
        delivery_date=date(2026, 11, 12),
        note="Begränsat lager, resten levereras ej",
    )
    assert doc.lines[5] == Line(  # "Utgår": not accepted, no quantity
        "6",
        None,
        order_line_ref="6",
        item_name="Skoskydd blå, 100 st",
        seller_item_id="NV-90006",
        status_code="7",
        delivery_date=date(2026, 11, 12),
        note="Utgått ur sortimentet",
    )
    assert doc.lines[11].quantity == Quantity(Decimal(5), "XBX")
    assert doc.lines[11].delivery_date == date(2026, 11, 26)
    assert doc.lines[3].item_name == "Kanyl 0,8 × 40 mm, 100 st"


def test_nordisk_despatch_csv_makes_one_advice_per_delivery_note() -> None:
    docs = sample("nordisk", "despatch", "nordisk-despatch-VS-2026-1002.csv", VASTRA)
    assert [d.document_id for d in docs] == ["FS-880501", "FS-880502"]
    first, second = docs
    assert isinstance(first, DespatchAdvice) and isinstance(second, DespatchAdvice)
    assert (first.carrier, first.tracking_id, first.despatch_date) == (
        "PostNord",
        "00373500990000112233",
        date(2026, 11, 10),
    )
    assert (second.carrier, second.tracking_id, second.despatch_date) == (
        "DB Schenker",
        "SE-4412-88",
        date(2026, 11, 11),
    )
    assert first.order_refs == second.order_refs == ["VS-2026-1002"]
    assert [ln.order_line_ref for ln in first.lines] == [str(n) for n in range(1, 13) if n != 6]
    assert [ln.line_id for ln in first.lines] == [str(n) for n in range(1, 12)]
    assert [ln.order_line_ref for ln in second.lines] == [str(n) for n in range(13, 26)]
    assert first.lines[-1] == Line(
        "11",
        Quantity(Decimal(5), "XBX"),
        order_line_ref="12",
        item_name="Termometerskydd, 1000 st",
        seller_item_id="NV-90012",
        backorder_quantity=Quantity(Decimal(4), "XBX"),
    )
    assert all(ln.backorder_quantity is None for ln in second.lines)
    assert second.lines[0].item_name == "Urinuppsamlingspåse 2 l"


def test_delftlab_confirmation_xlsx_with_chinese_names_and_derived_statuses() -> None:
    [doc] = sample("delftlab", "confirmation", "delftlab-confirmation-4500012901.xlsx", RIJNOEVER)
    assert isinstance(doc, OrderResponse)
    assert doc.document_id == "delftlab-confirmation-4500012901-4500012901"
    assert doc.order_refs == ["4500012901"]  # typed as a number in Excel: no ".0"
    assert doc.response_code == "CA"
    got = [
        (ln.line_id, ln.status_code, ln.quantity, ln.delivery_date, ln.item_name)
        for ln in doc.lines
    ]
    nov20 = date(2026, 11, 20)
    assert got == [
        (
            "1",
            "5",
            Quantity(Decimal(40), "XBX"),
            nov20,
            "一次性医用口罩 (disposable medical mask), 50只/盒",
        ),
        (
            "2",
            "3",
            Quantity(Decimal(20), "XBX"),
            nov20,
            "乳胶检查手套 中号 (latex gloves M), 100只/盒",
        ),
        ("3", "3", Quantity(Decimal("2.5"), "KGM"), nov20, "龙井绿茶 (Longjing green tea)"),
        (
            "4",
            "5",
            Quantity(Decimal(12), "H87"),
            date(2026, 11, 27),
            "不锈钢保温杯 500毫升 (thermos)",
        ),
        ("5", "7", None, nov20, "医用棉签 (cotton swabs), 200支"),
        ("6", "5", Quantity(Decimal(6), "C62"), nov20, "不锈钢手术剪 14厘米 (surgical scissors)"),
    ]
    assert [ln.seller_item_id for ln in doc.lines][:2] == ["DL-CN-101", "DL-CN-102"]


def test_delftlab_despatch_xlsx_typed_and_text_cells() -> None:
    [doc] = sample("delftlab", "despatch", "delftlab-despatch-4500012873.xlsx", RIJNOEVER)
    assert isinstance(doc, DespatchAdvice)
    assert doc.document_id == "PB-26-07731"
    assert doc.order_refs == ["4500012873"]  # text cells and number cells alike
    assert (doc.carrier, doc.tracking_id) == ("PostNL Pakketten", "3SDLAB0012873")
    assert (doc.despatch_date, doc.estimated_delivery_date) == (
        date(2026, 11, 12),
        date(2026, 11, 13),
    )
    assert [ln.order_line_ref for ln in doc.lines] == [str(n) for n in range(1, 12)]
    assert doc.lines[6].quantity == Quantity(Decimal(8), "H87")  # a float cell 8.0
    assert str(doc.lines[6].quantity.value) == "8"
    assert doc.lines[10] == Line(
        "11",
        Quantity(Decimal("5.5"), "KGM"),  # text "5,5" with the map's decimal comma
        order_line_ref="11",
        item_name="Koffie Arabica bonen, Café Crème",
        seller_item_id="DL-6001",
        backorder_quantity=Quantity(Decimal("0.5"), "KGM"),  # a float cell 0.5
    )
    names = {ln.item_name for ln in doc.lines}
    assert {"Geïsoleerde koelbox 24 liter", "Pipetpunten 200 µl, geel, 1000 stuks"} <= names


def test_delftlab_invoice_csv_in_cp1252_with_vat_and_totals() -> None:
    [doc] = sample("delftlab", "invoice", "delftlab-invoice-4500012873.csv", RIJNOEVER)
    assert isinstance(doc, Invoice)
    assert (doc.document_id, doc.type_code, doc.currency) == ("F2026-30412", "380", "EUR")
    assert (doc.issue_date, doc.due_date) == (date(2026, 11, 12), date(2026, 12, 12))
    assert doc.order_refs == ["4500012873"]
    assert len(doc.lines) == 11
    assert all(isinstance(ln, InvoiceLine) for ln in doc.lines)
    coffee = doc.lines[10]
    assert isinstance(coffee, InvoiceLine)
    assert (coffee.quantity, coffee.price, coffee.line_amount, coffee.vat_rate) == (
        Quantity(Decimal("5.5"), "KGM"),
        Decimal("21.90"),
        Decimal("120.45"),
        Decimal(9),
    )
    assert coffee.vat_category == "S"
    assert doc.lines[1].item_name == "Pipetpunten 200 µl, geel, 1000 stuks"
    assert doc.tax_exclusive_amount == Decimal("2104.85")
    assert doc.tax_amount == Decimal("427.56")  # 21 % of 1984.40 + 9 % of 120.45
    assert doc.payable_amount == Decimal("2532.41")
    assert (doc.payment_means_code, doc.iban, doc.bic) == ("30", "NL91ABNA0417164300", "ABNANL2A")
    assert (doc.payment_id, doc.notes) == ("1000 2026 3041 2", ["Levering in twee zendingen"])


# --- what an invoice layout must give ---------------------------------------------------------


def test_an_invoice_map_must_name_the_columns_of_what_it_bills() -> None:
    columns = {k: v for k, v in INVOICE_COLUMNS.items() if k not in ("payable_amount", "Ref")}
    del columns["payment_reference"]
    with pytest.raises(ConfigError) as caught:
        csv_map("invoice", columns)
    assert caught.value.message == (
        "t.yaml: columns: a invoice map must name the column of payable_amount, payment_reference"
    )


@pytest.mark.parametrize(
    "field", ["payment_account", "payment_reference", "payable_amount", "tax_amount"]
)
def test_an_account_a_reference_or_an_amount_never_has_a_default(field: str) -> None:
    with pytest.raises(ConfigError, match=rf"defaults\.{field}: what an invoice bills"):
        csv_map("invoice", INVOICE_COLUMNS, defaults={field: "1"})


@pytest.mark.parametrize(
    ("missing", "drop"),
    [
        ("currency", None),
        ("payment_means_code", "Means"),
        ("payment_account", "Account"),
        ("vat_category", None),
    ],
)
def test_an_invoice_row_without_what_it_must_say_names_the_field(
    missing: str, drop: str | None
) -> None:
    """A field the layout lacks (no column, no default) is an error naming it, never a value
    from gateway.yaml."""
    defaults = {"currency": "EUR", "vat_category": "S"}
    defaults.pop(missing, None)
    columns = {k: v for k, v in INVOICE_COLUMNS.items() if v != drop}
    mapping = csv_map("invoice", columns, defaults=defaults)
    titles = [t for t in INVOICE_HEAD.strip().split(";") if t != drop]
    cells = ["A", "1", "2", "C62", "F1", "1.50", "3.00", "25", *PAID, "3.75"]
    row = [c for t, c in zip(INVOICE_HEAD.strip().split(";"), cells, strict=True) if t != drop]
    error = failure(mapping, ";".join(titles) + "\n" + ";".join(row) + "\n")
    assert error.code is ErrorCode.INTERPRETATION_FAILED
    assert (
        f"reply.csv, row 2, field {missing}: required, but the map t.yaml has no column for it"
        in error.message
    )


def test_an_empty_payment_reference_or_date_cell_names_the_column() -> None:
    mapping = csv_map("invoice", INVOICE_COLUMNS, defaults=INVOICE_DEFAULTS)
    row = "A;1;2;C62;F1;1.50;3.00;25;2026-11-12;30;SE4550000000058398257466;;3.75\n"
    error = failure(mapping, INVOICE_HEAD + row)
    assert "row 2, column 'Ref' (payment_reference): the cell is empty" in error.message
    row = "A;1;2;C62;F1;1.50;3.00;25;;30;SE4550000000058398257466;R;3.75\n"
    assert (
        "column 'Date' (invoice_date): the cell is empty"
        in failure(mapping, INVOICE_HEAD + row).message
    )


def test_one_invoice_has_one_account_and_one_payment_reference() -> None:
    mapping = csv_map("invoice", INVOICE_COLUMNS, defaults=INVOICE_DEFAULTS)
    first = "A;1;2;C62;F1;1.50;3.00;25;2026-11-12;30;SE4550000000058398257466;R-1;5.00\n"
    second = "A;2;1;C62;F1;1.00;1.00;25;2026-11-12;30;SE4550000000058398257466;R-2;5.00\n"
    error = failure(mapping, INVOICE_HEAD + first + second)
    assert error.message == (
        "reply.csv, row 3, column 'Ref' (payment_reference): R-2 differs from R-1 on row 2 of "
        "the same document"
    )


def test_a_bankgiro_invoice_is_written_with_the_files_account_and_reference(
    tmp_path: Path,
) -> None:
    """Issue 10: a Swedish supplier's Bankgiro account and OCR reference reach the Billing 3.0
    invoice built from its file (and pass the official checks, SE-R-008 / SE-R-009 included)."""
    from dataclasses import replace

    from edi_gateway.ubl.namespaces import CAC, CBC
    from edi_gateway.ubl.write import write_invoice

    columns = {
        **INVOICE_COLUMNS,
        "payment_account_branch": "Branch",
        "invoice_note": "Note",
        "due_date": "Due",
        "item_name": "Item",
    }
    mapping = csv_map("invoice", columns, defaults={**INVOICE_DEFAULTS, "currency": "SEK"})
    head = INVOICE_HEAD.replace("Total", "Total;Branch;Note;Due;Item")
    row = "PO-1;1;2;C62;F-77;100.00;200.00;25;2026-11-12;30;55551234;4711081542;250.00;"
    [doc] = read(mapping, head + row + "SE:BANKGIRO;Leverans 2 av 2;2026-12-12;Sprutor\n")
    assert isinstance(doc, Invoice)
    doc.seller = replace(NORDISK, vat_id="SE556677889901", street="Box 1", city="Borås")
    doc.buyer = replace(VASTRA, street="Box 2", city="Göteborg")
    payload = write_invoice(doc)
    root = etree.fromstring(payload)
    ns = {"cac": CAC, "cbc": CBC}
    assert [
        root.findtext(path, namespaces=ns)
        for path in (
            "cac:PaymentMeans/cbc:PaymentMeansCode",
            "cac:PaymentMeans/cbc:PaymentID",
            "cac:PaymentMeans/cac:PayeeFinancialAccount/cbc:ID",
            "cac:PaymentMeans/cac:PayeeFinancialAccount/cac:FinancialInstitutionBranch/cbc:ID",
            "cbc:Note",
            "cac:LegalMonetaryTotal/cbc:PayableAmount",
        )
    ] == ["30", "4711081542", "55551234", "SE:BANKGIRO", "Leverans 2 av 2", "250.00"]
    (tmp_path / "bankgiro.xml").write_bytes(payload)
    run = subprocess.run(
        [sys.executable, str(shared_dir() / "tools" / "ubl-check"), str(tmp_path / "bankgiro.xml")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert run.returncode == 0, run.stdout + run.stderr


def test_a_card_payment_needs_no_account() -> None:
    mapping = csv_map("invoice", INVOICE_COLUMNS, defaults=INVOICE_DEFAULTS)
    [doc] = read(mapping, INVOICE_HEAD + "A;1;2;C62;F1;1.50;3.00;25;2026-11-12;48;;R-9;3.75\n")
    assert isinstance(doc, Invoice)
    assert (doc.payment_means_code, doc.iban, doc.payment_id) == ("48", None, "R-9")


def test_a_stated_total_other_than_the_lines_make_is_refused() -> None:
    """The 99999.00 of issue 10: what the file says it bills must be what its lines bill."""
    mapping = csv_map(
        "invoice", {**INVOICE_COLUMNS, "tax_amount": "Tax"}, defaults=INVOICE_DEFAULTS
    )
    head = INVOICE_HEAD.replace("Total", "Tax;Total")
    error = failure(mapping, head + paid("A;1;2;C62;F1;1.50;3.00;25", "0.75;99999.00"))
    assert error.code is ErrorCode.INTERPRETATION_FAILED
    assert error.message == (
        "reply.csv, row 2, column 'Total' (payable_amount): invoice F1 states 99999.00, but its "
        "lines make 3.75: nothing is billed other than the supplier's lines say"
    )
    error = failure(mapping, head + paid("A;1;2;C62;F1;1.50;3.00;25", "0.70;3.75"))
    assert "column 'Tax' (tax_amount): invoice F1 states 0.70, but its lines make 0.75" in (
        error.message
    )
    [doc] = read(mapping, head + paid("A;1;2;C62;F1;1.50;3.00;25", "0.75;3.75"))
    assert isinstance(doc, Invoice) and doc.payable_amount == Decimal("3.75")


# --- re-issued as UBL -------------------------------------------------------------------------


def _completed(doc: Document, currency: str) -> Document:
    doc.issue_date = date(2026, 11, 13)
    doc.currency = currency
    return doc


def _reissued() -> dict[str, bytes]:
    out: dict[str, bytes] = {}
    for supplier, name, file_name, buyer, currency in (
        ("nordisk", "confirmation", "nordisk-confirmation-VS-2026-1002.csv", VASTRA, "SEK"),
        ("nordisk", "despatch", "nordisk-despatch-VS-2026-1002.csv", VASTRA, "SEK"),
        ("delftlab", "confirmation", "delftlab-confirmation-4500012901.xlsx", RIJNOEVER, "EUR"),
        ("delftlab", "despatch", "delftlab-despatch-4500012873.xlsx", RIJNOEVER, "EUR"),
    ):
        for doc in sample(supplier, name, file_name, buyer):
            _completed(doc, currency)
            if isinstance(doc, OrderResponse):
                out[doc.document_id] = write_order_response(doc)
            else:
                assert isinstance(doc, DespatchAdvice)
                out[doc.document_id] = write_despatch_advice(doc)
    return out


def test_produced_documents_are_complete_enough_to_write_as_ubl() -> None:
    written = _reissued()
    assert len(written) == 5
    for document_id, payload in written.items():
        validated = validate_document(
            payload, max_size=10**7, kinds=frozenset({"OrderResponse", "DespatchAdvice"})
        )
        again = interpret(validated.root)
        assert again.document_id == document_id
    reread = interpret(
        validate_document(
            written["FS-880501"], max_size=10**7, kinds=frozenset({"DespatchAdvice"})
        ).root
    )
    assert isinstance(reread, DespatchAdvice)
    assert (reread.carrier, reread.tracking_id) == ("PostNord", "00373500990000112233")


def test_produced_documents_pass_ubl_check(tmp_path: Path) -> None:
    tool = shared_dir() / "tools" / "ubl-check"
    for document_id, payload in _reissued().items():
        (tmp_path / f"{document_id}.xml").write_bytes(payload)
    run = subprocess.run(
        [sys.executable, str(tool), "--json", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    results = json.loads(run.stdout)
    assert len(results) == 5
    for result in results:
        assert result["xsd"] == [], result
        fatal = [f for f in result["schematron"] if f["flag"] == "fatal"]
        assert fatal == [], result


# --- confirmation rules -----------------------------------------------------------------------


def test_all_lines_accepted_by_status_gives_ap_without_lines() -> None:
    mapping = csv_map("confirmation", {**CONFIRM_COLUMNS, "status": "State"})
    [doc] = read(mapping, "Order;Line;Qty;Unit;State\nPO-1;1;10;C62;accepted\nPO-1;2;;C62;5\n")
    assert isinstance(doc, OrderResponse)
    assert (doc.response_code, doc.lines) == ("AP", [])
    _completed(doc, "SEK")
    write_order_response(doc)


def test_all_lines_as_ordered_by_quantity_gives_ap() -> None:
    mapping = csv_map("confirmation", {**CONFIRM_COLUMNS, "ordered_quantity": "Ordered"})
    [doc] = read(mapping, "Order;Line;Ordered;Qty;Unit\nPO-1;1;10;10;C62\nPO-1;2;3;3;C62\n")
    assert isinstance(doc, OrderResponse)
    assert doc.response_code == "AP"


def test_without_status_or_ordered_quantity_the_given_quantity_is_confirmed_with_ca() -> None:
    [doc] = read(
        csv_map("confirmation", CONFIRM_COLUMNS),
        "Order;Line;Qty;Unit\nPO-1;1;7;C62\nPO-1;2;0;C62\n",
    )
    assert isinstance(doc, OrderResponse)
    assert doc.response_code == "CA"
    assert [(ln.status_code, ln.quantity) for ln in doc.lines] == [
        ("5", Quantity(Decimal(7), "C62")),
        ("7", None),
    ]


def test_status_words_are_the_maps_and_case_insensitive() -> None:
    mapping = csv_map(
        "confirmation",
        {**CONFIRM_COLUMNS, "status": "State", "ordered_quantity": "Ordered"},
        status_values={"Ändrad": "changed", "Nej": "rejected", "OK": "accepted"},
    )
    text = (
        "Order;Line;Ordered;Qty;Unit;State\n"
        "PO-1;1;5;5;C62;ok\nPO-1;2;5;4;C62;ÄNDRAD\nPO-1;3;5;;C62;nej\n"
    )
    [doc] = read(mapping, text)
    assert [ln.status_code for ln in doc.lines] == ["5", "3", "7"]


def test_rows_group_into_one_document_per_order_with_deterministic_ids() -> None:
    mapping = csv_map("confirmation", CONFIRM_COLUMNS)
    text = "Order;Line;Qty;Unit\nPO-1;1;1;C62\nPO 2;1;2;C62\nPO-1;2;3;C62\n"
    docs = read(mapping, text, "in/Svar från Nordisk.csv")
    again = read(mapping, text, "Svar från Nordisk.csv")
    assert [d.document_id for d in docs] == ["Svar_från_Nordisk-PO-1", "Svar_från_Nordisk-PO_2"]
    assert [d.document_id for d in again] == [d.document_id for d in docs]
    assert [d.order_refs for d in docs] == [["PO-1"], ["PO 2"]]
    assert [len(d.lines) for d in docs] == [2, 1]


def test_despatch_id_shared_by_two_orders_gets_the_order_appended() -> None:
    mapping = csv_map("despatch", DESPATCH_COLUMNS)
    head = "Order;Line;Qty;Unit;Note;Carrier;Tracking;Shipped\n"
    docs = read(mapping, head + "A;1;1;C62;N1;;;\nB;1;1;C62;N1;;;\nA;2;1;C62;N2;;;\n")
    assert [d.document_id for d in docs] == ["N1-A", "N1-B", "N2"]


def test_despatch_without_despatch_id_column_derives_the_id() -> None:
    mapping = csv_map("despatch", CONFIRM_COLUMNS, defaults={"carrier": "DHL"})
    [doc] = read(mapping, "Order;Line;Qty;Unit\nA;1;1;C62\n", "ship.csv")
    assert isinstance(doc, DespatchAdvice)
    assert (doc.document_id, doc.carrier) == ("ship-A", "DHL")


def test_defaults_fill_empty_cells_and_absent_columns() -> None:
    mapping = csv_map("confirmation", CONFIRM_COLUMNS, defaults={"unit": "XBX"})
    [doc] = read(mapping, "Order;Line;Qty;Unit\nA;1;2;\nA;2;3;KGM\n")
    assert [ln.quantity for ln in doc.lines] == [
        Quantity(Decimal(2), "XBX"),
        Quantity(Decimal(3), "KGM"),
    ]


def test_titles_match_ignoring_case_and_spacing_and_extra_columns_are_ignored() -> None:
    mapping = csv_map("confirmation", CONFIRM_COLUMNS)
    [doc] = read(mapping, "extra; ORDER ;line;  qty ;Unit\nx;A;1;2;C62\n")
    assert doc.lines[0].quantity == Quantity(Decimal(2), "C62")


def test_rows_above_the_header_and_blank_rows_are_skipped() -> None:
    mapping = csv_map("confirmation", CONFIRM_COLUMNS, header_row=3)
    [doc] = read(mapping, "Orderbekräftelse\n\nOrder;Line;Qty;Unit\n;;;\n\nA;1;2;C62\n")
    assert [ln.line_id for ln in doc.lines] == ["1"]


def test_decimal_comma_numbers() -> None:
    mapping = csv_map(
        "invoice",
        INVOICE_COLUMNS,
        decimal_comma=True,
        defaults={**INVOICE_DEFAULTS, "currency": "SEK"},
    )
    text = INVOICE_HEAD + paid('A;1;"1.234,5";KGM;F1;"2,00";"2 469,00";25 %', '"3 086,25"')
    [doc] = read(mapping, text)
    line = doc.lines[0]
    assert isinstance(line, InvoiceLine)
    assert (line.quantity, line.price, line.line_amount, line.vat_rate) == (
        Quantity(Decimal("1234.5"), "KGM"),
        Decimal("2.00"),
        Decimal("2469.00"),
        Decimal(25),
    )


def test_invoice_without_vat_rate_is_an_error_naming_it() -> None:
    columns = {k: v for k, v in INVOICE_COLUMNS.items() if k not in ("vat_rate", "line_amount")}
    head = "Order;Line;Qty;Unit;Invoice;Price;Date;Means;Account;Ref;Total\n"
    mapping = csv_map("invoice", columns, defaults=INVOICE_DEFAULTS)
    error = failure(mapping, head + paid("A;1;2;C62;F9;1.5", "3.75"))
    assert error.code is ErrorCode.INTERPRETATION_FAILED
    assert "reply.csv, row 2, field vat_rate: VAT category S needs a rate" in error.message


# --- Excel cells ------------------------------------------------------------------------------


def test_excel_typed_cells_and_text_cells_read_alike() -> None:
    mapping = parse_map(
        {
            "kind": "despatch",
            "format": "xlsx",
            "sheet": 2,
            "decimal_comma": True,
            "date_format": "%d.%m.%Y",
            "columns": DESPATCH_COLUMNS,
        },
        "x.yaml",
    )
    book = Workbook()
    first = book.active
    assert first is not None
    first.title = "Cover"
    sheet = book.create_sheet("Lines")
    sheet.append(list(DESPATCH_COLUMNS.values()))
    sheet.append([4711, 1, 12.0, "C62", "N1", "Bring", 123456789, datetime(2026, 3, 4, 0, 0)])
    sheet.append(["4711", "2", "1.234,75", "KGM", "N1", "Bring", "123456789", "04.03.2026"])
    sheet.append(["4711", 3.0, 0.1 + 0.2, "KGM", "N1", None, None, date(2026, 3, 4)])
    buf = io.BytesIO()
    book.save(buf)
    [doc] = read_reply(buf.getvalue(), "x.xlsx", mapping, supplier=NORDISK)
    assert isinstance(doc, DespatchAdvice)
    assert (doc.order_refs, doc.tracking_id, doc.despatch_date) == (
        ["4711"],
        "123456789",
        date(2026, 3, 4),
    )
    assert [(ln.order_line_ref, ln.quantity) for ln in doc.lines] == [
        ("1", Quantity(Decimal(12), "C62")),
        ("2", Quantity(Decimal("1234.75"), "KGM")),
        ("3", Quantity(Decimal("0.3"), "KGM")),
    ]


def test_excel_percent_cell_is_a_vat_rate_in_percent() -> None:
    mapping = parse_map(
        {
            "kind": "invoice",
            "format": "xlsx",
            "columns": INVOICE_COLUMNS,
            "defaults": INVOICE_DEFAULTS,
        },
        "x.yaml",
    )
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append(list(INVOICE_COLUMNS.values()))
    sheet.append(["A", 1, 3, "C62", "F1", 10.1, 30.3, 0.25, *PAID, 37.88])
    sheet["H2"].number_format = "0%"
    buf = io.BytesIO()
    book.save(buf)
    [doc] = read_reply(buf.getvalue(), "x.xlsx", mapping, supplier=NORDISK)
    assert isinstance(doc, Invoice)
    line = doc.lines[0]
    assert isinstance(line, InvoiceLine)
    assert (line.price, line.line_amount, line.vat_rate) == (
        Decimal("10.1"),
        Decimal("30.30"),
        Decimal(25),
    )
    assert doc.payable_amount == Decimal("37.88")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (12.0, "12"),
        (64.95, "64.95"),
        (0.1 + 0.2, "0.3"),
        (1e20, "100000000000000000000"),
        (2.5e-7, "0.00000025"),
        (-3.10, "-3.1"),
    ],
)
def test_excel_floats_become_exact_decimals(value: float, expected: str) -> None:
    assert format(excel_decimal(value), "f") == expected


def test_cell_conversions() -> None:
    assert text_of(4500012873) == "4500012873"
    assert text_of(4500012873.0) == "4500012873"
    assert text_of("  x ") == "x"
    assert text_of("   ") is None
    assert text_of(datetime(2026, 1, 2)) == "2026-01-02"
    assert decimal_of("1,234.50", decimal_comma=False) == Decimal("1234.50")
    assert decimal_of("1\u202f234,5", decimal_comma=True) == Decimal("1234.5")
    assert decimal_of("-,5", decimal_comma=True) == Decimal("-0.5")
    assert date_of("31/12/2026", date_format="%d/%m/%Y") == date(2026, 12, 31)
    for bad, comma in (("12,5", False), ("1.2.3", False), ("1,23,4", True), ("abc", True)):
        with pytest.raises(CellError, match="expected a number"):
            decimal_of(bad, decimal_comma=comma)
    with pytest.raises(CellError, match="truth value"):
        decimal_of(True, decimal_comma=False)
    with pytest.raises(CellError, match=r"expected a date like 31\.12\.2026"):
        date_of("2026-12-31", date_format="%d.%m.%Y")
    with pytest.raises(CellError, match="format the Excel cell as a date"):
        date_of(46000, date_format="%Y-%m-%d")


# --- errors in the file -----------------------------------------------------------------------

HEAD = "Order;Line;Qty;Unit\n"


def test_empty_file() -> None:
    assert failure(csv_map("confirmation", CONFIRM_COLUMNS), b"").code is ErrorCode.EMPTY


def test_wrong_encoding_names_line_and_encoding() -> None:
    payload = (HEAD + "A;1;2;C62\nA;2;3;Stück\n").encode("cp1252")
    error = failure(csv_map("confirmation", CONFIRM_COLUMNS), payload)
    assert error.code is ErrorCode.BAD_ENCODING
    assert error.line == 3
    assert "reply.csv: line 3" in error.message and "utf-8-sig" in error.message


def test_declared_encoding_is_used() -> None:
    mapping = csv_map("confirmation", {**CONFIRM_COLUMNS, "item_name": "Namn"}, encoding="cp1252")
    payload = "Order;Line;Qty;Unit;Namn\nA;1;2;C62;Handkräm Geïsoleerde\n".encode("cp1252")
    [doc] = read_reply(payload, "r.csv", mapping, supplier=NORDISK)
    assert doc.lines[0].item_name == "Handkräm Geïsoleerde"


def test_workbook_given_to_a_csv_map_is_not_well_formed() -> None:
    error = failure(csv_map("confirmation", CONFIRM_COLUMNS), workbook([["Order"]]))
    assert error.code is ErrorCode.NOT_WELL_FORMED
    assert "expects CSV" in error.message


def test_broken_csv_quoting_is_not_well_formed() -> None:
    error = failure(csv_map("confirmation", CONFIRM_COLUMNS), HEAD + 'A;1;"2"x;C62\n')
    assert error.code is ErrorCode.NOT_WELL_FORMED
    assert error.line == 2


@pytest.mark.parametrize(
    "payload",
    [b"Order;Line\nA;1\n", b"PK\x03\x04 not really a zip", b""],
    ids=["text", "broken zip", "zip without workbook"],
)
def test_non_workbook_given_to_an_xlsx_map_is_not_well_formed(payload: bytes) -> None:
    if not payload:  # a real zip archive that is no workbook
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as archive:
            archive.writestr("hello.txt", "hej")
        payload = buf.getvalue()
    mapping = parse_map({"kind": "confirmation", "format": "xlsx", "columns": CONFIRM_COLUMNS}, "x")
    error = failure(mapping, payload, "r.xlsx")
    assert error.code is ErrorCode.NOT_WELL_FORMED
    assert error.message.startswith("r.xlsx: not a readable Excel")


def test_missing_sheet_names_the_sheets_found() -> None:
    mapping = parse_map(
        {"kind": "confirmation", "format": "xlsx", "sheet": "Lines", "columns": CONFIRM_COLUMNS},
        "x",
    )
    error = failure(mapping, workbook([["Order"]], title="Blad1"), "r.xlsx")
    assert error.code is ErrorCode.INTERPRETATION_FAILED
    assert "no sheet 'Lines'" in error.message and "['Blad1']" in error.message


def test_missing_columns_name_expected_and_found_titles() -> None:
    mapping = csv_map("confirmation", {**CONFIRM_COLUMNS, "item_name": "Name"})
    error = failure(mapping, "Order;Line;Quantity;Unit\nA;1;2;C62\n")
    assert error.code is ErrorCode.INTERPRETATION_FAILED
    assert error.line == 1
    assert "'Qty' (quantity), 'Name' (item_name)" in error.message
    assert "['Order', 'Line', 'Quantity', 'Unit']" in error.message
    assert "t.yaml" in error.message


def test_missing_column_with_a_default_is_fine_but_required_ones_are_not() -> None:
    mapping = csv_map("confirmation", CONFIRM_COLUMNS, defaults={"unit": "C62"})
    [doc] = read(mapping, "Order;Line;Qty\nA;1;2\n")
    assert doc.lines[0].quantity == Quantity(Decimal(2), "C62")


def test_a_mapped_title_twice_in_the_header_is_refused() -> None:
    error = failure(
        csv_map("confirmation", CONFIRM_COLUMNS), "Order;Line;Qty;Unit;qty\nA;1;2;C62;3\n"
    )
    assert "'Qty' (quantity) appears 2 times" in error.message


def test_header_without_rows_and_file_shorter_than_header_row() -> None:
    error = failure(csv_map("confirmation", CONFIRM_COLUMNS), HEAD)
    assert ("no data rows" in error.message, error.line) == (True, 1)
    error = failure(csv_map("confirmation", CONFIRM_COLUMNS, header_row=5), HEAD)
    assert "ends before its header row 5" in error.message


def test_row_with_more_cells_than_titles() -> None:
    error = failure(csv_map("confirmation", CONFIRM_COLUMNS), HEAD + "A;1;2;C62;oops\n")
    assert error.line == 2
    assert "row 2 has 5 cells but the header row 1 only 4 titles" in error.message


@pytest.mark.parametrize(
    ("row", "column", "problem"),
    [
        (
            "A;1;zwei;C62",
            "'Qty' (quantity)",
            "expected a number written like 1,234.50, found 'zwei'",
        ),
        (
            "A;1;12,5;C62",
            "'Qty' (quantity)",
            "expected a number written like 1,234.50, found '12,5'",
        ),
        ("A;1;-2;C62", "'Qty' (quantity)", "-2 is negative"),
        (";1;2;C62", "'Order' (order_id)", "the cell is empty"),
        ("A;;2;C62", "'Line' (line_id)", "the cell is empty"),
        (
            "A;1;2;",
            "'Unit' (unit)",
            "quantity 2 has no unit: map a unit column or give defaults.unit",
        ),
        ("A;1;;C62", "'Qty' (quantity)", "the cell is empty"),
    ],
)
def test_bad_cell_names_file_row_and_column(row: str, column: str, problem: str) -> None:
    error = failure(csv_map("confirmation", CONFIRM_COLUMNS), HEAD + "A;9;1;C62\n" + row + "\n")
    assert error.code is ErrorCode.INTERPRETATION_FAILED
    assert error.line == 3
    assert error.message == f"reply.csv, row 3, column {column}: {problem}"


def test_every_bad_row_is_reported_at_once() -> None:
    error = failure(
        csv_map("confirmation", CONFIRM_COLUMNS), HEAD + "A;1;x;C62\nA;2;3;C62\nA;3;y;C62\n"
    )
    assert error.line == 2
    assert "row 2, column 'Qty'" in error.message and "row 4, column 'Qty'" in error.message
    many = HEAD + "".join(f"A;{n};x;C62\n" for n in range(30))
    assert failure(csv_map("confirmation", CONFIRM_COLUMNS), many).message.endswith(
        "... and 10 more"
    )


def test_bad_dates_and_statuses() -> None:
    mapping = csv_map(
        "confirmation",
        {**CONFIRM_COLUMNS, "status": "State", "delivery_date": "When"},
        status_values={"OK": "accepted"},
        date_format="%d.%m.%Y",
    )
    error = failure(mapping, "Order;Line;Qty;Unit;State;When\nA;1;2;C62;OK;2026-11-20\n")
    assert error.message == (
        "reply.csv, row 2, column 'When' (delivery_date): expected a date like 31.12.2026 "
        "(%d.%m.%Y), found '2026-11-20'"
    )
    error = failure(mapping, "Order;Line;Qty;Unit;State;When\nA;1;2;C62;Maybe;\n")
    assert error.message == (
        "reply.csv, row 2, column 'State' (status): unknown status 'Maybe'; "
        "known: OK, accepted, changed, rejected"
    )
    error = failure(mapping, "Order;Line;Qty;Unit;State;When\nA;1;;C62;changed;\n")
    assert (
        "row 2, column 'Qty' (quantity): the line is 'changed' but has no quantity" in error.message
    )


def test_number_cell_in_a_date_column_of_a_workbook() -> None:
    mapping = parse_map({"kind": "despatch", "format": "xlsx", "columns": DESPATCH_COLUMNS}, "x")
    rows: list[list[Any]] = [
        list(DESPATCH_COLUMNS.values()),
        ["A", 1, 2, "C62", "N", "", "", 46000],
    ]
    error = failure(mapping, workbook(rows), "r.xlsx")
    assert error.message.startswith(
        "r.xlsx, row 2, column 'Shipped' (despatch_date): expected a date"
    )


def test_line_confirmed_twice_in_one_order() -> None:
    error = failure(
        csv_map("confirmation", CONFIRM_COLUMNS), HEAD + "A;1;2;C62\nB;1;2;C62\nA;1;3;C62\n"
    )
    assert error.line == 4
    assert "line 1 of order A is already confirmed on row 2" in error.message


def test_rows_of_one_despatch_that_disagree_on_the_carrier() -> None:
    head = "Order;Line;Qty;Unit;Note;Carrier;Tracking;Shipped\n"
    text = head + "A;1;1;C62;N1;DHL;;\nA;2;1;C62;N1;;;\nA;3;1;C62;N1;UPS;;\n"
    error = failure(csv_map("despatch", DESPATCH_COLUMNS), text)
    assert error.message == (
        "reply.csv, row 4, column 'Carrier' (carrier): UPS differs from DHL on row 2 of the "
        "same document"
    )


def test_invoice_errors() -> None:
    mapping = csv_map("invoice", INVOICE_COLUMNS, defaults=INVOICE_DEFAULTS)
    head = INVOICE_HEAD
    error = failure(
        mapping, head + paid("A;1;2;C62;F1;1.50;3.00;25", "3.75") + paid("B;1;1;C62;F1;1;1;25", "1")
    )
    assert "row 3, column 'Order' (order_id): invoice F1 is for order A (row 2)" in error.message
    error = failure(mapping, head + paid("A;1;2;C62;F1;1.50;3.10;25", "3.75"))
    assert (
        "column 'Amount' (line_amount): 3.10 is not quantity 2 x price 1.50 = 3.00" in error.message
    )
    error = failure(mapping, head + paid("A;1;2;C62;;1.50;3.00;25", "3.75"))
    assert "column 'Invoice' (invoice_number): the cell is empty" in error.message
    zero = csv_map("invoice", INVOICE_COLUMNS, defaults={**INVOICE_DEFAULTS, "vat_category": "Z"})
    error = failure(zero, head + paid("A;1;2;C62;F1;1.50;3.00;25", "3.00"))
    assert "column 'VAT' (vat_rate): VAT category Z must have rate 0, not 25" in error.message


def test_negative_invoice_quantity_is_allowed_but_not_a_negative_price() -> None:
    mapping = csv_map("invoice", INVOICE_COLUMNS, defaults=INVOICE_DEFAULTS)
    head = INVOICE_HEAD
    [doc] = read(mapping, head + paid("A;1;-2;C62;F1;1.50;-3.00;25", "-3.75"))
    assert doc.lines[0].line_amount == Decimal("-3.00")
    error = failure(mapping, head + paid("A;1;2;C62;F1;-1.50;;25", "-3.75"))
    assert "-1.50 is negative" in error.message


# --- errors in the map ------------------------------------------------------------------------

GOOD = {"kind": "confirmation", "format": "csv", "columns": CONFIRM_COLUMNS}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"kind": "order"},
            "bad.yaml: kind: Input should be 'confirmation', 'despatch' or 'invoice'",
        ),
        ({"colums": {}}, "bad.yaml: colums: Extra inputs are not permitted"),
        (
            {"columns": {**CONFIRM_COLUMNS, "carrier": "C"}},
            "bad.yaml: columns.carrier is not a field of a confirmation map",
        ),
        (
            {"columns": {"order_id": "O", "line_id": "L"}},
            "bad.yaml: columns: a confirmation map must name the column of quantity",
        ),
        (
            {"columns": {**CONFIRM_COLUMNS, "note": " "}},
            "bad.yaml: columns.note: the column title is empty",
        ),
        (
            {"columns": {**CONFIRM_COLUMNS, "note": "qty"}},
            "bad.yaml: columns: the title(s) ['qty'] are mapped to two fields",
        ),
        (
            {"defaults": {"order_id": "X"}},
            "bad.yaml: defaults.order_id: an identifier cannot have a default",
        ),
        (
            {"defaults": {"vat_rate": "25"}},
            "bad.yaml: defaults.vat_rate is not a field of a confirmation map",
        ),
        ({"delimiter": ";;"}, "bad.yaml: delimiter: must be one character"),
        ({"encoding": "klingon"}, "bad.yaml: encoding: 'klingon' is not an encoding Python knows"),
        ({"sheet": "Blad1"}, "bad.yaml: sheet: only an xlsx map has a sheet"),
        (
            {"format": "xlsx", "delimiter": ";"},
            "bad.yaml: delimiter: only a csv map sets delimiter",
        ),
        ({"format": "xlsx", "sheet": 0}, "bad.yaml: sheet: a sheet position starts at 1, not 0"),
        ({"header_row": 0}, "bad.yaml: header_row: Input should be greater than or equal to 1"),
        (
            {"date_format": "dd-mm-yyyy"},
            "bad.yaml: date_format: 'dd-mm-yyyy' has no day, month or year directive",
        ),
        (
            {"status_values": {"OK": "accepted"}},
            "bad.yaml: status_values: given, but columns has no status column",
        ),
        (
            {"columns": {**CONFIRM_COLUMNS, "status": "S"}, "status_values": {"OK": "yes"}},
            "bad.yaml: status_values.OK: 'yes' is not one of accepted, changed, rejected",
        ),
        ({"decimal_comma": "maybe"}, "bad.yaml: decimal_comma: Input should be a valid boolean"),
    ],
)
def test_bad_maps_name_file_and_key(change: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_map({**GOOD, **change}, "bad.yaml")
    assert caught.value.code is ErrorCode.CONFIG_INVALID
    assert caught.value.message.startswith(message), caught.value.message


def test_load_map_file_errors(tmp_path: Path) -> None:
    for text, expected in (
        ("kind: [confirmation\n", "not valid YAML"),
        ("- a list\n", "a column map must be a mapping of keys"),
        ("kind: despatch\nformat: csv\n", "columns: Field required"),
    ):
        path = tmp_path / "map.yaml"
        path.write_text(text, encoding="utf-8")
        with pytest.raises(ConfigError, match=expected) as caught:
            load_map(path)
        assert str(path) in caught.value.message
    with pytest.raises(ConfigError, match="cannot read the column map"):
        load_map(tmp_path / "absent.yaml")
