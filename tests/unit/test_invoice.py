"""Invoices, credit notes and debit notes the gateway issues: chains, refusals, Billing 3.0."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from lxml import etree
from sqlalchemy import select

from edi_gateway.app import Gateway
from edi_gateway.config import Settings
from edi_gateway.domain.billing import AllowanceCharge
from edi_gateway.domain.documents import Invoice
from edi_gateway.errors import ErrorCode, GatewayError
from edi_gateway.outbound import outbox
from edi_gateway.outbound.despatch import DespatchRequest, despatch
from edi_gateway.outbound.invoice import InvoiceRequest, LineRequest, invoice
from edi_gateway.outbound.issuing import NotAllowed
from edi_gateway.store.db import Store
from edi_gateway.store.tables import OutboxRow
from edi_gateway.ubl.read import interpret
from tests import factory as f
from tests.conftest import shared_dir
from tests.unit.support import detail, receive

SELLER_LEGAL = {
    "registration_name": "Verkäufer & Söhne BV",
    "company_id": {"value": "12345678", "scheme": "0106"},
    "vat_id": "NL123456789B01",
    "street": "Keizersgracht 1",
    "city": "Amsterdam",
    "postal_zone": "1015 CJ",
    "country": "NL",
    "iban": "NL91ABNA0417164300",
    "bic": "ABNANL2A",
    "payment_terms": "30 dagen netto",
    "default_vat_rate": "21",
}
BUYER_LEGAL = {
    "registration_name": "Köpare AB – 東京支店",
    "vat_id": "SE556677889901",
    "city": "Göteborg",
    "country": "SE",
}


def billing_settings(
    tmp_path: Path,
    *,
    debit_note_as: str = "invoice",
    seller_legal: dict[str, Any] | None = None,
    more: tuple[dict[str, Any], ...] = (),
    connectors: tuple[dict[str, Any], ...] = (),
    buyer: dict[str, Any] | None = None,
) -> Settings:
    return Settings.model_validate(
        {
            "path": tmp_path / "gateway.yaml",
            "partners": [
                f.buyer_partner(
                    outbound="to-buyer",
                    legal=BUYER_LEGAL,
                    debit_note_as=debit_note_as,
                    **(buyer or {}),
                ),
                f.seller_partner(**({"legal": seller_legal} if seller_legal else {})),
                *more,
            ],
            "connectors": [
                {"name": "to-buyer", "type": "folder", "direction": "out", "path": "out"},
                *connectors,
            ],
        },
        context={"base_dir": tmp_path},
    )


@pytest.fixture
def billing(store: Store, tmp_path: Path) -> Gateway:
    """A gateway whose supplier has a legal profile; orders PO-1 of two lines (10 each)."""
    (tmp_path / "out").mkdir()
    gateway = Gateway(billing_settings(tmp_path, seller_legal=SELLER_LEGAL), store)
    receive(gateway, f.order("PO-1", f.items(2)))
    return gateway


def bill(gateway: Gateway, request: InvoiceRequest | None = None, **kw: Any) -> Any:
    return invoice(
        gateway.store, gateway.settings, "PO-1", request or InvoiceRequest(), actor="ops", **kw
    )


def quantities(gateway: Gateway) -> dict[str, tuple[str | None, str | None]]:
    return {
        line["line_id"]: (line["invoiced"], line["credited"]) for line in detail(gateway)["lines"]
    }


def payload_of(gateway: Gateway, outbox_id: int) -> bytes:
    with gateway.store.session() as session:
        return session.scalars(select(OutboxRow.payload).where(OutboxRow.id == outbox_id)).one()


def sent(gateway: Gateway, outbox_id: int) -> Invoice:
    document = interpret(etree.fromstring(payload_of(gateway, outbox_id)))
    assert isinstance(document, Invoice)
    return document


def test_invoice_chain_moves_quantities_and_status(billing: Gateway) -> None:
    receive(billing, f.despatch_advice("D-1", "PO-1", [("1", "10"), ("2", "4")]))
    assert detail(billing)["status"] == "Partially delivered"

    first = bill(billing, InvoiceRequest((LineRequest("1", Decimal("6")),)))
    assert (first.doc_number, first.status) == ("INV-PO-1-1", "Partially invoiced")
    assert quantities(billing) == {"1": ("6", "0"), "2": ("0", "0")}
    document = sent(billing, first.outbox_id)
    assert (document.kind.value, document.type_code, document.order_refs) == (
        "Invoice",
        "380",
        ["PO-1"],
    )
    assert [(ln.order_line_ref, ln.quantity and ln.quantity.value) for ln in document.lines] == [
        ("1", Decimal("6"))
    ]
    # 6 x 2.25 = 13.50, VAT 21 % = 2.84 (2.835 rounded half up)
    assert (document.tax_exclusive_amount, document.tax_amount, document.payable_amount) == (
        Decimal("13.50"),
        Decimal("2.84"),
        Decimal("16.34"),
    )

    second = bill(billing)  # the rest of what was despatched: line 1: 4, line 2: 4
    assert (second.doc_number, second.status) == ("INV-PO-1-2", "Partially invoiced")
    assert quantities(billing) == {"1": ("10", "0"), "2": ("4", "0")}

    receive(billing, f.despatch_advice("D-2", "PO-1", [("2", "6")]))
    third = bill(billing)
    assert third.status == "Fully invoiced"
    assert quantities(billing) == {"1": ("10", "0"), "2": ("10", "0")}

    credit = bill(
        billing,
        InvoiceRequest((LineRequest("1", Decimal("2")),), credit_of="INV-PO-1-1", reason="Defekt"),
    )
    # a credit settles what it credits: it does not reopen billing (ADR 0024)
    assert (credit.doc_number, credit.status) == ("CN-PO-1-1", "Fully invoiced")
    assert quantities(billing) == {"1": ("10", "2"), "2": ("10", "0")}
    note = sent(billing, credit.outbox_id)
    assert (note.kind.value, note.type_code, note.billing_refs) == (
        "CreditNote",
        "381",
        ["INV-PO-1-1"],
    )

    debit = bill(
        billing,
        InvoiceRequest(
            (LineRequest("2", Decimal("4"), price=Decimal("0.50")),),
            debit_of="INV-PO-1-2",
            reason="Price correction",
        ),
    )
    assert (debit.doc_number, debit.status) == ("DN-PO-1-1", "Fully invoiced")
    assert quantities(billing) == {"1": ("10", "2"), "2": ("10", "0")}  # amounts, not goods
    corrective = sent(billing, debit.outbox_id)
    assert (corrective.kind.value, corrective.type_code) == ("Invoice", "383")
    assert corrective.billing_refs == ["INV-PO-1-2"]
    assert corrective.payable_amount == Decimal("2.42")  # 2.00 + 21 % VAT

    with pytest.raises(NotAllowed, match="nothing to bill"):
        bill(billing)  # credited units are never billed again by default
    with pytest.raises(NotAllowed, match=r"1: 3 asked, 0 was despatched") as refused:
        bill(billing, InvoiceRequest((LineRequest("1", Decimal(3)),)))
    assert refused.value.code is ErrorCode.QUANTITY_EXCEEDED
    with pytest.raises(NotAllowed, match=r"1: 3 asked, 2 was despatched.*or credited"):
        bill(billing, InvoiceRequest((LineRequest("1", Decimal(3)),), rebill_credited=True))
    again = bill(billing, InvoiceRequest(rebill_credited=True))  # the operator says so
    assert again.status == "Fully invoiced"
    assert quantities(billing)["1"] == ("12", "2")
    history = detail(billing)["history"]
    assert any(h["event"] == "document.issued" and h["actor"] == "ops" for h in history)
    [rebilled] = [h for h in history if h["event"] == "invoice.rebill_credited"]
    assert (
        rebilled["detail"] == "INV-PO-1-4 bills credited quantities again: line 1: 2 (credited 2)"
    )
    assert rebilled["actor"] == "ops"
    with pytest.raises(NotAllowed, match="nothing to bill"):
        bill(billing, InvoiceRequest(rebill_credited=True))  # rebilled once, not twice
    with pytest.raises(NotAllowed, match="not a credit or debit note"):
        bill(billing, InvoiceRequest(credit_of="INV-PO-1-1", rebill_credited=True))
    assert detail(billing)["attention"] is False


def test_whole_invoice_credit_and_over_credit(billing: Gateway) -> None:
    receive(billing, f.despatch_advice("D-1", "PO-1", [("1", "10"), ("2", "10")]))
    bill(billing)
    with pytest.raises(NotAllowed, match=r"more than invoice INV-PO-1-1 billed.*--force"):
        bill(billing, InvoiceRequest((LineRequest("1", Decimal(11)),), credit_of="INV-PO-1-1"))
    whole = bill(billing, InvoiceRequest(credit_of="INV-PO-1-1"))
    assert whole.status == "Fully invoiced"  # settled by the credit: nothing is billed again
    assert quantities(billing) == {"1": ("10", "10"), "2": ("10", "10")}
    with pytest.raises(NotAllowed, match="nothing to bill"):
        bill(billing, InvoiceRequest(credit_of="INV-PO-1-1"))


def test_refusals_unless_forced(billing: Gateway) -> None:
    with pytest.raises(NotAllowed, match="nothing to bill"):
        bill(billing)  # nothing despatched yet
    receive(billing, f.despatch_advice("D-1", "PO-1", [("1", "5")]))
    with pytest.raises(NotAllowed, match=r"1: 6 asked, 5 was despatched") as refused:
        bill(billing, InvoiceRequest((LineRequest("1", Decimal(6)),)))
    assert refused.value.code is ErrorCode.QUANTITY_EXCEEDED
    with pytest.raises(NotAllowed, match="no order line 9"):
        bill(billing, InvoiceRequest((LineRequest("9", Decimal(1)),)))
    with pytest.raises(NotAllowed, match="has no invoice INV-X"):
        bill(billing, InvoiceRequest(credit_of="INV-X"))
    with pytest.raises(NotAllowed, match="not both"):
        bill(billing, InvoiceRequest(credit_of="A", debit_of="B"))
    with pytest.raises(NotAllowed, match="more than 0"):
        bill(billing, InvoiceRequest((LineRequest("1", Decimal(0)),)))
    assert detail(billing)["documents"][-1]["type"] == "DespatchAdvice"  # nothing recorded
    forced = bill(billing, InvoiceRequest((LineRequest("1", Decimal(6)),)), force=True)
    assert forced.status == "Partially invoiced"
    history = detail(billing)["history"]
    assert any(h["event"] == "invoice.forced" and "6 asked" in h["detail"] for h in history)
    first = bill(billing, InvoiceRequest((LineRequest("2", Decimal(1)),)), force=True)
    with pytest.raises(NotAllowed, match="not on the invoice"):
        bill(billing, InvoiceRequest((LineRequest("1", Decimal(1)),), credit_of=first.doc_number))


def test_supplier_without_legal_profile_is_refused(store: Store, tmp_path: Path) -> None:
    gateway = Gateway(billing_settings(tmp_path), store)
    receive(gateway, f.order("PO-1", f.items(1)))
    receive(gateway, f.despatch_advice("D-1", "PO-1", [("1", "10")]))
    with pytest.raises(NotAllowed, match=r"no legal profile: set partners\[\]\.legal"):
        bill(gateway)


def test_invalid_document_is_an_internal_error_and_nothing_is_queued(
    store: Store, tmp_path: Path
) -> None:
    gateway = Gateway(billing_settings(tmp_path, seller_legal=SELLER_LEGAL), store)
    receive(gateway, f.order("PO-1", f.items(1)))
    receive(gateway, f.despatch_advice("D-1", "PO-1", [("1", "10")]))
    no_reason = AllowanceCharge(charge=True, amount=Decimal(5), vat_rate=Decimal(21))
    with pytest.raises(GatewayError, match="nothing was sent") as failed:
        bill(gateway, InvoiceRequest(allowances_charges=(no_reason,)))
    assert failed.value.code is ErrorCode.INTERNAL_ERROR
    with gateway.store.session() as session:
        assert session.scalars(select(OutboxRow)).all() == []
    assert detail(gateway)["status"] == "Fully delivered"


def test_debit_note_as_ubl_debit_note_for_partners_asking(store: Store, tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()
    settings = billing_settings(tmp_path, debit_note_as="debitnote", seller_legal=SELLER_LEGAL)
    gateway = Gateway(settings, store)
    receive(gateway, f.order("PO-1", f.items(1)))
    receive(gateway, f.despatch_advice("D-1", "PO-1", [("1", "10")]))
    bill(gateway)
    debit = bill(gateway, InvoiceRequest(debit_of="INV-PO-1-1", reason="Fracht nachträglich"))
    document = sent(gateway, debit.outbox_id)
    assert (document.kind.value, document.billing_refs) == ("DebitNote", ["INV-PO-1-1"])
    assert "Fracht nachträglich".encode() in payload_of(gateway, debit.outbox_id)
    assert quantities(gateway) == {"1": ("10", "0")}


def test_every_billing_document_passes_the_official_checks(
    billing: Gateway, tmp_path: Path
) -> None:
    check = shared_dir() / "tools" / "ubl-check"
    receive(billing, f.despatch_advice("D-1", "PO-1", [("1", "10"), ("2", "10")]))
    freight = AllowanceCharge(True, Decimal("12.50"), "Frakt", "FC", "S", Decimal(21))
    bonus = AllowanceCharge(False, Decimal("3"), "Bonus", "95", "S", Decimal(21))
    bill(billing, InvoiceRequest((LineRequest("1", Decimal(3)),), allowances_charges=(freight,)))
    bill(billing, InvoiceRequest(allowances_charges=(bonus,), reason="Rest – 残り"))
    bill(billing, InvoiceRequest(credit_of="INV-PO-1-1", reason="Retour"))
    bill(billing, InvoiceRequest((LineRequest("2", Decimal(1)),), credit_of="INV-PO-1-2"))
    bill(billing, InvoiceRequest(debit_of="INV-PO-1-2", reason="Prisjustering"))
    outbox.flush(billing.store, billing.settings)
    files = sorted(
        p for p in (tmp_path / "out").iterdir() if p.name.startswith(("Invoice", "CreditNote"))
    )
    assert len(files) == 5
    assert "Köpare AB – 東京支店" in files[0].read_text(encoding="utf-8")
    done = subprocess.run(
        [sys.executable, str(check), *map(str, files)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_vat_of_the_order_line_wins_over_the_supplier_default(billing: Gateway) -> None:
    receive(billing, f.order("PO-9", f.items(1), detailed=True))  # lines say S 25 %
    receive(billing, f.despatch_advice("D-9", "PO-9", [("1", "10")]))
    issued = invoice(billing.store, billing.settings, "PO-9", InvoiceRequest(), actor="ops")
    document = sent(billing, issued.outbox_id)
    assert (document.tax_exclusive_amount, document.tax_amount) == (
        Decimal("22.50"),
        Decimal("5.63"),
    )
    assert b"<cbc:Percent>25</cbc:Percent>" in payload_of(billing, issued.outbox_id)


# Two operators (or gateways) issuing on the same order at the same moment: on PostgreSQL their
# transactions overlap, so each must see what the other issued before it checks the ledger and
# numbers its document (SQLite has one writer and serialises them anyway; docs/adr/0018).


def _at_once(times: int, issue: Callable[[], Any]) -> Counter[str]:
    start = threading.Barrier(times)

    def one(_: int) -> str:
        start.wait()
        try:
            issue()
        except GatewayError as exc:
            return exc.code.value
        return "issued"

    with ThreadPoolExecutor(times) as pool:
        return Counter(pool.map(one, range(times)))


def _out(gateway: Gateway, kind: str) -> list[str]:
    documents = detail(gateway, "PO-1")["documents"]
    return [d["number"] for d in documents if d["direction"] == "out" and d["type"] == kind]


def test_the_same_order_despatched_and_invoiced_at_once_goes_once(billing: Gateway) -> None:
    settings, store = billing.settings, billing.store
    everything = DespatchRequest()
    despatched = _at_once(3, lambda: despatch(store, settings, "PO-1", everything, actor="a"))
    assert despatched["issued"] == 1 and sum(despatched.values()) == 3, despatched
    assert _out(billing, "DespatchAdvice") == ["PO-1-DA1"]
    invoiced = _at_once(3, lambda: invoice(store, settings, "PO-1", InvoiceRequest(), actor="b"))
    assert invoiced["issued"] == 1 and sum(invoiced.values()) == 3, invoiced
    assert len(_out(billing, "Invoice")) == 1
    lines = detail(billing, "PO-1")["lines"]
    assert [(ln["despatched"], ln["invoiced"]) for ln in lines] == [("10", "10")] * 2


INVOICEE = "7300010000025"
INVOICEE_LEGAL = {
    "registration_name": "Köpare Ekonomi AB",
    "vat_id": "SE556677880001",
    "country": "SE",
}


def payables_partner(**extra: Any) -> dict[str, Any]:
    """The gateway.yaml entry of invoicee ``INVOICEE`` (a buyer's accounts payable)."""
    endpoint = {"scheme": "0088", "value": INVOICEE}
    return {
        "id": "payables",
        "name": "Köpare Ekonomi AB",
        "role": "buyer",
        "endpoint": endpoint,
        "legal": INVOICEE_LEGAL,
        **extra,
    }


def test_an_order_naming_an_invoicee_is_invoiced_to_it(store: Store, tmp_path: Path) -> None:
    """The Order's AccountingCustomerParty is the party the buyer asks to be invoiced, and an
    invoice's Buyer (BG-7) is its AccountingCustomerParty: the invoice named the order's buyer.
    The invoicee's own partner entry gives its legal data; the buyer's connector carries it."""
    (tmp_path / "out").mkdir()
    payables = payables_partner()
    settings = billing_settings(tmp_path, seller_legal=SELLER_LEGAL, more=(payables,))
    gateway = Gateway(settings, store)
    receive(gateway, f.order("PO-1", f.items(2), invoicee=INVOICEE))
    receive(gateway, f.despatch_advice("D-1", "PO-1", [("1", "10"), ("2", "10")]))
    issued = bill(gateway)
    document = sent(gateway, issued.outbox_id)
    assert document.buyer is not None and document.buyer.endpoint is not None
    assert (document.buyer.endpoint.value, document.buyer.name) == (INVOICEE, "Köpare Ekonomi AB")
    outbox.flush(gateway.store, gateway.settings)
    [written] = [p for p in (tmp_path / "out").iterdir() if p.name.startswith("Invoice")]
    check = shared_dir() / "tools" / "ubl-check"
    done = subprocess.run(
        [sys.executable, str(check), str(written)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("named_by", ["order", "partner"])
def test_an_invoicee_with_a_connector_of_its_own_is_sent_the_bills(
    store: Store, tmp_path: Path, named_by: str
) -> None:
    """A bill is delivered to its Buyer's electronic address (EN 16931 BT-49), and its Buyer
    is the invoicee the Order names. An invoicee that is a partner with an outbound connector
    of its own (a central accounts-payable department) is sent the invoice and the credit
    note through it; before, they went through the buyer's connector to the buyer. The same
    when the order names none and the buyer partner does (``invoicee: payables``)."""
    for folder in ("out", "ap"):
        (tmp_path / folder).mkdir()
    payables = payables_partner(outbound="to-payables")
    to_payables = {"name": "to-payables", "type": "folder", "direction": "out", "path": "ap"}
    settings = billing_settings(
        tmp_path,
        seller_legal=SELLER_LEGAL,
        more=(payables,),
        connectors=(to_payables,),
        buyer={"invoicee": "payables"} if named_by == "partner" else None,
    )
    gateway = Gateway(settings, store)
    named = INVOICEE if named_by == "order" else None
    receive(gateway, f.order("PO-1", f.items(2), invoicee=named))
    receive(gateway, f.despatch_advice("D-1", "PO-1", [("1", "10"), ("2", "10")]))
    issued = bill(gateway)
    billed = sent(gateway, issued.outbox_id).buyer
    assert billed is not None and billed.endpoint is not None
    assert (billed.endpoint.value, billed.name) == (INVOICEE, "Köpare Ekonomi AB")
    credit = InvoiceRequest((LineRequest("1", Decimal("2")),), credit_of=issued.doc_number)
    credited = bill(gateway, credit)
    with gateway.store.session() as session:
        rows = session.scalars(select(OutboxRow).where(OutboxRow.document_id.is_not(None)))
        sent_to = {(row.doc_number, row.partner, row.connector) for row in rows}
    assert {
        (issued.doc_number, "payables", "to-payables"),
        (credited.doc_number, "payables", "to-payables"),
    } <= sent_to
    outbox.flush(gateway.store, gateway.settings)
    names = sorted(p.name for p in (tmp_path / "ap").iterdir())
    assert names == [f"CreditNote-{credited.doc_number}.xml", f"Invoice-{issued.doc_number}.xml"]
    assert not [p for p in (tmp_path / "out").iterdir() if p.name.startswith(("Invoice", "Credit"))]
