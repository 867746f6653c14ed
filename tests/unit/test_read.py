"""Tests of edi_gateway.ubl.read: own fixtures (tests/data/read) and the shared UBL corpus."""

from __future__ import annotations

import csv
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
from lxml import etree

from edi_gateway.domain.documents import (
    ApplicationResponse,
    DespatchAdvice,
    DocumentKind,
    Invoice,
    Line,
    Order,
    OrderCancellation,
    OrderChange,
    OrderResponse,
    Party,
    PartyId,
    Quantity,
    ReceiptAdvice,
)
from edi_gateway.errors import DocumentError, ErrorCode
from edi_gateway.ubl import namespaces
from edi_gateway.ubl.read import interpret
from tests.conftest import shared_dir

DATA = Path(__file__).parents[1] / "data" / "read"
CORPUS = Path(__file__).parents[2] / ".." / "shared" / "corpus"

CBC = "urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2"
CAC = "urn:oasis:names:specification:ubl:schema:xsd:CommonAggregateComponents-2"
NS = f'xmlns:cac="{CAC}" xmlns:cbc="{CBC}"'


def parse(data: bytes) -> etree._Element:
    """Parse as the tests are told to (the hardened parser lives elsewhere)."""
    return etree.fromstring(
        data, etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=True)
    )


def load(name: str) -> etree._Element:
    return parse((DATA / name).read_bytes())


def replaced(name: str, old: str, new: str) -> etree._Element:
    """A fixture with one text replacement (which must happen exactly once)."""
    text = (DATA / name).read_text(encoding="utf-8")
    assert text.count(old) == 1, old
    return parse(text.replace(old, new).encode("utf-8"))


# --- own fixtures ---------------------------------------------------------------------------


def test_order_header_parties_and_total() -> None:
    doc = interpret(load("order.xml"))
    assert type(doc) is Order
    assert doc.kind is DocumentKind.ORDER
    assert doc.document_id == "PO-1001"
    assert doc.issue_date == date(2026, 3, 2)
    assert doc.customization_id == "urn:fdc:peppol.eu:poacc:trns:order:3"
    assert doc.profile_id == "urn:fdc:peppol.eu:poacc:bis:ordering:3"
    assert doc.currency == "EUR"
    assert doc.notes == ["Deliver to gate 4", "Call before delivery"]
    assert doc.total_amount == Decimal("1481.875")
    assert doc.buyer == Party(
        endpoint=PartyId("7300010000001", "0088"),
        ids=[PartyId("7300010000001", "0088"), PartyId("BUYER-42")],
        name="Buyer Hospital AB",
        vat_id="SE556677889901",
        country="SE",
    )
    # PartyName wins over PartyLegalEntity/RegistrationName.
    assert doc.seller == Party(endpoint=PartyId("5546577799", "0007"), name="Medical Supplies Ltd")
    assert doc.sender() is doc.buyer
    assert doc.order_refs == [] and doc.billing_refs == [] and doc.despatch_refs == []


def test_order_lines() -> None:
    doc = interpret(load("order.xml"))
    assert doc.lines == [
        Line(
            line_id="1",
            quantity=Quantity(Decimal("120"), "C62"),
            item_name="Surgical gloves, size M",
            seller_item_id="S-4711",
            buyer_item_id="B-GL-M",
            standard_item_id="07300010000018",
            price=Decimal("5.00"),
            line_amount=Decimal("600.00"),
            delivery_date=date(2026, 3, 12),
            note="Fragile",
        ),
        Line(
            line_id="2",
            quantity=Quantity(Decimal("12.5"), "KGM"),
            item_name="Disinfectant powder",
            seller_item_id="S-0815",
            price=Decimal("6.84"),
            line_amount=Decimal("85.50"),
            delivery_date=date(2026, 3, 15),  # StartDate when there is no EndDate
        ),
        Line(
            line_id="3",
            quantity=Quantity(Decimal("20"), "XBX"),
            item_name="Bandage box",
            price=Decimal("25"),
            line_amount=Decimal("500.00"),
        ),
    ]


