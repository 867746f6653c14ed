"""Documents the gateway generates for awkward but legitimate orders, right first time: prices
given for a base quantity (responses and billing documents), lines not subject to VAT (O),
intra-community supplies (K), orders without prices. Every document the gateway queued goes
through ubl-check (OASIS UBL 2.1 XSD + Peppol Schematron); what no document can pass the rules
with is refused before anything is written."""

from __future__ import annotations

import re
from decimal import Decimal
from pathlib import Path

import pytest
from lxml import etree
from sqlalchemy import func, select

from edi_gateway import cli
from edi_gateway.app import Gateway
from edi_gateway.outbound.charges import Discount
from edi_gateway.outbound.despatch import DespatchRequest, despatch
from edi_gateway.outbound.invoice import InvoiceRequest, LineRequest, invoice
from edi_gateway.outbound.issuing import NotAllowed
from edi_gateway.outbound.respond import Decision, respond
from edi_gateway.store.db import Store
from edi_gateway.store.tables import OutboxRow
from tests import factory as f
from tests.unit.support import receive
from tests.unit.test_invoice import SELLER_LEGAL, billing_settings, payload_of
from tests.unit.test_ledger_chain import ubl_check_outbox

D = Decimal
CBC = "urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2"
STANDARD_25 = b"<cbc:ID>S</cbc:ID><cbc:Percent>25</cbc:Percent>"


@pytest.fixture
def gw(store: Store, tmp_path: Path) -> Gateway:
    (tmp_path / "out").mkdir()
    return Gateway(billing_settings(tmp_path, seller_legal=SELLER_LEGAL), store)


def order_with_vat(order_id: str, *categories: bytes) -> bytes:
    """An order of one detailed line per category (10 x 2.25, 3.25 ...), each with that
    ``ClassifiedTaxCategory`` content instead of S 25 %."""
    payload = f.order(order_id, f.items(len(categories)), detailed=True)
    for category in categories:
        payload = payload.replace(STANDARD_25, category, 1)
    return payload


def base_quantity_order(order_id: str) -> bytes:
    """Line 1: 7 at 12.34 per 3 units; line 2: 1000 H87 at 4.99 per 100."""
    lines = [
        f.Item("1", "7", "12.34", seller_item="A-1"),
        f.Item("2", "1000", "4.99", unit="H87", seller_item="B-2"),
    ]
    payload = f.order(order_id, lines)
    for price, base in ((b"12.34", b"3"), (b"4.99", b"100")):
        amount = b'<cbc:PriceAmount currencyID="EUR">' + price + b"</cbc:PriceAmount>"
        payload = payload.replace(
            amount, amount + b"<cbc:BaseQuantity>" + base + b"</cbc:BaseQuantity>"
        )
    return payload


def bill(gw: Gateway, order: str, request: InvoiceRequest | None = None) -> bytes:
    issued = invoice(gw.store, gw.settings, order, request or InvoiceRequest(), actor="ops")
    return payload_of(gw, issued.outbox_id)


def texts(payload: bytes, tag: str) -> list[str]:
    return [el.text for el in etree.fromstring(payload).iter(f"{{{CBC}}}{tag}")]


def test_a_price_for_a_base_quantity_is_billed_per_that_quantity(
    gw: Gateway, tmp_path: Path
) -> None:
    """12.34 for 3 units, 7 ordered: 28.79, not 7 x 12.34 = 86.38 (BR-CO-15 would not see the
    difference: the document without BaseQuantity adds up, at three times the price)."""
    receive(gw, base_quantity_order("PO-B"))
    despatch(gw.store, gw.settings, "PO-B", DespatchRequest(), actor="ops")
    billed = bill(gw, "PO-B")
    assert texts(billed, "LineExtensionAmount")[:3] == ["78.69", "28.79", "49.90"]
    assert texts(billed, "BaseQuantity") == ["3", "100"]
    credited = bill(gw, "PO-B", InvoiceRequest((LineRequest("1", D(1)),), credit_of="INV-PO-B-1"))
    assert texts(credited, "LineExtensionAmount") == ["4.11", "4.11"]  # 1 x 12.34 / 3
    assert ubl_check_outbox(gw, tmp_path) == 3


