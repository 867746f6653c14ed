"""Faithful relays (issue 10 point 1, docs/adr/0026-faithful-relays.md).

A supplier's UBL document reaches the buyer's outbound folder as the very bytes the supplier
sent, after the official rules of its type; one that breaks a fatal rule is not relayed and the
history says why. The official Billing, Order Response and Despatch Advice examples of the
corpus are relayed and compared byte for byte.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from lxml import etree

from edi_gateway.app import Gateway
from edi_gateway.config import Partner, Settings
from edi_gateway.config.base import PeppolId
from edi_gateway.domain.documents import Party
from edi_gateway.outbound.outbox import flush
from edi_gateway.rules.install import install
from edi_gateway.store.db import Store
from edi_gateway.store.queries import order_detail, resolve_order
from edi_gateway.store.tables import HistoryEvent
from edi_gateway.ubl.read import interpret
from tests import factory as f
from tests.conftest import shared_dir
from tests.unit.support import receive
from tests.unit.test_invoice import INVOICEE, payables_partner

CORPUS = shared_dir() / "corpus"
EXAMPLES = CORPUS / "peppol-validation-artefacts" / "2026.5" / "examples"
BILLING = sorted((EXAMPLES / "billing").glob("*.xml"))
XRECHNUNG = sorted(
    p
    for p in (CORPUS / "xrechnung-testsuite" / "src" / "test" / "business-cases").rglob("*.xml")
    if p.name.endswith("_ubl.xml")
)


@pytest.fixture(scope="module")
def rules_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = tmp_path_factory.mktemp("rules")
    install(CORPUS / "peppol-validation-artefacts" / "2026.5", target)
    return target


def relay_gateway(
    store: Store,
    tmp_path: Path,
    rules: Path | None,
    seller: Party | None,
    buyer: Party | None,
    seller_extra: dict[str, Any] | None = None,
    more: tuple[dict[str, Any], ...] = (),
    connectors: tuple[dict[str, Any], ...] = (),
    **buyer_extra: Any,
) -> Gateway:
    """A gateway where ``seller`` is a supplier with ``relay_replies`` and ``buyer`` a buyer
    reached through the folder ``tmp_path/out``; the rules installed in ``rules``.

    The partners are known by the parties' endpoints as the documents carry them: some
    official examples use ``9482348239847239874``, which is no GLN and which gateway.yaml
    would refuse, so the endpoints are set past its validation (the bytes stay the examples')."""
    (tmp_path / "out").mkdir(exist_ok=True)
    settings = Settings.model_validate(
        {
            "path": tmp_path / "gateway.yaml",
            "rules": {"dir": str(rules or tmp_path / "no-rules")},
            "partners": [
                f.buyer_partner(outbound="to-buyer", **buyer_extra),
                f.seller_partner(relay_replies=True, **(seller_extra or {})),
                *more,
            ],
            "connectors": [
                {"name": "to-buyer", "type": "folder", "direction": "out", "path": "out"},
                *connectors,
            ],
        },
        context={"base_dir": tmp_path},
    )
    buyer_partner, seller_partner, *others = settings.partners
    partners = [_known_as(buyer_partner, buyer), _known_as(seller_partner, seller), *others]
    return Gateway(settings.model_copy(update={"partners": partners}), store)


def _known_as(partner: Partner, party: Party | None) -> Partner:
    assert party is not None and party.endpoint is not None and party.endpoint.scheme
    endpoint = PeppolId.model_construct(scheme=party.endpoint.scheme, value=party.endpoint.value)
    return partner.model_copy(update={"endpoint": endpoint})


def parties(payload: bytes) -> tuple[Party | None, Party | None]:
    document = interpret(etree.fromstring(payload))
    return document.seller, document.buyer


def relayed(gateway: Gateway, tmp_path: Path) -> list[bytes]:
    """What reaches the buyer's outbound folder once the outbox is flushed."""
    flush(gateway.store, gateway.settings)
    return [p.read_bytes() for p in sorted((tmp_path / "out").iterdir())]


def events(gateway: Gateway, name: str) -> list[str]:
    from sqlalchemy import select

    with gateway.store.session() as session:
        return list(
            session.scalars(
                select(HistoryEvent.detail)
                .where(HistoryEvent.event == name)
                .order_by(HistoryEvent.id)
            )
        )


# --- official examples, byte for byte ---------------------------------------------------------


@pytest.mark.parametrize("path", BILLING + XRECHNUNG, ids=lambda p: p.name)
def test_official_billing_examples_reach_the_buyer_byte_identical(
    store: Store, tmp_path: Path, rules_dir: Path, path: Path
) -> None:
    """No order matches these (most name only a buyer reference): each goes, as it came, to
    the partner it names as the buyer, after the official rules of its CustomizationID."""
    payload = path.read_bytes()
    gateway = relay_gateway(store, tmp_path, rules_dir, *parties(payload))
    receive(gateway, payload)
    assert events(gateway, "relay.refused") == []
    assert relayed(gateway, tmp_path) == [payload]


@pytest.mark.parametrize(
    ("name", "order_id", "buyer_gln", "seller_gln"),
    [
        ("OrderResponse_Example.xml", "11233", "7590000012347", "7598000000128"),
        ("DespatchAdvice_Example.xml", "AEG012345", "5790000435951", "7300010000001"),
    ],
)
def test_an_order_response_and_a_despatch_advice_on_an_order_are_relayed_byte_identical(
    store: Store,
    tmp_path: Path,
    rules_dir: Path,
    name: str,
    order_id: str,
    buyer_gln: str,
    seller_gln: str,
) -> None:
    payload = (EXAMPLES / name).read_bytes()
    order = f.order(order_id, f.items(3), buyer=buyer_gln, seller=seller_gln)
    order_seller, order_buyer = parties(order)
    gateway = relay_gateway(store, tmp_path, rules_dir, order_seller, order_buyer)
    receive(gateway, order)
    receive(gateway, payload)
    with gateway.store.session() as session:
        detail = order_detail(session, resolve_order(session, order_id))
    documents = [(d["direction"], d["type"]) for d in detail["documents"]]
    kind = name.split("_", maxsplit=1)[0]
    assert ("in", kind) in documents and ("out", kind) in documents  # the relayed copy listed
    assert relayed(gateway, tmp_path) == [payload]


# --- what must not be relayed -----------------------------------------------------------------


def _billing(name: str = "base-example.xml") -> bytes:
    return (EXAMPLES / "billing" / name).read_bytes()


def test_an_invoice_breaking_br_co_15_is_not_relayed_and_the_history_says_why(
    store: Store, tmp_path: Path, rules_dir: Path
) -> None:
    """Issue 10: 99999.00 payable was accepted and relayed as 25498.75 under the same number."""
    good = _billing()
    bad = re.sub(
        rb"(<cbc:(?:TaxInclusiveAmount|PayableAmount) currencyID=\"EUR\">)[^<]*",
        rb"\g<1>99999.00",
        good,
    )
    assert bad != good
    gateway = relay_gateway(store, tmp_path, rules_dir, *parties(bad))
    receive(gateway, bad)
    [refused] = events(gateway, "relay.refused")
    assert refused.startswith("Invoice Snippet1 from seller not relayed: RULES_FAILED: ")
    assert "BR-CO-15" in refused
    assert relayed(gateway, tmp_path) == []
    receive(gateway, good.replace(b"Snippet1", b"Snippet2"))  # a corrected one goes through
    [sent] = relayed(gateway, tmp_path)
    assert b"<cbc:ID>Snippet2</cbc:ID>" in sent and b"99999.00" not in sent


def test_bankgiro_payment_reference_and_note_survive(
    store: Store, tmp_path: Path, rules_dir: Path
) -> None:
    """Issue 10: the supplier's Bankgiro account and payment reference were replaced by the
    IBAN of gateway.yaml and the invoice number, and the note dropped."""
    payload = _billing().replace(
        b"<cbc:PaymentID>Snippet1</cbc:PaymentID>", b"<cbc:PaymentID>4711 0815 42</cbc:PaymentID>"
    )
    payload = payload.replace(b"<cbc:ID>IBAN32423940</cbc:ID>", b"<cbc:ID>5555-1234</cbc:ID>")
    payload = re.sub(
        rb"<cac:FinancialInstitutionBranch>\s*<cbc:ID>[^<]*</cbc:ID>",
        b"<cac:FinancialInstitutionBranch><cbc:ID>SE:BANKGIRO</cbc:ID>",
        payload,
    )
    note = "<cbc:Note>Leverans 2 av 2. Betala endast till bankgiro 5555-1234.</cbc:Note>"
    payload = payload.replace(
        b"<cbc:InvoiceTypeCode>380</cbc:InvoiceTypeCode>",
        b"<cbc:InvoiceTypeCode>380</cbc:InvoiceTypeCode>" + note.encode(),
    )
    assert payload.count(b"SE:BANKGIRO") == 1 and payload.count(note.encode()) == 1
    gateway = relay_gateway(store, tmp_path, rules_dir, *parties(payload))
    receive(gateway, payload)
    [sent] = relayed(gateway, tmp_path)
    assert sent == payload
    for kept in (b"<cbc:PaymentID>4711 0815 42</cbc:PaymentID>", b"5555-1234", note.encode()):
        assert kept in sent


def test_without_an_installed_release_the_relay_is_xsd_checked_only(
    store: Store, tmp_path: Path
) -> None:
    """As every outgoing document (ADR 0023): no release, no rules check; the bytes still go
    unchanged."""
    payload = _billing()
    gateway = relay_gateway(store, tmp_path, None, *parties(payload))
    receive(gateway, payload)
    assert relayed(gateway, tmp_path) == [payload]


def test_a_signed_supplier_invoice_is_relayed_with_its_signature_unchanged(
    store: Store, tmp_path: Path, rules_dir: Path
) -> None:
    """Verified at intake with the supplier's certificate; the rules judge what it signs; the
    buyer gets the signed bytes as they came (the supplier's signature still verifies)."""
    from edi_gateway.ubl.signature import Verdict, load_signing_key, sign_ubl, verify_ubl
    from tests.keys import identity, write_identity

    keys = identity("supplier")
    key, certificate = write_identity(keys, tmp_path / "keys", "supplier")
    payload = sign_ubl(_billing(), load_signing_key(key.read_bytes(), certificate.read_bytes()))
    verify = {"signature": {"verify": "required", "partner_certificate": str(certificate)}}
    gateway = relay_gateway(store, tmp_path, rules_dir, *parties(payload), seller_extra=verify)
    mid = receive(gateway, payload)
    from edi_gateway.store.queries import message_detail

    with gateway.store.session() as session:
        shown = message_detail(session, mid)
    assert (shown["state"], shown["error_code"]) == ("orphan", None), shown
    assert events(gateway, "relay.refused") == []
    [sent] = relayed(gateway, tmp_path)
    assert sent == payload
    assert verify_ubl(sent, keys.certificate, required=True) is Verdict.VERIFIED


def test_a_buyer_we_sign_for_gets_no_relay_and_the_history_says_why(
    store: Store, tmp_path: Path, rules_dir: Path
) -> None:
    """Signing would change the supplier's bytes: the relay is refused, not re-signed."""
    from tests.keys import identity, write_identity

    key, certificate = write_identity(identity("gateway"), tmp_path / "keys", "gateway")
    payload = _billing()
    sign = {"sign": True, "key": str(key), "certificate": str(certificate)}
    gateway = relay_gateway(store, tmp_path, rules_dir, *parties(payload), signature=sign)
    receive(gateway, payload)
    [refused] = events(gateway, "relay.refused")
    assert refused == (
        "Invoice Snippet1 from seller not relayed: NOT_ALLOWED: partner 'buyer' has "
        "signature.sign: a relayed document goes out as the supplier made it and is never "
        "re-signed by this gateway"
    )
    assert relayed(gateway, tmp_path) == []


def test_a_supplier_document_on_another_suppliers_order_is_not_relayed(
    store: Store, tmp_path: Path, rules_dir: Path
) -> None:
    """Correlation may match an order by its buyer and number alone: a relay is only for the
    order's own supplier."""
    other = {
        "id": "other",
        "name": "Other AB",
        "role": "supplier",
        "endpoint": {"scheme": "0088", "value": "7310000000010"},
    }
    response = (EXAMPLES / "OrderResponse_Example.xml").read_bytes()
    response = response.replace(b"<cbc:ID>11233</cbc:ID>", b"<cbc:ID>PO-77</cbc:ID>")
    seller, buyer = parties(response)
    assert buyer is not None and buyer.endpoint is not None
    gateway = relay_gateway(store, tmp_path, rules_dir, seller, buyer, more=(other,))
    receive(gateway, f.order("PO-77", buyer=buyer.endpoint.value, seller="7310000000010"))
    receive(gateway, response)
    [refused] = events(gateway, "relay.refused")
    assert refused == (
        "OrderResponse 101 from seller not relayed: NOT_ALLOWED: order PO-77 is with supplier "
        "other, not seller: the OrderResponse is not relayed on another supplier's order"
    )
    assert relayed(gateway, tmp_path) == []


def test_a_document_no_order_matches_naming_no_partner_is_not_relayed(
    store: Store, tmp_path: Path, rules_dir: Path
) -> None:
    payload = _billing("vat-category-E.xml")
    seller, _ = parties(payload)
    gateway = relay_gateway(store, tmp_path, rules_dir, seller, parties(f.order("X"))[1])
    mid = receive(gateway, payload)
    [refused] = events(gateway, "relay.refused")
    assert "not relayed: UNKNOWN_PARTNER: it matches no order and names 0184:DK12345678" in refused
    assert "then redrive the message" in refused
    assert relayed(gateway, tmp_path) == []
    from edi_gateway.store.queries import message_detail

    with gateway.store.session() as session:
        shown = message_detail(session, mid)
    assert any(e["event"] == "relay.refused" for e in shown["history"])


def test_a_redriven_orphan_is_not_relayed_twice(
    store: Store, tmp_path: Path, rules_dir: Path
) -> None:
    payload = _billing("sales-order-example.xml")
    gateway = relay_gateway(store, tmp_path, rules_dir, *parties(payload))
    mid = receive(gateway, payload)
    gateway.redrive([mid])
    assert relayed(gateway, tmp_path) == [payload]


def test_an_invoice_on_an_order_is_relayed_as_it_came_and_counted_once(
    store: Store, tmp_path: Path
) -> None:
    """Attached to its order: the buyer gets the supplier's bytes (its prices, not the
    order's), the relayed copy is listed with the order, the ledger counts the invoice once."""
    order = f.order("PO-5", f.items(2))
    invoice = f.invoice("F-5", "PO-5", [("1", "4", "99.99"), ("2", "10", "0.50")])
    seller, buyer = parties(order)
    gateway = relay_gateway(store, tmp_path, None, seller, buyer)
    receive(gateway, order)
    receive(gateway, invoice)
    with gateway.store.session() as session:
        detail = order_detail(session, resolve_order(session, "PO-5"))
    copies = [d for d in detail["documents"] if d["direction"] == "out"]
    assert [(d["type"], d["document_id"], d["state"]) for d in copies] == [
        ("Invoice", "F-5", "relayed")
    ]
    assert {line["line_id"]: line["invoiced"] for line in detail["lines"]} == {"1": "4", "2": "10"}
    assert relayed(gateway, tmp_path) == [invoice]


def test_an_invoice_to_an_invoicee_with_a_connector_of_its_own_is_relayed_to_it(
    store: Store, tmp_path: Path
) -> None:
    """A supplier's invoice to the invoicee its order names (a partner with an outbound
    connector of its own) is relayed there, as it came: a bill is delivered to its Buyer's
    electronic address (EN 16931 BT-49). The buyer gets nothing of it."""
    order = f.order("PO-6", f.items(1), invoicee=INVOICEE)
    invoice = f.invoice("F-6", "PO-6", [("1", "10", "1.25")], buyer=INVOICEE)
    seller, buyer = parties(order)
    (tmp_path / "ap").mkdir()
    payables = payables_partner(outbound="to-payables")
    to_payables = {"name": "to-payables", "type": "folder", "direction": "out", "path": "ap"}
    gateway = relay_gateway(
        store, tmp_path, None, seller, buyer, more=(payables,), connectors=(to_payables,)
    )
    receive(gateway, order)
    receive(gateway, invoice)
    assert relayed(gateway, tmp_path) == []
    assert [p.read_bytes() for p in (tmp_path / "ap").iterdir()] == [invoice]
    assert events(gateway, "document.relayed") == [
        "Invoice F-6 from the supplier, to the invoicee payables"
    ]


def test_an_invoice_naming_another_supplier_as_its_buyer_is_never_relayed_to_it(
    store: Store, tmp_path: Path
) -> None:
    """A supplier's invoice on an order (found through the seller: its Buyer buys nothing
    here) naming another supplier partner as its Buyer goes to the order's buyer, as before
    bills followed their invoicee: one supplier's invoice is never sent to another."""
    other = "7310000000027"
    order = f.order("PO-7", f.items(1))
    invoice = f.invoice("F-7", "PO-7", [("1", "10", "1.25")], buyer=other)
    seller, buyer = parties(order)
    (tmp_path / "other").mkdir()
    supplier = {
        "id": "other",
        "name": "Other Supplier",
        "role": "supplier",
        "endpoint": {"scheme": "0088", "value": other},
        "outbound": "to-other",
    }
    to_other = {"name": "to-other", "type": "folder", "direction": "out", "path": "other"}
    gateway = relay_gateway(
        store, tmp_path, None, seller, buyer, more=(supplier,), connectors=(to_other,)
    )
    receive(gateway, order)
    receive(gateway, invoice)
    assert relayed(gateway, tmp_path) == [invoice]
    assert list((tmp_path / "other").iterdir()) == []


def test_a_release_that_does_not_verify_leaves_the_relay_to_the_outbox_check(
    store: Store, tmp_path: Path, rules_dir: Path
) -> None:
    """An operator's problem, not the supplier's: the relay is queued and the outbox, which
    checks before each attempt, holds it (a failed attempt, retried) until a release verifies."""
    import shutil

    from sqlalchemy import select

    from edi_gateway.store.tables import OutboxRow

    broken = tmp_path / "rules"
    shutil.copytree(rules_dir, broken)
    compiled = broken / "2026.5" / "compiled" / "CEN-EN16931-UBL.xslt"
    compiled.write_text(compiled.read_text().replace("not((", "((", 1))
    payload = _billing()
    gateway = relay_gateway(store, tmp_path, broken, *parties(payload))
    receive(gateway, payload)
    assert events(gateway, "relay.refused") == []
    assert relayed(gateway, tmp_path) == []
    with gateway.store.session() as session:
        [row] = session.scalars(select(OutboxRow))
        assert row.payload == payload and row.state == "pending" and row.attempts == 1
        assert row.last_error is not None and row.last_error.startswith("RULES_UNAVAILABLE")


def test_a_document_no_order_matches_is_never_relayed_to_a_supplier(
    store: Store, tmp_path: Path, rules_dir: Path
) -> None:
    payload = _billing("vat-category-E.xml")
    seller, buyer = parties(payload)
    assert buyer is not None and buyer.endpoint is not None
    supplier = {
        "id": "also-supplier",
        "name": "Also a supplier",
        "role": "supplier",
        "outbound": "to-buyer",
        "endpoint": {"scheme": buyer.endpoint.scheme, "value": buyer.endpoint.value},
    }
    gateway = relay_gateway(
        store, tmp_path, rules_dir, seller, parties(f.order("X"))[1], more=(supplier,)
    )
    receive(gateway, payload)
    [refused] = events(gateway, "relay.refused")
    assert "UNKNOWN_PARTNER: it matches no order and names 0184:DK12345678, which is no buyer" in (
        refused
    )
    assert relayed(gateway, tmp_path) == []


def test_an_invoice_the_rules_refuse_fails_and_frees_its_number(
    store: Store, tmp_path: Path, rules_dir: Path
) -> None:
    """Review of issue 10: a relay refused for RULES_FAILED was still taken (attached, counted
    in the ledger though the buyer never got it), and the supplier's corrected invoice under
    the same number was refused as DUPLICATE_ID_CONFLICT. Now the message fails with the
    rules' findings, the document leaves the ledger (``refused``), the number is free."""
    from edi_gateway.store.queries import message_detail

    good = _billing()
    bad = re.sub(rb"(<cbc:PayableAmount currencyID=\"EUR\">)[^<]*", rb"\g<1>99999.00", good)
    assert bad != good
    gateway = relay_gateway(store, tmp_path, rules_dir, *parties(bad))
    refused = receive(gateway, bad)
    with gateway.store.session() as session:
        message = message_detail(session, refused)
    assert (message["state"], message["error_code"]) == ("failed", "RULES_FAILED")
    assert "BR-CO-16" in {finding["rule_id"] for finding in message["findings"]}  # payable
    assert relayed(gateway, tmp_path) == []

    accepted = receive(gateway, good)  # corrected, under the same number Snippet1
    with gateway.store.session() as session:
        again = message_detail(session, accepted)
    assert again["state"] != "failed", (again["error_code"], again["error_detail"])
    assert relayed(gateway, tmp_path) == [good]


def test_a_response_to_a_cancelled_order_is_relayed_as_it_came(
    store: Store, tmp_path: Path
) -> None:
    """It stays outside the order's quantities (state late), but the buyer still gets what
    the supplier said: here that it delivers part of what the buyer cancelled."""
    order = f.order("PO-1", f.items(2))
    order_seller, order_buyer = parties(order)
    gateway = relay_gateway(store, tmp_path, None, order_seller, order_buyer)
    receive(gateway, order)
    receive(gateway, f.order_cancellation("C-1", "PO-1"))
    response = f.order_response("R-9", "PO-1", "CA", [("1", "5", "10"), ("2", "7", "0")])
    receive(gateway, response)
    with gateway.store.session() as session:
        detail = order_detail(session, resolve_order(session, "PO-1"))
    assert detail["status"] == "Cancelled" and detail["attention"] is True
    assert response in relayed(gateway, tmp_path)