def test_order_response_accepted_with_changes() -> None:
    doc = interpret(load("order_response_ca.xml"))
    assert type(doc) is OrderResponse
    assert doc.kind is DocumentKind.ORDER_RESPONSE
    assert (doc.document_id, doc.response_code) == ("OR-77", "CA")
    assert doc.reason == "Line 2 quantity reduced, line 3 not stocked"
    assert doc.notes == [doc.reason, "Second note"]
    assert doc.order_refs == ["PO-1001"]
    assert doc.seller is not None and doc.seller.name == "Medical Supplies Limited"
    assert doc.buyer is not None and doc.buyer.key() == "0088:7300010000001"
    assert doc.sender() is doc.seller
    assert [(ln.line_id, ln.order_line_ref, ln.status_code) for ln in doc.lines] == [
        ("1", "1", "5"),
        ("20", "2", "3"),
        ("3", "3", "7"),  # no OrderLineReference: falls back to LineItem/ID
    ]
    changed = doc.lines[1]
    assert changed.quantity == Quantity(Decimal("10"), "KGM")
    assert changed.price == Decimal("6.84")
    assert changed.note == "Only 10 kg in stock"  # LineItem/Note when OrderLine has none
    assert changed.delivery_date == date(2026, 3, 18)  # PromisedDeliveryPeriod/EndDate
    assert doc.lines[0].quantity is None


def test_despatch_advice_backorder_carrier_tracking() -> None:
    doc = interpret(load("despatch_advice.xml"))
    assert type(doc) is DespatchAdvice
    assert doc.document_id == "DA-555"
    assert doc.carrier == "Swift and Sure Freight"
    assert doc.tracking_id == "1178298510DK"
    assert doc.despatch_date == date(2026, 3, 10)
    assert doc.estimated_delivery_date == date(2026, 3, 12)
    assert doc.notes == ["Partial delivery"]
    # Buyer is BuyerCustomerParty when present, seller the DespatchSupplierParty.
    assert doc.buyer is not None and doc.buyer.ids == [PartyId("7300010000001", "0088")]
    assert doc.seller is not None and doc.seller.endpoint == PartyId("5546577799", "0007")
    assert doc.sender() is doc.seller
    # Header reference first, then line references, deduplicated.
    assert doc.order_refs == ["PO-1001", "PO-1002"]
    first, second = doc.lines
    assert first == Line(
        line_id="1",
        quantity=Quantity(Decimal("100"), "C62"),
        backorder_quantity=Quantity(Decimal("20"), "C62"),
        order_line_ref="1",
        item_name="Surgical gloves, size M",
        seller_item_id="S-4711",
        note="Remaining gloves follow next week",
    )
    assert second.quantity == Quantity(Decimal("10"), "KGM")
    assert second.backorder_quantity is None
    assert second.order_line_ref == "2"


def test_despatch_advice_fallbacks() -> None:
    xml = (DATA / "despatch_advice.xml").read_text(encoding="utf-8")
    xml = xml.replace("<cbc:EndDate>2026-03-12</cbc:EndDate>", "")
    xml = xml.replace("<cbc:ActualDespatchDate>2026-03-10</cbc:ActualDespatchDate>", "")
    xml = xml.replace("<cbc:TrackingID>1178298510DK</cbc:TrackingID>", "")
    xml = xml.replace(
        "<cbc:ID>CONS-1</cbc:ID>",
        "<cbc:ID>CONS-1</cbc:ID><cbc:CarrierAssignedID>CA-778</cbc:CarrierAssignedID>",
    )
    start = xml.index("<cac:BuyerCustomerParty>")
    end = xml.index("</cac:BuyerCustomerParty>") + len("</cac:BuyerCustomerParty>")
    xml = xml[:start] + xml[end:]
    doc = interpret(parse(xml.encode()))
    assert isinstance(doc, DespatchAdvice)
    assert doc.tracking_id == "CA-778"  # Consignment/CarrierAssignedID
    assert doc.despatch_date == date(2026, 3, 9)  # IssueDate
    assert doc.estimated_delivery_date == date(2026, 3, 11)  # StartDate
    assert doc.buyer is not None and doc.buyer.name == "Hospital goods reception"


