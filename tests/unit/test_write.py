"""Tests of edi_gateway.ubl.write: Peppol Order Response (T76) and Despatch Advice (T16) writers.

Every generated variant is checked three ways: the product's own XSD validation, a round trip
through ``interpret``, and (when ../shared is beside the checkout) the official ``ubl-check``
(UBL 2.1 XSD + Peppol 2026.5 Schematron).
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
from lxml import etree

from edi_gateway.domain.documents import (
    DespatchAdvice,
    DocumentKind,
    Line,
    OrderResponse,
    Party,
    PartyId,
    Quantity,
)
from edi_gateway.ubl.read import interpret
from edi_gateway.ubl.validate import validate_document
from edi_gateway.ubl.write import WriteError, write_despatch_advice, write_order_response
from tests.conftest import shared_dir

CBC = "urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2"
CAC = "urn:oasis:names:specification:ubl:schema:xsd:CommonAggregateComponents-2"
NS = {"cbc": CBC, "cac": CAC}

# GLNs with valid GS1 check digits (PEPPOL-COMMON-R040 checks them).
BUYER_GLN = "7300010000001"
SELLER_GLN = "7310000000003"
SELLER_NAME = "Leverantör Åkesson & Söner AB"
BUYER_NAME = "Region Västra Götaland 一次性医用口罩 采购"
MASKS = "一次性医用口罩"
OUT_OF_STOCK = "temporarily out of stock – tillfälligt slut i lager"


def seller() -> Party:
    return Party(
        endpoint=PartyId(SELLER_GLN, "0088"),
        ids=[PartyId(SELLER_GLN, "0088")],
        name=SELLER_NAME,
        country="SE",
    )


def buyer() -> Party:
    return Party(
        endpoint=PartyId(BUYER_GLN, "0088"),
        ids=[PartyId(BUYER_GLN, "0088")],
        name=BUYER_NAME,
        country="SE",
    )


def response(code: str, lines: list[Line] | None = None, **kw: object) -> OrderResponse:
    doc = OrderResponse(
        kind=DocumentKind.ORDER_RESPONSE,
        document_id=f"OR-{code}-1",
        issue_date=date(2026, 11, 2),
        currency="SEK",
        buyer=buyer(),
        seller=seller(),
        order_refs=["PO-4711"],
        lines=lines or [],
        response_code=code,
    )
    for name, value in kw.items():
        setattr(doc, name, value)
    return doc


def changed_lines() -> list[Line]:
    """CA lines: accepted, not accepted (out of stock), changed quantity/date/price."""
    return [
        Line("1", order_line_ref="1", item_name="Nitrile gloves", status_code="5"),
        Line(
            "2",
            order_line_ref="2",
            item_name=MASKS,
            seller_item_id="SKU-00002",
            status_code="7",
            note=OUT_OF_STOCK,
        ),
        Line(
            "3",
            Quantity(Decimal("40"), "C62"),
            order_line_ref="3",
            item_name="Handsprit, 500 ml flaska",
            seller_item_id="SKU-00003",
            standard_item_id="07350000000245",
            price=Decimal("9.50"),
            status_code="3",
            delivery_date=date(2026, 11, 20),
            note=f"Ny leveransdag; {MASKS}",
        ),
    ]


def rejected() -> OrderResponse:
    return response("RE", reason=f"Artikeln är utgången: {MASKS}")


def accepted_with_changes() -> OrderResponse:
    return response("CA", changed_lines(), notes=["Ändringar på rad 2 och 3"])


def despatch() -> DespatchAdvice:
    return DespatchAdvice(
        kind=DocumentKind.DESPATCH_ADVICE,
        document_id="DA-2026-0001",
        issue_date=date(2026, 11, 5),
        buyer=buyer(),
        seller=seller(),
        order_refs=["PO-4711"],
        notes=[f"Första leveransen, {MASKS}"],
        lines=[
            Line(
                "1",
                Quantity(Decimal("10"), "C62"),
                order_line_ref="1",
                item_name="Nitrile gloves",
                seller_item_id="SKU-00001",
            ),
            Line(
                "2",
                Quantity(Decimal("6"), "XBX"),
                order_line_ref="3",
                item_name=f"{MASKS} (låda)",
                standard_item_id="07350000000245",
                backorder_quantity=Quantity(Decimal("4"), "XBX"),
                note="Resten följer vecka 48",
            ),
        ],
        carrier="PostNord Sverige AB",
        tracking_id="00370733741234567890",
        despatch_date=date(2026, 11, 5),
        estimated_delivery_date=date(2026, 11, 7),
    )


def despatch_without_shipment() -> DespatchAdvice:
    doc = despatch()
    doc.carrier = doc.tracking_id = doc.despatch_date = doc.estimated_delivery_date = None
    doc.lines = doc.lines[:1]
    return doc


VARIANTS: dict[str, Callable[[], bytes]] = {
    "response-AB": lambda: write_order_response(response("AB")),
    "response-AP": lambda: write_order_response(response("AP")),
    "response-RE": lambda: write_order_response(rejected()),
    "response-CA": lambda: write_order_response(accepted_with_changes()),
    "despatch": lambda: write_despatch_advice(despatch()),
    "despatch-no-shipment": lambda: write_despatch_advice(despatch_without_shipment()),
}


def read_back(payload: bytes) -> object:
    return interpret(etree.fromstring(payload))


def xpath(payload: bytes, expr: str) -> list[str]:
    found = etree.fromstring(payload).xpath(expr, namespaces=NS)
    assert isinstance(found, list)
    return [str(x) for x in found]


# --- order response ------------------------------------------------------------------------


@pytest.mark.parametrize("code", ["AB", "AP", "RE"])
def test_response_without_lines_round_trips(code: str) -> None:
    payload = write_order_response(response(code))
    doc = read_back(payload)
    assert isinstance(doc, OrderResponse)
    assert doc.kind is DocumentKind.ORDER_RESPONSE
    assert (doc.document_id, doc.response_code, doc.order_refs) == (
        f"OR-{code}-1",
        code,
        ["PO-4711"],
    )
    assert doc.issue_date == date(2026, 11, 2)
    assert doc.currency == "SEK"
    assert doc.lines == []
    assert doc.seller is not None and doc.seller.key() == f"0088:{SELLER_GLN}"
    assert doc.buyer is not None and doc.buyer.key() == f"0088:{BUYER_GLN}"
    assert xpath(payload, "/*/cbc:OrderResponseCode/text()") == [code]
    assert xpath(payload, "/*/cac:OrderLine") == []


def test_response_header_follows_peppol_t76() -> None:
    payload = write_order_response(response("AP"))
    assert payload.startswith(b'<?xml version="1.0" encoding="UTF-8"?>\n<OrderResponse ')
    root = etree.fromstring(payload)
    assert root.nsmap == {
        None: "urn:oasis:names:specification:ubl:schema:xsd:OrderResponse-2",
        "cac": CAC,
        "cbc": CBC,
    }
    assert [etree.QName(el).localname for el in root] == [
        "CustomizationID",
        "ProfileID",
        "ID",
        "IssueDate",
        "OrderResponseCode",
        "DocumentCurrencyCode",
        "OrderReference",
        "SellerSupplierParty",
        "BuyerCustomerParty",
    ]
    assert xpath(payload, "/*/cbc:CustomizationID/text()") == [
        "urn:fdc:peppol.eu:poacc:trns:order_response:3"
    ]
    assert xpath(payload, "/*/cbc:ProfileID/text()") == ["urn:fdc:peppol.eu:poacc:bis:ordering:3"]
    party = "/*/cac:SellerSupplierParty/cac:Party"
    assert xpath(payload, f"{party}/cbc:EndpointID/@schemeID") == ["0088"]
    assert xpath(payload, f"{party}/cac:PartyIdentification/cbc:ID/text()") == [SELLER_GLN]
    assert xpath(payload, f"{party}/cac:PartyLegalEntity/cbc:RegistrationName/text()") == [
        SELLER_NAME
    ]
    assert xpath(payload, f"{party}/cac:PostalAddress") == []  # T76 has no address


def test_own_customization_and_profile_win() -> None:
    payload = write_order_response(
        response("AB", customization_id="urn:example:custom", profile_id="urn:example:profile")
    )
    assert xpath(payload, "/*/cbc:CustomizationID/text()") == ["urn:example:custom"]
    assert xpath(payload, "/*/cbc:ProfileID/text()") == ["urn:example:profile"]


def test_rejection_reason_is_the_first_note() -> None:
    doc = rejected()
    doc.notes = ["Kontakta kundtjänst", doc.reason or ""]
    payload = write_order_response(doc)
    assert xpath(payload, "/*/cbc:Note/text()") == [
        f"Artikeln är utgången: {MASKS}",
        "Kontakta kundtjänst",
    ]
    back = read_back(payload)
    assert isinstance(back, OrderResponse)
    assert back.response_code == "RE"
    assert back.reason == f"Artikeln är utgången: {MASKS}"


def test_accepted_with_changes_writes_every_line() -> None:
    payload = write_order_response(accepted_with_changes())
    line = "/*/cac:OrderLine/cac:LineItem"
    assert xpath(payload, f"{line}/cbc:LineStatusCode/text()") == ["5", "7", "3"]
    assert xpath(payload, "/*/cac:OrderLine/cac:OrderLineReference/cbc:LineID/text()") == [
        "1",
        "2",
        "3",
    ]
    assert xpath(payload, f"{line}[cbc:ID='2']/cbc:Note/text()") == [OUT_OF_STOCK]
    assert xpath(payload, "/*/cac:OrderLine/cbc:Note") == []  # T76 forbids OrderLine/Note
    changed = f"{line}[cbc:ID='3']"
    assert xpath(payload, f"{changed}/cbc:Quantity/text()") == ["40"]
    assert xpath(payload, f"{changed}/cbc:Quantity/@unitCode") == ["C62"]
    period = f"{changed}/cac:Delivery/cac:PromisedDeliveryPeriod"
    assert xpath(payload, f"{period}/cbc:StartDate/text()") == ["2026-11-20"]
    assert xpath(payload, f"{period}/cbc:EndDate/text()") == ["2026-11-20"]
    assert xpath(payload, f"{changed}/cac:Price/cbc:PriceAmount/text()") == ["9.50"]
    assert xpath(payload, f"{changed}/cac:Price/cbc:PriceAmount/@currencyID") == ["SEK"]
    gtin = f"{changed}/cac:Item/cac:StandardItemIdentification/cbc:ID"
    assert xpath(payload, f"{gtin}/@schemeID") == ["0160"]
    # the accepted line says no more than it must
    assert xpath(payload, f"{line}[cbc:ID='1']/cbc:Quantity | {line}[cbc:ID='1']/cac:Price") == []


def test_accepted_with_changes_round_trips() -> None:
    doc = read_back(write_order_response(accepted_with_changes()))
    assert isinstance(doc, OrderResponse)
    assert (doc.response_code, doc.order_refs) == ("CA", ["PO-4711"])
    assert doc.notes == ["Ändringar på rad 2 och 3"]
    got = [
        (ln.order_line_ref, ln.status_code, ln.quantity, ln.delivery_date, ln.price, ln.note)
        for ln in doc.lines
    ]
    assert got == [
        ("1", "5", None, None, None, None),
        ("2", "7", None, None, None, OUT_OF_STOCK),
        (
            "3",
            "3",
            Quantity(Decimal("40"), "C62"),
            date(2026, 11, 20),
            Decimal("9.50"),
            f"Ny leveransdag; {MASKS}",
        ),
    ]
    assert [ln.item_name for ln in doc.lines] == [
        "Nitrile gloves",
        MASKS,
        "Handsprit, 500 ml flaska",
    ]
    assert [ln.seller_item_id for ln in doc.lines] == [None, "SKU-00002", "SKU-00003"]
    assert doc.lines[2].standard_item_id == "07350000000245"


def test_line_ref_defaults_to_the_line_id() -> None:
    payload = write_order_response(response("CA", [Line("7", item_name="Gloves", status_code="5")]))
    assert xpath(payload, "/*/cac:OrderLine/cac:OrderLineReference/cbc:LineID/text()") == ["7"]


@pytest.mark.parametrize(
    ("doc", "expected"),
    [
        (response("AP", changed_lines()), "a AP response must not have lines; got 3"),
        (response("RE", changed_lines()), "a RE response must not have lines; got 3"),
        (response("CA"), "a CA (accepted with changes) response must list every order line"),
        (response("XX"), "response code 'XX' is not one of AB, AP, RE, CA"),
        (response("AB", currency=None), "the document currency is missing"),
        (response("AB", issue_date=None), "the issue date is missing"),
        (response("AB", order_refs=[]), "an order response answers exactly one order"),
        (response("AB", order_refs=["A", "B"]), "an order response answers exactly one order"),
        (response("AB", seller=Party(name="No endpoint")), "SellerSupplierParty has no endpoint"),
        (response("AB", buyer=None), "the BuyerCustomerParty is missing"),
        (
            response("CA", [Line("1", item_name="x", status_code="12")]),
            "line 1: line status '12' is not one of 1, 3, 5, 7, 42",
        ),
        (
            response("CA", [Line("1", status_code="5")]),
            "line 1: the item has no name",
        ),
        (
            response("CA", [Line("1", Quantity(Decimal(3)), item_name="x", status_code="3")]),
            "line 1: quantity 3 has no unit code",
        ),
        (
            response(
                "CA",
                [
                    Line("1", item_name="x", status_code="5"),
                    Line("1", item_name="y", status_code="5"),
                ],
            ),
            "line 1: the line ID is used twice",
        ),
    ],
)
def test_response_that_cannot_be_valid_t76_is_refused(doc: OrderResponse, expected: str) -> None:
    with pytest.raises(WriteError) as caught:
        write_order_response(doc)
    assert any(expected in problem for problem in caught.value.problems), caught.value.problems
    assert isinstance(caught.value, ValueError)


def test_every_problem_is_reported_at_once() -> None:
    with pytest.raises(WriteError) as caught:
        write_order_response(response("CA", currency=None, buyer=None))
    assert len(caught.value.problems) == 3
    assert str(caught.value).startswith("cannot write order response: ")


# --- despatch advice -------------------------------------------------------------------------


def test_despatch_structure() -> None:
    payload = write_despatch_advice(despatch())
    root = etree.fromstring(payload)
    assert [etree.QName(el).localname for el in root] == [
        "CustomizationID",
        "ProfileID",
        "ID",
        "IssueDate",
        "Note",
        "OrderReference",
        "DespatchSupplierParty",
        "DeliveryCustomerParty",
        "Shipment",
        "DespatchLine",
        "DespatchLine",
    ]
    assert xpath(payload, "/*/cbc:ProfileID/text()") == [
        "urn:fdc:peppol.eu:poacc:bis:despatch_advice:3"
    ]
    shipment = "/*/cac:Shipment"
    assert xpath(payload, f"{shipment}/cbc:ID/text()") == ["NA"]
    assert xpath(
        payload, f"{shipment}/cac:Consignment/cac:CarrierParty/cac:PartyName/cbc:Name/text()"
    ) == ["PostNord Sverige AB"]
    assert xpath(payload, f"{shipment}/cac:Delivery/cbc:TrackingID/text()") == [
        "00370733741234567890"
    ]
    assert xpath(
        payload, f"{shipment}/cac:Delivery/cac:Despatch/cbc:ActualDespatchDate/text()"
    ) == ["2026-11-05"]
    assert xpath(
        payload, f"{shipment}/cac:Delivery/cac:EstimatedDeliveryPeriod/cbc:EndDate/text()"
    ) == ["2026-11-07"]
    party = "/*/cac:DeliveryCustomerParty/cac:Party"
    assert xpath(
        payload, f"{party}/cac:PostalAddress/cac:Country/cbc:IdentificationCode/text()"
    ) == ["SE"]
    assert xpath(payload, f"{party}/cac:PartyLegalEntity/cbc:RegistrationName/text()") == [
        BUYER_NAME
    ]
    partial = "/*/cac:DespatchLine[cbc:ID='2']"
    assert xpath(payload, f"{partial}/cbc:DeliveredQuantity/text()") == ["6"]
    # T16 has no BackorderQuantity: the rest to follow is the OutstandingQuantity, with a reason
    assert xpath(payload, f"{partial}/cbc:OutstandingQuantity/text()") == ["4"]
    assert xpath(payload, f"{partial}/cbc:OutstandingQuantity/@unitCode") == ["XBX"]
    assert xpath(payload, f"{partial}/cbc:OutstandingReason/text()") == ["Backordered"]
    assert xpath(payload, "/*/cac:DespatchLine/cbc:BackorderQuantity") == []
    assert xpath(payload, "/*/cac:DespatchLine[cbc:ID='1']/cbc:OutstandingQuantity") == []


def test_despatch_round_trips() -> None:
    doc = read_back(write_despatch_advice(despatch()))
    assert isinstance(doc, DespatchAdvice)
    assert (doc.kind, doc.document_id, doc.order_refs) == (
        DocumentKind.DESPATCH_ADVICE,
        "DA-2026-0001",
        ["PO-4711"],
    )
    assert (doc.carrier, doc.tracking_id) == ("PostNord Sverige AB", "00370733741234567890")
    assert (doc.despatch_date, doc.estimated_delivery_date) == (
        date(2026, 11, 5),
        date(2026, 11, 7),
    )
    assert doc.notes == [f"Första leveransen, {MASKS}"]
    assert doc.seller is not None and doc.seller.key() == f"0088:{SELLER_GLN}"
    assert doc.buyer is not None and doc.buyer.key() == f"0088:{BUYER_GLN}"
    assert (doc.seller.name, doc.buyer.name, doc.buyer.country) == (SELLER_NAME, BUYER_NAME, "SE")
    assert [(ln.line_id, ln.order_line_ref, ln.quantity) for ln in doc.lines] == [
        ("1", "1", Quantity(Decimal("10"), "C62")),
        ("2", "3", Quantity(Decimal("6"), "XBX")),
    ]
    assert [ln.item_name for ln in doc.lines] == ["Nitrile gloves", f"{MASKS} (låda)"]
    assert [ln.note for ln in doc.lines] == [None, "Resten följer vecka 48"]


def test_despatch_backorder_round_trips() -> None:
    """T16 carries the rest to follow as OutstandingQuantity; the reader falls back to it."""
    doc = read_back(write_despatch_advice(despatch()))
    assert isinstance(doc, DespatchAdvice)
    assert doc.lines[1].backorder_quantity == Quantity(Decimal("4"), "XBX")


def test_shipment_id_and_no_shipment() -> None:
    doc = despatch()
    doc.shipment_id = "373500000000000018"
    payload = write_despatch_advice(doc)
    assert xpath(payload, "/*/cac:Shipment/cbc:ID/text()") == ["373500000000000018"]
    bare = write_despatch_advice(despatch_without_shipment())
    assert xpath(bare, "/*/cac:Shipment") == []
    back = read_back(bare)
    assert isinstance(back, DespatchAdvice)
    assert (back.carrier, back.tracking_id) == (None, None)
    assert back.despatch_date == date(2026, 11, 5)  # the reader falls back to the issue date


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda d: setattr(d, "lines", []), "a despatch advice needs at least one line"),
        (lambda d: setattr(d.lines[0], "quantity", None), "line 1: the delivered quantity"),
        (lambda d: setattr(d.lines[0], "order_line_ref", None), "line 1: the order line ref"),
        (
            lambda d: setattr(d.lines[0], "seller_item_id", None),
            "line 1: the item needs a seller's item ID or a GTIN",
        ),
        (
            lambda d: setattr(d.lines[1], "standard_item_id", "ABC-123"),
            "line 2: the item needs a seller's item ID or a GTIN",
        ),
        (
            lambda d: setattr(d.lines[0], "quantity", Quantity(Decimal(-1), "C62")),
            "line 1: the delivered quantity -1 is negative",
        ),
        (lambda d: setattr(d.buyer, "name", " "), "DeliveryCustomerParty has no name"),
        (lambda d: setattr(d, "order_refs", ["A", "B"]), "refers to one order at most"),
    ],
)
def test_despatch_that_cannot_be_valid_t16_is_refused(
    change: Callable[[DespatchAdvice], None], expected: str
) -> None:
    doc = despatch()
    change(doc)
    with pytest.raises(WriteError) as caught:
        write_despatch_advice(doc)
    assert any(expected in problem for problem in caught.value.problems), caught.value.problems


# --- every variant: text, XSD, official check ------------------------------------------------


def test_non_latin_text_survives_as_utf8() -> None:
    for name, make in VARIANTS.items():
        payload = make()
        text = payload.decode("utf-8")
        assert SELLER_NAME.replace("&", "&amp;") in text, name
        assert BUYER_NAME in text, name
        assert "&#" not in text, name  # characters, not character references
    assert MASKS in write_order_response(rejected()).decode("utf-8")


@pytest.mark.parametrize("name", list(VARIANTS))
def test_variant_is_xsd_valid_for_the_product(name: str) -> None:
    validated = validate_document(VARIANTS[name](), max_size=10**8)
    assert validated.kind in (DocumentKind.ORDER_RESPONSE, DocumentKind.DESPATCH_ADVICE)


def test_official_ubl_check_passes_every_variant(tmp_path: Path) -> None:
    tool = shared_dir() / "tools" / "ubl-check"
    for name, make in VARIANTS.items():
        (tmp_path / f"{name}.xml").write_bytes(make())
    run = subprocess.run(
        [sys.executable, str(tool), "--json", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    results = json.loads(run.stdout)
    assert sorted(Path(r["file"]).stem for r in results) == sorted(VARIANTS)
    for result in results:
        assert result["xsd"] == [], result
        assert result["rule_sets"] in (["PEPPOLBIS-T76"], ["PEPPOLBIS-T16"]), result
        fatal = [f for f in result["schematron"] if f["flag"] == "fatal"]
        assert fatal == [], result
    assert run.returncode == 0, run.stderr