def test_a_response_states_the_base_quantity_its_prices_are_for(
    gw: Gateway, tmp_path: Path
) -> None:
    """A CA lists every line with its price: 12.34 for 3 units says BaseQuantity 3 (a T76
    price without one is per unit), and 5 % off 12.34 per 3 is 11.723 per 3. An amount
    discount is measured against the lines' real total (28.79 + 49.90), not 86.38 + 4990."""
    receive(gw, base_quantity_order("PO-R"))
    five = Decision("CA", discount=Discount(percent=D(5)))
    respond(gw.store, gw.settings, "PO-R", five, actor="ops")
    hundred = Decision("CA", discount=Discount(amount=D(100)))
    with pytest.raises(NotAllowed, match=r"more than the accepted lines' total 78\.69$"):
        respond(gw.store, gw.settings, "PO-R", hundred, actor="ops")
    with gw.store.session() as session:
        [payload] = session.scalars(select(OutboxRow.payload))
    assert texts(payload, "PriceAmount") == ["11.723", "4.7405"]
    assert texts(payload, "BaseQuantity") == ["3", "100"]
    assert ubl_check_outbox(gw, tmp_path) == 1


def test_not_subject_to_vat_names_no_vat_number(gw: Gateway, tmp_path: Path) -> None:
    """BR-O-02: a document with category O carries neither party's VAT number (the supplier
    and the buyer both have one in their legal profiles)."""
    receive(gw, order_with_vat("PO-O", b"<cbc:ID>O</cbc:ID>", b"<cbc:ID>O</cbc:ID>"))
    despatch(gw.store, gw.settings, "PO-O", DespatchRequest(), actor="ops")
    billed = bill(gw, "PO-O")
    credited = bill(gw, "PO-O", InvoiceRequest((LineRequest("2", D(1)),), credit_of="INV-PO-O-1"))
    for payload in (billed, credited):
        assert b"PartyTaxScheme" not in payload and b"NL123456789B01" not in payload
    assert ubl_check_outbox(gw, tmp_path) == 3  # the advice, the invoice, the credit note


def test_o_beside_another_category_is_refused_and_billed_apart_passes(
    gw: Gateway, tmp_path: Path
) -> None:
    """BR-O-11..14: no other category on a document with O; each part alone is fine, and the
    standard-rated part keeps the VAT numbers."""
    receive(gw, order_with_vat("PO-M", b"<cbc:ID>O</cbc:ID>", STANDARD_25))
    despatch(gw.store, gw.settings, "PO-M", DespatchRequest(), actor="ops")
    with pytest.raises(NotAllowed, match=r"VAT category O .* cannot share a document with S"):
        bill(gw, "PO-M")
    assert b"PartyTaxScheme" not in bill(gw, "PO-M", InvoiceRequest((LineRequest("1"),)))
    assert b"NL123456789B01" in bill(gw, "PO-M", InvoiceRequest((LineRequest("2"),)))
    assert ubl_check_outbox(gw, tmp_path) == 3


def test_an_intra_community_supply_is_refused_before_anything_is_written(gw: Gateway) -> None:
    """BR-IC-11/12 want the actual delivery date and the deliver-to country, which the
    gateway's billing documents do not carry: refused (NOT_ALLOWED), nothing queued."""
    receive(gw, order_with_vat("PO-K", b"<cbc:ID>K</cbc:ID><cbc:Percent>0</cbc:Percent>"))
    despatch(gw.store, gw.settings, "PO-K", DespatchRequest(), actor="ops")
    with gw.store.session() as session:
        queued = session.scalar(select(func.count()).select_from(OutboxRow))
    with pytest.raises(NotAllowed, match=r"intra-community supply \(VAT K\).*BR-IC-11/12"):
        bill(gw, "PO-K")
    with gw.store.session() as session:
        assert session.scalar(select(func.count()).select_from(OutboxRow)) == queued


def test_an_order_without_prices_is_billed_at_the_prices_given_on_the_command_line(
    gw: Gateway, tmp_path: Path
) -> None:
    """Peppol T01 makes prices optional; the refusal says how to give them, and
    ``invoice ORDER --line LINE:QTY:PRICE`` (parsed by the real CLI parser) bills at them."""
    priced = f.order("PO-N", f.items(2))
    receive(gw, re.sub(rb"<cbc:LineExtensionAmount.*?</cac:Price>", b"", priced))
    despatch(gw.store, gw.settings, "PO-N", DespatchRequest(), actor="ops")
    with pytest.raises(NotAllowed, match=r"line 1 has no price: give one \(--line 1:QTY:PRICE\)"):
        bill(gw, "PO-N")
    args = cli.build_parser().parse_args(
        ["invoice", "PO-N", "--line", "1:10:7.50", "--line", "2:3:19.99"]
    )
    billed = bill(gw, "PO-N", args.bulk_of(args))
    assert texts(billed, "LineExtensionAmount") == ["134.97", "75.00", "59.97"]
    with pytest.raises(SystemExit):
        cli.build_parser().parse_args(["invoice", "PO-N", "--line", "1:1:x"])
    assert ubl_check_outbox(gw, tmp_path) == 2