def test_invoice_totals_and_references() -> None:
    doc = interpret(load("invoice.xml"))
    assert type(doc) is Invoice
    assert doc.kind is DocumentKind.INVOICE
    assert (doc.document_id, doc.type_code) == ("INV-2026-0042", "380")
    assert doc.issue_date == date(2026, 3, 20)
    assert doc.due_date == date(2026, 4, 19)
    assert doc.tax_exclusive_amount == Decimal("600.00")
    assert doc.tax_amount == Decimal("150.00")  # the EUR TaxTotal, not the SEK one
    assert doc.payable_amount == Decimal("750.00")
    assert doc.order_refs == ["PO-1001"]
    assert doc.despatch_refs == ["DA-555", "DA-556"]
    assert doc.billing_refs == []
    assert doc.seller == Party(
        endpoint=PartyId("5546577799", "0007"),
        name="Medical Supplies Limited",
        vat_id="GB123456789",
        country="GB",
    )
    assert doc.buyer is not None and doc.buyer.name == "Buyer Hospital AB"
    assert doc.sender() is doc.seller
    assert doc.lines[0] == Line(
        line_id="1",
        quantity=Quantity(Decimal("100"), "C62"),
        order_line_ref="1",
        item_name="Surgical gloves, size M",
        standard_item_id="07300010000018",
        price=Decimal("5.00"),
        line_amount=Decimal("500.00"),
    )
    assert [(ln.order_line_ref, ln.quantity) for ln in doc.lines[1:]] == [
        ("2", Quantity(Decimal("10"), "KGM"))
    ]


def test_credit_note_billing_references() -> None:
    doc = interpret(load("credit_note.xml"))
    assert type(doc) is Invoice
    assert doc.kind is DocumentKind.CREDIT_NOTE
    assert (doc.document_id, doc.type_code) == ("CN-7", "381")
    assert doc.billing_refs == ["INV-2026-0042", "CN-6"]
    assert doc.due_date == date(2026, 4, 24)  # PaymentMeans/PaymentDueDate
    assert (doc.tax_exclusive_amount, doc.tax_amount, doc.payable_amount) == (
        Decimal("100.00"),
        Decimal("25.00"),
        Decimal("125.00"),
    )
    (line,) = doc.lines
    assert line.quantity == Quantity(Decimal("20"), "C62")
    assert (line.order_line_ref, line.price, line.line_amount) == (
        "1",
        Decimal("5.00"),
        Decimal("100.00"),
    )


def test_debit_note() -> None:
    doc = interpret(load("debit_note.xml"))
    assert type(doc) is Invoice
    assert doc.kind is DocumentKind.DEBIT_NOTE
    assert doc.type_code is None
    assert doc.issue_date == date(2026, 3, 28)  # zone suffix "Z" ignored
    assert doc.billing_refs == ["INV-2026-0042"]
    assert (doc.tax_exclusive_amount, doc.tax_amount, doc.payable_amount) == (
        Decimal("40.00"),
        Decimal("10.00"),
        Decimal("50.00"),
    )
    assert doc.due_date is None
    assert doc.seller == Party(name="Medical Supplies Ltd")
    assert doc.seller.key() == "name:Medical Supplies Ltd"
    assert doc.lines == [
        Line(
            line_id="1",
            quantity=Quantity(Decimal("1"), "C62"),
            item_name="Freight",
            price=Decimal("40.00"),
            line_amount=Decimal("40.00"),
        )
    ]


def test_order_cancellation() -> None:
    doc = interpret(load("order_cancellation.xml"))
    assert type(doc) is OrderCancellation
    assert doc.document_id == "CXL-1"
    assert doc.reason == "Project postponed\nBudget frozen until Q3"
    assert doc.order_refs == ["PO-1001"]
    assert doc.lines == []
    assert doc.sender() is doc.buyer
    assert doc.buyer is not None and doc.buyer.key() == "0088:7300010000001"


def test_order_change() -> None:
    doc = interpret(load("order_change.xml"))
    assert type(doc) is OrderChange
    assert (doc.document_id, doc.sequence) == ("CHG-2", 2)
    assert doc.order_refs == ["PO-1001"]
    assert doc.lines == [
        Line(
            line_id="1",
            quantity=Quantity(Decimal("150"), "C62"),
            item_name="Surgical gloves, size M",
            price=Decimal("4.90"),
        )
    ]


def test_order_change_non_numeric_sequence() -> None:
    doc = replaced(
        "order_change.xml",
        "<cbc:SequenceNumberID>2</cbc:SequenceNumberID>",
        "<cbc:SequenceNumberID>2b</cbc:SequenceNumberID>",
    )
    result = interpret(doc)
    assert isinstance(result, OrderChange) and result.sequence is None
    assert result.sequence_id == "2b"  # kept as written: correlation refuses it (ADR 0025)


def test_receipt_advice() -> None:
    doc = interpret(load("receipt_advice.xml"))
    assert type(doc) is ReceiptAdvice
    assert doc.document_id == "RA-9"
    # Buyer is the DeliveryCustomerParty, even though a BuyerCustomerParty is present.
    assert doc.buyer is not None and doc.buyer.key() == "0088:7300010000025"
    assert doc.seller is not None and doc.seller.key() == "0007:5546577799"
    assert doc.sender() is doc.buyer
    assert doc.order_refs == ["PO-1001"]
    assert doc.despatch_refs == ["DA-555"]
    assert doc.lines == [
        Line(
            line_id="1",
            quantity=Quantity(Decimal("98"), "C62"),
            order_line_ref="1",
            item_name="Surgical gloves, size M",
            buyer_item_id="B-GL-M",
            note="Two boxes dented",
        )
    ]


def test_order_response_simple_rejected() -> None:
    doc = interpret(load("order_response_simple.xml"))
    assert type(doc) is OrderResponse
    assert doc.kind is DocumentKind.ORDER_RESPONSE_SIMPLE
    assert (doc.document_id, doc.response_code) == ("ORS-5", "RE")
    assert doc.reason == "Unknown delivery address"
    assert doc.notes == ["Automatic reply"]
    assert doc.order_refs == ["PO-1001"]
    assert doc.seller is not None and doc.seller.name == "Medical Supplies Ltd"
    assert doc.lines == []


@pytest.mark.parametrize("indicator", ["true", "1"])
def test_order_response_simple_accepted(indicator: str) -> None:
    doc = replaced(
        "order_response_simple.xml",
        "<cbc:AcceptedIndicator> false </cbc:AcceptedIndicator>",
        f"<cbc:AcceptedIndicator>{indicator}</cbc:AcceptedIndicator>",
    )
    result = interpret(doc)
    assert isinstance(result, OrderResponse) and result.response_code == "AP"


def test_application_response() -> None:
    doc = interpret(load("application_response.xml"))
    assert type(doc) is ApplicationResponse
    assert doc.document_id == "IR-11"
    assert doc.response_code == "RE"  # first DocumentResponse
    assert doc.referenced_document_ids == ["INV-2026-0042", "INV-2026-0043"]
    assert doc.notes == ["Rejected: wrong order number"]
    # SenderParty is stored as seller so that sender() returns it; ReceiverParty as buyer.
    assert doc.seller == Party(endpoint=PartyId("7300010000001", "0088"), name="Buyer Hospital AB")
    assert doc.sender() is doc.seller
    assert doc.receiver() is doc.buyer
    assert doc.buyer is not None and doc.buyer.name == "Medical Supplies Limited"


# --- errors ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "xml",
    [
        b'<Catalogue xmlns="urn:oasis:names:specification:ubl:schema:xsd:Catalogue-2"/>',
        b'<Order xmlns="urn:example:not-ubl"><ID>1</ID></Order>',
        b"<Order><ID>1</ID></Order>",
    ],
)
def test_unsupported_root(xml: bytes) -> None:
    with pytest.raises(DocumentError) as caught:
        interpret(parse(xml))
    assert caught.value.code is ErrorCode.UNSUPPORTED_DOCUMENT
    assert "Order" in caught.value.message  # lists what is supported


def test_missing_document_id() -> None:
    # cbc:ID is optional in the OrderChange schema, so this is XSD-valid.
    root = replaced("order_change.xml", "<cbc:ID>CHG-2</cbc:ID>", "")
    with pytest.raises(DocumentError) as caught:
        interpret(root)
    assert caught.value.code is ErrorCode.INTERPRETATION_FAILED
    assert "cbc:ID" in caught.value.message and "OrderChange" in caught.value.message
    assert caught.value.line == root.sourceline  # the element that lacks it


def test_blank_document_id() -> None:
    root = replaced("invoice.xml", "<cbc:ID>INV-2026-0042</cbc:ID>", "<cbc:ID>  </cbc:ID>")
    with pytest.raises(DocumentError) as caught:
        interpret(root)
    assert caught.value.code is ErrorCode.INTERPRETATION_FAILED


def test_blank_line_id_reports_line() -> None:
    root = replaced(
        "order.xml",
        "<cbc:ID>2</cbc:ID>",
        "<cbc:ID>\n</cbc:ID>",
    )
    with pytest.raises(DocumentError) as caught:
        interpret(root)
    assert caught.value.code is ErrorCode.INTERPRETATION_FAILED
    assert "line cbc:ID" in caught.value.message and "LineItem" in caught.value.message
    assert caught.value.line == 85  # the empty cbc:ID of the second line


def test_unreadable_decimal_is_interpretation_failure() -> None:
    root = replaced("order.xml", ">1481.875<", ">1,481.875<")
    with pytest.raises(DocumentError) as caught:
        interpret(root)
    assert caught.value.code is ErrorCode.INTERPRETATION_FAILED
    assert "PayableAmount" in caught.value.message


def test_unreadable_date_is_interpretation_failure() -> None:
    root = replaced("order.xml", ">2026-03-02<", ">02.03.2026<")
    with pytest.raises(DocumentError) as caught:
        interpret(root)
    assert caught.value.code is ErrorCode.INTERPRETATION_FAILED
    assert caught.value.line == 8


# --- namespaces -----------------------------------------------------------------------------


def test_namespace_helpers() -> None:
    assert namespaces.cbc("ID") == f"{{{CBC}}}ID"
    assert namespaces.path("cac:Party", "cbc:Name") == f"{{{CAC}}}Party/{{{CBC}}}Name"
    assert namespaces.root_tag("Invoice") == (
        "{urn:oasis:names:specification:ubl:schema:xsd:Invoice-2}Invoice"
    )
    assert namespaces.split_clark(namespaces.cac("Item")) == (CAC, "Item")
    assert namespaces.split_clark("plain") == (None, "plain")
    for bad in ("Name", "xyz:Name", "cbc:"):
        with pytest.raises(ValueError, match="path step"):
            namespaces.path(bad)


# --- volume ---------------------------------------------------------------------------------

_BIG_HEAD = f"""<?xml version="1.0" encoding="UTF-8"?>
<Order xmlns="urn:oasis:names:specification:ubl:schema:xsd:Order-2" {NS}>
<cbc:CustomizationID>urn:fdc:peppol.eu:poacc:trns:order:3</cbc:CustomizationID>
<cbc:ProfileID>urn:fdc:peppol.eu:poacc:bis:ordering:3</cbc:ProfileID>
<cbc:ID>BIG-1</cbc:ID><cbc:IssueDate>2026-03-01</cbc:IssueDate>
<cbc:DocumentCurrencyCode>EUR</cbc:DocumentCurrencyCode>
<cac:BuyerCustomerParty><cac:Party><cbc:EndpointID schemeID="0088">7300010000001</cbc:EndpointID>
</cac:Party></cac:BuyerCustomerParty>
<cac:SellerSupplierParty><cac:Party><cbc:EndpointID schemeID="0007">5546577799</cbc:EndpointID>
</cac:Party></cac:SellerSupplierParty>
"""

_BIG_LINE = (
    "<cac:OrderLine><cbc:Note>Line note {n}</cbc:Note><cac:LineItem><cbc:ID>{n}</cbc:ID>"
    '<cbc:Quantity unitCode="C62">{q}</cbc:Quantity>'
    '<cbc:LineExtensionAmount currencyID="EUR">{q}0.50</cbc:LineExtensionAmount>'
    "<cac:Delivery><cac:RequestedDeliveryPeriod><cbc:StartDate>2026-04-01</cbc:StartDate>"
    "<cbc:EndDate>2026-04-03</cbc:EndDate></cac:RequestedDeliveryPeriod></cac:Delivery>"
    '<cac:Price><cbc:PriceAmount currencyID="EUR">10.05</cbc:PriceAmount></cac:Price>'
    "<cac:Item><cbc:Name>Article {n}</cbc:Name>"
    "<cac:BuyersItemIdentification><cbc:ID>B-{n}</cbc:ID></cac:BuyersItemIdentification>"
    "<cac:SellersItemIdentification><cbc:ID>S-{n}</cbc:ID></cac:SellersItemIdentification>"
    '<cac:StandardItemIdentification><cbc:ID schemeID="0160">{gtin}</cbc:ID>'
    "</cac:StandardItemIdentification></cac:Item></cac:LineItem></cac:OrderLine>\n"
)


def big_order(lines: int) -> bytes:
    """A schema-valid Peppol-style order with ``lines`` lines (about 700 bytes a line)."""
    body = "".join(
        _BIG_LINE.format(n=n, q=n % 97 + 1, gtin=f"{7300000000000 + n:014d}")
        for n in range(1, lines + 1)
    )
    return (_BIG_HEAD + body + "</Order>\n").encode()


def test_many_lines() -> None:
    doc = interpret(parse(big_order(2_000)))
    assert len(doc.lines) == 2_000
    last = doc.lines[-1]
    assert last == Line(
        line_id="2000",
        quantity=Quantity(Decimal(2000 % 97 + 1), "C62"),
        item_name="Article 2000",
        seller_item_id="S-2000",
        buyer_item_id="B-2000",
        standard_item_id="07300000002000",
        price=Decimal("10.05"),
        line_amount=Decimal(f"{2000 % 97 + 1}0.50"),
        delivery_date=date(2026, 4, 3),
        note="Line note 2000",
    )


# --- shared corpus --------------------------------------------------------------------------

LINE_ELEMENTS = {
    "Order": "OrderLine",
    "OrderChange": "OrderLine",
    "OrderResponse": "OrderLine",
    "DespatchAdvice": "DespatchLine",
    "ReceiptAdvice": "ReceiptLine",
    "Invoice": "InvoiceLine",
    "CreditNote": "CreditNoteLine",
    "DebitNote": "DebitNoteLine",
}


def _corpus_missing() -> bool:
    return not (CORPUS / "MANIFEST.tsv").is_file()


def _corpus_rows() -> list[dict[str, str]]:
    if _corpus_missing():
        return []
    with (CORPUS / "MANIFEST.tsv").open(encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh, delimiter="\t", quoting=csv.QUOTE_NONE))
    supported = {kind.value for kind in DocumentKind}
    return [
        row
        for row in rows
        if row["kind"] == "ubl-instance"
        and row["xsd_ubl21"] == "valid"
        and row["root"] in supported
    ]


CORPUS_ROWS = _corpus_rows()


def _require_corpus() -> None:
    if _corpus_missing():
        shared_dir()  # fails under CI=true, skips elsewhere
        pytest.fail(f"UBL corpus missing at {CORPUS.resolve()} although ../shared is there")


def test_corpus_is_present_and_covers_every_kind() -> None:
    _require_corpus()
    assert {row["root"] for row in CORPUS_ROWS} == {kind.value for kind in DocumentKind}
    assert len(CORPUS_ROWS) >= 100


@pytest.mark.parametrize("row", CORPUS_ROWS, ids=[row["path"] for row in CORPUS_ROWS])
def test_corpus_document(row: dict[str, str]) -> None:
    _require_corpus()
    root = parse((CORPUS / row["path"]).read_bytes())
    doc = interpret(root)
    assert doc.kind.value == row["root"]
    assert doc.document_id
    assert doc.document_id == doc.document_id.strip()
    line_element = LINE_ELEMENTS.get(row["root"])
    if line_element is not None:
        assert len(doc.lines) == len(root.findall(f"{{{CAC}}}{line_element}"))
        assert all(line.line_id for line in doc.lines)
    else:
        assert doc.lines == []


# --- fast-path semantics (read_lines / read_parties read children directly) -----------------


def test_comment_before_first_child_is_skipped() -> None:
    text = (DATA / "order.xml").read_text(encoding="utf-8")
    for old in (
        '<cbc:PriceAmount currencyID="EUR">5.00',
        "<cbc:ID>S-4711</cbc:ID>",
        "<cbc:ID>B-GL-M</cbc:ID>",
        '<cbc:ID schemeID="0160">07300010000018',
    ):
        assert text.count(old) == 1, old
        text = text.replace(old, "<!-- c -->" + old)
    first = interpret(parse(text.encode("utf-8"))).lines[0]
    assert (first.price, first.seller_item_id, first.buyer_item_id, first.standard_item_id) == (
        Decimal("5.00"),
        "S-4711",
        "B-GL-M",
        "07300010000018",
    )


def test_first_of_repeated_elements_wins() -> None:
    root = replaced(
        "order.xml",
        '<cbc:PriceAmount currencyID="EUR">5.00</cbc:PriceAmount>',
        '<cbc:PriceAmount currencyID="EUR"> </cbc:PriceAmount>'
        '<cbc:PriceAmount currencyID="EUR">9.99</cbc:PriceAmount>',
    )
    # Like find(): the first PriceAmount is taken even when it is empty.
    assert interpret(root).lines[0].price is None


def test_empty_order_line_note_falls_back_to_line_item_note() -> None:
    root = replaced(
        "order.xml",
        "<cbc:Note>Fragile</cbc:Note>",
        "<cbc:Note> </cbc:Note>",
    )
    assert interpret(root).lines[0].note is None
    root = replaced(
        "order.xml",
        "<cbc:Note>Fragile</cbc:Note>",
        "<cbc:Note> </cbc:Note><cbc:Note>Second</cbc:Note>",
    )
    assert interpret(root).lines[0].note is None  # only the first OrderLine note is read


def test_repeated_values_are_equal_objects_per_line() -> None:
    doc = interpret(parse(big_order(200)))
    quantities = {line.quantity for line in doc.lines}
    assert all(isinstance(q, Quantity) and q.unit == "C62" for q in quantities)
    assert len(quantities) == 97  # n % 97 + 1
    assert {line.price for line in doc.lines} == {Decimal("10.05")}
    assert doc.lines[5].quantity == Quantity(Decimal(6 % 97 + 1), "C62")


@pytest.mark.parametrize(
    ("old", "new", "element"),
    [
        (">600.00<", ">6OO<", "LineExtensionAmount"),
        (">5.00<", ">5,00<", "PriceAmount"),
        (">120<", ">12O<", "Quantity"),
        (">2026-03-12<", ">12.03.2026<", "EndDate"),
    ],
)
def test_unreadable_line_value_names_its_element(old: str, new: str, element: str) -> None:
    root = replaced("order.xml", old, new)
    with pytest.raises(DocumentError) as caught:
        interpret(root)
    assert caught.value.code is ErrorCode.INTERPRETATION_FAILED
    assert element in caught.value.message
    assert caught.value.line is not None


def test_party_name_path_order() -> None:
    # An empty PartyName/Name falls through to PartyLegalEntity/RegistrationName.
    root = replaced("order.xml", "<cbc:Name>Medical Supplies Ltd</cbc:Name>", "<cbc:Name/>")
    seller = interpret(root).seller
    assert seller is not None and seller.name == "Medical Supplies Limited"


def _orders_of_the_corpus() -> list[Path]:
    examples = shared_dir() / "corpus" / "peppol-validation-artefacts" / "2026.5" / "examples"
    found = [examples / "Order_Example.xml", *sorted((examples / "Order use cases").rglob("*.xml"))]
    found += sorted((examples / "Advanced Ordering scenarios").rglob("*.xml"))
    return [p for p in found if etree.parse(str(p)).getroot().tag == namespaces.root_tag("Order")]


def test_the_parties_of_a_stored_order_are_those_read_stored_gives() -> None:
    """What a document issued on an order takes from it (profile, buyer, seller), read without
    the lines, is exactly what the whole read gives: every Peppol order example, T01 and
    advanced ordering."""
    from edi_gateway.domain.documents import Order
    from edi_gateway.ubl.read import read_stored, read_stored_parties

    orders = _orders_of_the_corpus()
    assert len(orders) >= 5
    advanced = 0
    for path in orders:
        payload = path.read_bytes()
        whole = read_stored(payload)
        assert isinstance(whole, Order)
        parties = read_stored_parties(payload)
        assert (parties.profile_id, parties.buyer, parties.seller) == (
            whole.profile_id,
            whole.buyer,
            whole.seller,
        ), path
        advanced += "advanced_ordering" in (whole.profile_id or "")
    assert advanced >= 1


def test_parties_are_read_of_an_order_only() -> None:
    """Bytes that are another document are refused with a code, never read as an Order's."""
    from edi_gateway.errors import GatewayError
    from edi_gateway.ubl.read import read_stored_parties

    examples = shared_dir() / "corpus" / "peppol-validation-artefacts" / "2026.5" / "examples"
    with pytest.raises(GatewayError) as refused:
        read_stored_parties((examples / "OrderResponse_Example.xml").read_bytes())
    assert refused.value.code == ErrorCode.INTERNAL_ERROR
    assert "OrderResponse, not an Order" in refused.value.message
