"""Intake -> process -> correlate over a real SQLite store, document by document."""

from __future__ import annotations

import functools
import hashlib
import itertools
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import func, select

from edi_gateway.app import Gateway
from edi_gateway.config import Settings
from edi_gateway.envelope import Envelope, file_envelope
from edi_gateway.errors import LookupFailed
from edi_gateway.pipeline.intake import intake
from edi_gateway.pipeline.process import Policy, process_messages
from edi_gateway.store.db import Store
from edi_gateway.store.queries import order_detail, resolve_order
from edi_gateway.store.tables import DocumentRow, HistoryEvent, Message, Order, OrderKey
from tests import factory as f

_refs = itertools.count()


def settings(partners: list[dict[str, object]] = (), unknown_partner: str = "reject") -> Settings:  # type: ignore[assignment]
    """Real validated settings, as load_config would build them."""
    return Settings.model_validate(
        {
            "path": Path("gateway.yaml"),
            "partners": list(partners),
            "intake": {"unknown_partner": unknown_partner, "batch_size": 10},
        }
    )


def send(store: Store, policy: Policy, payload: bytes, name: str = "doc.xml") -> tuple[int, str]:
    env = Envelope(payload=payload, source="test", source_ref=f"ref-{next(_refs)}", filename=name)
    [message_id] = intake(store, [env])
    return message_id, process_messages(store, policy, [message_id])[message_id]


def status(store: Store, ref: str = "PO-1") -> str:
    with store.session() as session:
        return resolve_order(session, ref).status


def lines(store: Store, ref: str = "PO-1") -> dict[str, dict[str, str | None]]:
    with store.session() as session:
        detail = order_detail(session, resolve_order(session, ref))
    return {line["line_id"]: line for line in detail["lines"]}


def test_order_is_stored_with_lines_and_history(store: Store, policy: Policy) -> None:
    mid, state = send(store, policy, f.order("PO-1", f.items(3)))
    assert state == "processed"
    assert status(store) == "Received"
    got = lines(store)
    assert sorted(got) == ["1", "2", "3"]
    assert got["2"]["ordered"] == "10" and got["2"]["price"] == "3.25"
    assert got["1"]["unit"] == "C62" and got["1"]["seller_item_id"] == "SKU-00001"
    with store.session() as session:
        order = resolve_order(session, f"0088:{f.BUYER_GLN}:PO-1")
        assert order.total_amount == Decimal("97.50")
        events = session.scalars(select(HistoryEvent.event).where(HistoryEvent.message_id == mid))
        assert list(events) == ["message.received", "order.received", "message.processed"]


def test_the_whole_chain_moves_the_status(store: Store, policy: Policy) -> None:
    send(store, policy, f.order("PO-1", f.items(3)))
    steps = [
        (f.order_response("R-1", "PO-1", "AB"), "Acknowledged"),
        (
            f.order_response(
                "R-2", "PO-1", "CA", [("1", "5", "10"), ("2", "3", "6"), ("3", "7", "0")]
            ),
            "Accepted with changes",
        ),
        (f.despatch_advice("D-1", "PO-1", [("1", "4"), ("2", "6")]), "Partially delivered"),
        (f.despatch_advice("D-2", "PO-1", [("1", "6")]), "Fully delivered"),
        (f.invoice("INV-1", "PO-1", [("1", "10", "2.25")]), "Partially invoiced"),
        (f.invoice("INV-2", "PO-1", [("2", "6", "3.25")]), "Fully invoiced"),
        (
            f.invoice(
                "CN-1",
                "PO-1",
                [("2", "1", "3.25")],
                root="CreditNote",
                type_code="381",
                billing_ref="INV-2",
            ),
            "Fully invoiced",  # a credit settles what it credits (ADR 0024)
        ),
    ]
    for payload, expected in steps:
        _, state = send(store, policy, payload)
        assert state == "processed"
        assert status(store) == expected
    got = lines(store)
    assert got["1"]["confirmed"] == "10" and got["1"]["despatched"] == "10"
    assert got["2"]["confirmed"] == "6" and got["2"]["status_code"] == "3"
    assert got["3"]["confirmed"] == "0" and got["3"]["status_code"] == "7"
    assert got["2"]["invoiced"] == "6" and got["2"]["credited"] == "1"
    with store.session() as session:
        detail = order_detail(session, resolve_order(session, "PO-1"))
    assert [d["type"] for d in detail["documents"]] == [
        "Order",
        "OrderResponse",
        "OrderResponse",
        "DespatchAdvice",
        "DespatchAdvice",
        "Invoice",
        "Invoice",
        "CreditNote",
    ]
    changes = [h["detail"] for h in detail["history"] if h["event"] == "order.status"]
    assert changes[0] == "Received -> Acknowledged"
    assert changes[-1] == "Partially invoiced -> Fully invoiced"


def test_rejection_and_cancellation(store: Store, policy: Policy) -> None:
    send(store, policy, f.order("PO-1"))
    send(store, policy, f.order("PO-2"))
    send(store, policy, f.order_response("R-1", "PO-1", "RE"))
    assert status(store, "PO-1") == "Rejected"
    assert status(store, "PO-2") == "Received"


def test_orphan_attaches_when_its_order_arrives(store: Store, policy: Policy) -> None:
    orphan_id, state = send(store, policy, f.despatch_advice("D-1", "PO-9", [("1", "10")]))
    assert state == "orphan"
    send(store, policy, f.order("PO-9", f.items(1)))
    with store.session() as session:
        message = session.get_one(Message, orphan_id)
        assert message.state == "processed" and message.order_id is not None
    assert status(store, "PO-9") == "Fully delivered"


def test_orphan_from_unrelated_parties_stays_orphan(store: Store, policy: Policy) -> None:
    other = {"buyer": "7300010000018", "seller": "7310000000018"}
    orphan_id, _ = send(store, policy, f.despatch_advice("D-1", "PO-9", [("1", "1")], **other))
    send(store, policy, f.order("PO-9"))
    with store.session() as session:
        assert session.get_one(Message, orphan_id).state == "orphan"


def test_delivery_party_may_differ_when_the_seller_matches(store: Store, policy: Policy) -> None:
    send(store, policy, f.order("PO-9", f.items(1)))
    _, state = send(
        store, policy, f.despatch_advice("D-1", "PO-9", [("1", "10")], buyer="7300010000018")
    )
    assert state == "processed"
    assert status(store, "PO-9") == "Fully delivered"


OTHER = {"buyer": "7300010000018", "seller": "7310000000018"}
BUYER_B = "7300010000025"


def test_an_invoice_to_another_known_buyer_waits_for_that_buyers_order(
    store: Store, policy: Policy
) -> None:
    """Two buyers of one seller both number an order PO-9; only buyer A's is here yet. An
    invoice to buyer B for its PO-9 attached to A's through the seller alone, billing A."""
    send(store, policy, f.order("PO-9", f.items(1, "40")))
    send(store, policy, f.order("PO-2", f.items(1, "5"), buyer=BUYER_B))
    invoice_id, state = send(
        store, policy, f.invoice("1001", "PO-9", [("1", "40", "2.25")], buyer=BUYER_B)
    )
    assert state == "orphan"
    assert lines(store, "PO-9")["1"]["invoiced"] == "0"
    send(store, policy, f.order("PO-9", f.items(1, "40"), buyer=BUYER_B))
    with store.session() as session:
        assert session.get_one(Message, invoice_id).state == "processed"
    assert lines(store, f"0088:{BUYER_B}:PO-9")["1"]["invoiced"] == "40"
    assert lines(store, f"0088:{f.BUYER_GLN}:PO-9")["1"]["invoiced"] == "0"


def test_a_despatch_to_a_delivery_party_that_buys_too_attaches_through_the_seller(
    store: Store, policy: Policy
) -> None:
    """A despatch advice names the delivery party as buyer when it has no BuyerCustomerParty
    (Peppol T16); that party buying on its own account too does not make it another order's."""
    send(store, policy, f.order("PO-2", f.items(1, "5"), buyer=BUYER_B))
    send(store, policy, f.order("PO-9", f.items(1, "40")))
    _, state = send(store, policy, f.despatch_advice("D-1", "PO-9", [("1", "40")], buyer=BUYER_B))
    assert state == "processed"
    assert lines(store, "PO-9")["1"]["despatched"] == "40"


def test_an_invoice_to_the_invoicee_the_order_names_attaches(store: Store, policy: Policy) -> None:
    """The order names B as AccountingCustomerParty; B buys on its own account too. The
    invoice, addressed to B as Peppol has it, finds the order through the invoicee's keys."""
    send(store, policy, f.order("PO-2", f.items(1, "5"), buyer=BUYER_B))
    send(store, policy, f.order("PO-9", f.items(1, "40"), invoicee=BUYER_B))
    _, state = send(store, policy, f.invoice("1001", "PO-9", [("1", "40", "2.25")], buyer=BUYER_B))
    assert state == "processed"
    assert lines(store, "PO-9")["1"]["invoiced"] == "40"


def test_an_invoice_to_the_invoicee_the_buyer_partner_names_attaches(store: Store) -> None:
    """The buyer's bills go to B, its central accounts payable, which orders on its own
    account too; the orders name no invoicee. With `invoicee: b` on the buyer partner the
    order can be found by B's keys (role ``invoicee``), and B's invoice for PO-9 attaches,
    where without it the invoice waits as an orphan (the test before: B is another buyer).
    An Order Change naming another invoicee leaves those keys (it replaces the order's own)."""
    partners = [
        f.buyer_partner(invoicee="b"),
        {"id": "b", "name": "B", "role": "buyer", "endpoint": {"scheme": "0088", "value": BUYER_B}},
        f.seller_partner(),
    ]
    policy = Gateway(settings(partners), store).policy
    send(store, policy, f.order("PO-2", f.items(1, "5"), buyer=BUYER_B))
    send(store, policy, f.order("PO-9", f.items(1, "40")))
    _, state = send(store, policy, f.invoice("1001", "PO-9", [("1", "40", "2.25")], buyer=BUYER_B))
    assert state == "processed"
    assert lines(store, f"0088:{f.BUYER_GLN}:PO-9")["1"]["invoiced"] == "40"
    assert lines(store, f"0088:{BUYER_B}:PO-2")["1"]["invoiced"] == "0"
    with store.session() as session:
        roles = session.execute(
            select(OrderKey.role, OrderKey.party_key)
            .join(Order)
            .where(Order.order_number == "PO-9")
        ).all()
    assert ("invoicee", f"0088:{BUYER_B}") in roles


def test_an_invoicee_identifier_too_long_fails_its_order_on_every_backend(
    store: Store, policy: Policy
) -> None:
    """The invoicee's keys are kept (role ``billed``) but were not measured: SQLite kept a
    206-character key silently, PostgreSQL refused the row with a database message."""
    payload = f.order("PO-9", f.items(1), invoicee=BUYER_B).replace(
        f">{BUYER_B}<".encode(), f">{'7' * 201}<".encode()
    )
    mid, state = send(store, policy, payload)
    with store.session() as session:
        message = session.get_one(Message, mid)
    assert (state, message.error_code) == ("failed", "VALUE_TOO_LONG")
    assert message.error_detail.startswith("Order PO-9: the invoicee identifier is 206 characters")


def _credit_of_1001(parties: dict[str, str]) -> bytes:
    """A credit note with no order reference, naming invoice 1001 in its BillingReference."""
    credited = [("1", "10", "2.25")]
    return f.invoice(
        "CN-9", None, credited, root="CreditNote", type_code="381", billing_ref="1001", **parties
    )


def test_a_billing_reference_to_another_sellers_invoice_number_attaches_nowhere(
    store: Store, policy: Policy
) -> None:
    """Invoice numbers are the issuer's (EN 16931 BT-25: an invoice "previously sent by the
    Seller"): a credit note of other parties naming 1001 is not a credit of our seller's 1001."""
    send(store, policy, f.order("PO-1", f.items(1, "40")))
    send(store, policy, f.invoice("1001", "PO-1", [("1", "40", "2.25")]))
    _, state = send(store, policy, _credit_of_1001(OTHER))
    assert state == "orphan"
    assert lines(store)["1"]["credited"] == "0"


def test_a_billing_reference_finds_the_invoice_its_own_seller_sent(
    store: Store, policy: Policy
) -> None:
    """Two sellers' invoices numbered 1001: the credit note goes to its own seller's order."""
    send(store, policy, f.order("PO-1", f.items(1, "40")))
    send(store, policy, f.invoice("1001", "PO-1", [("1", "40", "2.25")]))
    send(store, policy, f.order("PO-9", f.items(1, "40"), **OTHER))
    send(store, policy, f.invoice("1001", "PO-9", [("1", "40", "2.25")], **OTHER))
    _, state = send(store, policy, _credit_of_1001(OTHER))
    assert state == "processed"
    assert lines(store, "PO-9")["1"]["credited"] == "10"
    assert lines(store, "PO-1")["1"]["credited"] == "0"


def test_a_credit_note_before_its_invoice_attaches_when_the_invoice_arrives(
    store: Store, policy: Policy
) -> None:
    """It names no order, only invoice 1001: an orphan until 1001 arrives (it stayed one)."""
    send(store, policy, f.order("PO-1", f.items(1, "40")))
    credit_id, state = send(store, policy, _credit_of_1001({}))
    assert state == "orphan"
    send(store, policy, f.invoice("1001", "PO-1", [("1", "40", "2.25")]))
    assert lines(store)["1"]["credited"] == "10"
    with store.session() as session:
        assert session.get_one(Message, credit_id).state == "processed"
        said = session.scalars(
            select(HistoryEvent.detail).where(HistoryEvent.message_id == credit_id)
        ).all()
    assert "waits for document 1001 (no order reference)" in said
    assert said[-1] == "orphan attached on arrival of 1001"


def test_a_credit_note_waiting_for_an_invoice_attached_by_hand_attaches_with_it(
    store: Store, policy: Policy
) -> None:
    """Invoice 1001 names an order that is not there (an orphan), its credit note waits for
    1001: the operator attaching 1001 to PO-1 by hand takes the credit note along (it stayed
    an orphan until redriven)."""
    send(store, policy, f.order("PO-1", f.items(1, "40")))
    invoice_id, state = send(store, policy, f.invoice("1001", "PO-9", [("1", "40", "2.25")]))
    assert state == "orphan"
    credit_id, state = send(store, policy, _credit_of_1001({}))
    assert state == "orphan"
    Gateway(settings(unknown_partner="accept"), store).attach(invoice_id, "PO-1", actor="tester")
    assert (lines(store)["1"]["invoiced"], lines(store)["1"]["credited"]) == ("40", "10")
    with store.session() as session:
        assert session.get_one(Message, credit_id).state == "processed"
        said = session.scalars(
            select(HistoryEvent.detail).where(HistoryEvent.message_id == credit_id)
        ).all()
    assert said[-1] == "orphan attached on arrival of 1001"


def _credit(number: str, order_ref: str, *, billing_ref: str = "1001") -> bytes:
    """A credit note of 10 of line 1 naming order ``order_ref`` and invoice ``billing_ref``."""
    credited = [("1", "10", "2.25")]
    root = {"root": "CreditNote", "type_code": "381"}
    return f.invoice(number, order_ref, credited, billing_ref=billing_ref, **root)


def _orphan_detail(store: Store, message_id: int) -> str:
    with store.session() as session:
        said = session.scalars(
            select(HistoryEvent.detail).where(
                HistoryEvent.message_id == message_id, HistoryEvent.event == "document.orphan"
            )
        ).all()
    return said[-1] or ""


@pytest.mark.parametrize(
    ("root", "type_code"), [("CreditNote", "381"), ("Invoice", "384")], ids=["credit", "corrected"]
)
def test_a_bill_whose_order_reference_finds_nothing_attaches_through_its_invoice(
    store: Store, policy: Policy, root: str, type_code: str
) -> None:
    """A credit note (or a corrected invoice) naming a number the buyer uses that is no order
    here (BT-13) and invoice 1001 (BT-25), which is attached to PO-1: it goes to PO-1 (it was
    an orphan for ever: the BillingReference was read only without an order reference)."""
    send(store, policy, f.order("PO-1", f.items(1, "40")))
    send(store, policy, f.invoice("1001", "PO-1", [("1", "40", "2.25")]))
    bill = f.invoice(
        "CN-9", "BUYER-REF-7", [("1", "10", "2.25")], billing_ref="1001", root=root,
        type_code=type_code,
    )  # fmt: skip
    _, state = send(store, policy, bill)
    assert state == "processed"
    with store.session() as session:
        row = session.scalars(select(DocumentRow).where(DocumentRow.doc_number == "CN-9")).one()
        assert row.order_id == resolve_order(session, "PO-1").id


def test_a_credit_note_naming_the_unknown_order_of_an_invoice_attached_by_hand_attaches(
    store: Store, policy: Policy
) -> None:
    """Invoice 1001 names PO-9, which is no order here (an orphan); so does its credit note,
    with 1001 as its BillingReference. The operator attaches 1001 to PO-1: the credit note
    waiting for PO-9 attaches with it, and one that arrives afterwards attaches on arrival."""
    send(store, policy, f.order("PO-1", f.items(1, "40")))
    invoice_id, _ = send(store, policy, f.invoice("1001", "PO-9", [("1", "40", "2.25")]))
    before_id, state = send(store, policy, _credit("CN-8", "PO-9"))
    assert state == "orphan"
    Gateway(settings(unknown_partner="accept"), store).attach(invoice_id, "PO-1", actor="tester")
    with store.session() as session:
        assert session.get_one(Message, before_id).state == "processed"
    _, state = send(store, policy, _credit("CN-9", "PO-9"))
    assert state == "processed"
    assert (lines(store)["1"]["invoiced"], lines(store)["1"]["credited"]) == ("40", "20")


def test_an_order_reference_and_an_invoice_that_disagree_leave_an_orphan_naming_both(
    store: Store, policy: Policy
) -> None:
    """The credit note names order PO-2 and invoice 1001, attached to PO-1 (same parties):
    neither reference outranks the other (EN 16931), so it is credited to neither and waits,
    its detail naming both, for an operator (ADR 0005)."""
    send(store, policy, f.order("PO-1", f.items(1, "40")))
    send(store, policy, f.order("PO-2", f.items(1, "40")))
    send(store, policy, f.invoice("1001", "PO-1", [("1", "40", "2.25")]))
    credit_id, state = send(store, policy, _credit("CN-9", "PO-2"))
    assert state == "orphan"
    assert (lines(store, "PO-1")["1"]["credited"], lines(store, "PO-2")["1"]["credited"]) == (
        "0",
        "0",
    )
    said = _orphan_detail(store, credit_id)
    assert "order reference PO-2 finds order" in said, said
    assert "preceding invoice 1001 is attached to order" in said, said
    _, state = send(store, policy, _credit("CN-8", "PO-1"))  # agreeing: attached as before
    assert state == "processed"
    assert lines(store, "PO-1")["1"]["credited"] == "10"


def test_a_bill_finds_no_order_through_an_invoice_of_another_buyer(
    store: Store, policy: Policy
) -> None:
    """Our seller's invoice 1001 is on buyer A's PO-1; a credit note of that seller to buyer
    B names B's unknown PO-7 and 1001: not A's order (the same parties only)."""
    send(store, policy, f.order("PO-1", f.items(1, "40")))
    send(store, policy, f.invoice("1001", "PO-1", [("1", "40", "2.25")]))
    bill = f.invoice(
        "CN-9", "PO-7", [("1", "10", "2.25")], root="CreditNote", type_code="381",
        billing_ref="1001", buyer=OTHER["buyer"],
    )  # fmt: skip
    _, state = send(store, policy, bill)
    assert state == "orphan"
    assert lines(store)["1"]["credited"] == "0"


def _said(store: Store, message_id: int) -> list[str]:
    with store.session() as session:
        found = session.scalars(
            select(HistoryEvent.detail)
            .where(HistoryEvent.message_id == message_id)
            .order_by(HistoryEvent.id)
        )
        return [said or "" for said in found]


@pytest.mark.parametrize(
    "arrival",
    [
        ("invoice", "bill", "order"),
        ("bill", "invoice", "order"),
        ("order", "bill", "invoice"),
        ("bill+invoice+order",),
    ],
    ids=["invoice-bill-order", "bill-invoice-order", "order-bill-invoice", "one-batch"],
)
def test_a_bill_waiting_for_its_invoice_attaches_when_the_invoice_does(
    store: Store, policy: Policy, arrival: tuple[str, ...]
) -> None:
    """A credit note names a number that is no order here (BT-13: a buyer's reference) and
    invoice 1001 (BT-25), which waits for PO-1 or has not arrived: an orphan that also waits
    for 1001 (``documents.preceding_ref``). Once 1001 is attached, by its order's arrival or
    on its own, the credit note attaches through it (it waited for the number alone, for ever,
    until redriven)."""
    payloads = {
        "order": f.order("PO-1", f.items(1, "40")),
        "invoice": f.invoice("1001", "PO-1", [("1", "40", "2.25")]),
        "bill": _credit("CN-9", "BUYER-REF-7"),
    }
    ids: dict[str, int] = {}
    for step in arrival:
        names = step.split("+")
        envs = [Envelope(payloads[n], "test", f"ref-{next(_refs)}", "doc.xml") for n in names]
        new = intake(store, envs)
        process_messages(store, policy, new)
        ids.update(zip(names, new, strict=True))
    assert (lines(store)["1"]["invoiced"], lines(store)["1"]["credited"]) == ("40", "10")
    with store.session() as session:
        assert session.get_one(Message, ids["bill"]).state == "processed"
    said = _said(store, ids["bill"])
    if arrival[0] != "bill+invoice+order":  # one batch: the invoice was there when it looked
        assert "waits for order BUYER-REF-7 or for invoice 1001 to be attached to its order" in said
        assert said[-1] == "orphan attached on arrival of 1001"


def test_a_bill_waiting_for_its_invoice_attaches_when_the_invoice_is_attached_by_hand(
    store: Store, policy: Policy
) -> None:
    """Invoice 1001 names PO-9, no order here (an orphan); the credit note names another
    unknown number and 1001: the operator attaching 1001 to PO-1 takes the credit note along
    (it waited for its own number only)."""
    send(store, policy, f.order("PO-1", f.items(1, "40")))
    invoice_id, _ = send(store, policy, f.invoice("1001", "PO-9", [("1", "40", "2.25")]))
    credit_id, state = send(store, policy, _credit("CN-9", "BUYER-REF-7"))
    assert state == "orphan"
    Gateway(settings(unknown_partner="accept"), store).attach(invoice_id, "PO-1", actor="tester")
    assert (lines(store)["1"]["invoiced"], lines(store)["1"]["credited"]) == ("40", "10")
    with store.session() as session:
        assert session.get_one(Message, credit_id).state == "processed"
    assert _said(store, credit_id)[-1] == "orphan attached on arrival of 1001"


def test_a_bill_waiting_for_its_invoice_whose_order_disagrees_still_waits_naming_both(
    store: Store, policy: Policy
) -> None:
    """The credit note names PO-2 and invoice 1001, neither order here yet, 1001 waiting for
    PO-1. Both orders arrive in one batch, PO-1 first: 1001 attaches to PO-1, then the credit
    note finds PO-2 by its number and PO-1 through 1001. It stays an orphan credited to
    neither, its detail naming both (once), as when it arrives after both (ADR 0005)."""
    send(store, policy, f.invoice("1001", "PO-1", [("1", "40", "2.25")]))
    credit_id, state = send(store, policy, _credit("CN-9", "PO-2"))
    assert state == "orphan"
    envs = [
        Envelope(f.order(number, f.items(1, "40")), "test", f"ref-{next(_refs)}", "doc.xml")
        for number in ("PO-1", "PO-2")
    ]
    assert set(process_messages(store, policy, intake(store, envs)).values()) == {"processed"}
    assert lines(store, "PO-1")["1"]["invoiced"] == "40"
    assert (lines(store, "PO-1")["1"]["credited"], lines(store, "PO-2")["1"]["credited"]) == (
        "0",
        "0",
    )
    with store.session() as session:
        assert session.get_one(Message, credit_id).state == "orphan"
    said = _orphan_detail(store, credit_id)
    assert "order reference PO-2 finds order" in said, said
    assert "preceding invoice 1001 is attached to order" in said, said
    assert _said(store, credit_id).count(said) == 1


def test_orphans_waiting_for_each_other_attach_with_their_order(
    store: Store, policy: Policy
) -> None:
    """Invoice before its order, its credit note before both; then the order, or all three
    in one batch: everything attaches."""
    invoice = f.invoice("1001", "PO-1", [("1", "40", "2.25")])
    send(store, policy, _credit_of_1001({}))
    send(store, policy, invoice)
    send(store, policy, f.order("PO-1", f.items(1, "40")))
    assert (lines(store)["1"]["invoiced"], lines(store)["1"]["credited"]) == ("40", "10")

    batch = [_credit_of_1001({}), invoice, f.order("PO-1", f.items(1, "40"))]
    again = {b"PO-1": b"PO-2", b"1001": b"2002", b"CN-9": b"CN-8"}
    payloads = [functools.reduce(lambda p, r: p.replace(*r), again.items(), b) for b in batch]
    envs = [Envelope(p, "test", f"batch-{n}", "doc.xml") for n, p in enumerate(payloads)]
    states = process_messages(store, policy, intake(store, envs))
    assert list(states.values()) == ["processed"] * 3
    assert (lines(store, "PO-2")["1"]["invoiced"], lines(store, "PO-2")["1"]["credited"]) == (
        "40",
        "10",
    )


MLR = Path(__file__).parents[1] / "data" / "read" / "application_response.xml"


def test_an_mlr_reference_is_measured_as_what_an_orphan_waits_for(
    store: Store, policy: Policy
) -> None:
    """An MLR naming no order waits for the first document it answers (documents.order_ref):
    one the column holds makes an orphan on every backend; a longer one is refused when read
    (VALUE_TOO_LONG naming it), not by PostgreSQL when written, nor kept by SQLite alone."""
    raw = MLR.read_bytes()
    _, state = send(store, policy, raw.replace(b"INV-2026-0042", b"R" * 200))
    assert state == "orphan"
    longer = raw.replace(b"IR-11", b"IR-12").replace(b"INV-2026-0042", b"S" * 201)
    mid, state = send(store, policy, longer)
    assert state == "failed"
    with store.session() as session:
        message = session.get_one(Message, mid)
    assert message.error_code == "VALUE_TOO_LONG"
    assert "the document reference is 201 characters long" in (message.error_detail or "")


def test_same_order_id_from_two_buyers_is_two_orders(store: Store, policy: Policy) -> None:
    send(store, policy, f.order("PO-1"))
    send(store, policy, f.order("PO-1", buyer="7300010000018"))
    send(store, policy, f.order_response("R-1", "PO-1", "AP", buyer="7300010000018"))
    with store.session() as session:
        assert session.scalar(select(func.count()).select_from(Order)) == 2
        statuses = sorted(o.status for o in session.scalars(select(Order)))
    assert statuses == ["Accepted", "Received"]


def test_byte_identical_resend_is_a_duplicate(store: Store, policy: Policy) -> None:
    first, _ = send(store, policy, f.order("PO-1"))
    second, state = send(store, policy, f.order("PO-1"))
    assert state == "duplicate"
    with store.session() as session:
        message = session.get_one(Message, second)
        assert message.duplicate_of == first and message.error_code == "DUPLICATE"
        assert session.scalar(select(func.count()).select_from(Order)) == 1


def test_a_copy_processed_first_makes_the_earlier_one_its_duplicate(
    store: Store, policy: Policy
) -> None:
    """The same bytes stored twice, the later copy processed first (an ``ingest`` stopped
    after its intake and run again; a message crash-left ``received`` while the bytes came in
    again): the earlier one is then the later one's duplicate, not a conflict "with different
    content"; and a redriven orphan whose copy is its duplicate is processed again, not made
    the duplicate of its own copy."""
    payload = f.order("PO-1")
    envelopes = [
        Envelope(payload=payload, source="test", source_ref=f"ref-{next(_refs)}", filename="a")
        for _ in range(2)
    ]
    earlier, later = intake(store, envelopes)
    assert process_messages(store, policy, [later]) == {later: "processed"}
    assert process_messages(store, policy, [earlier]) == {earlier: "duplicate"}
    with store.session() as session:
        message = session.get_one(Message, earlier)
        assert (message.duplicate_of, message.error_code) == (later, "DUPLICATE")
        assert session.scalar(select(func.count()).select_from(Order)) == 1
    invoice = f.invoice("INV-1", "PO-404", [("1", "1", "1.00")])  # an orphan, then its copy
    orphan, state = send(store, policy, invoice)
    assert state == "orphan"
    copy, state = send(store, policy, invoice)
    assert state == "duplicate"
    Gateway(settings(unknown_partner="accept"), store).redrive([orphan])
    with store.session() as session:
        assert session.get_one(Message, orphan).state == "orphan"
        assert session.get_one(Message, copy).duplicate_of == orphan


def test_same_id_with_other_content_is_flagged_not_merged(store: Store, policy: Policy) -> None:
    send(store, policy, f.order("PO-1", f.items(2)))
    mid, state = send(store, policy, f.order("PO-1", f.items(5)))
    assert state == "failed"
    with store.session() as session:
        message = session.get_one(Message, mid)
        assert message.error_code == "DUPLICATE_ID_CONFLICT"
        assert "different content" in (message.error_detail or "")
    assert len(lines(store)) == 2


def test_xsd_invalid_is_kept_and_marked_with_its_line(store: Store, policy: Policy) -> None:
    bad = (
        f.order("PO-1")
        .replace(b"<cbc:IssueDate>", b"\n\n<cbc:IssueDat>")
        .replace(b"</cbc:IssueDate>", b"</cbc:IssueDat>")
    )
    mid, state = send(store, policy, bad)
    assert state == "failed"
    with store.session() as session:
        message = session.get_one(Message, mid)
        assert message.error_code == "XSD_INVALID" and message.error_line == 4
        assert message.payload == bad
        assert "/Order/cbc:IssueDat[1]: cbc:IssueDat is not expected here" in (
            message.error_detail or ""
        )
        assert message.sender_key == f"0088:{f.BUYER_GLN}"  # read from the invalid tree


def test_xsd_invalid_order_names_its_partner(store: Store) -> None:
    known = Policy(
        max_size=10**7,
        accept_unknown_partners=False,
        partner_of=lambda keys: "buyer" if f"0088:{f.BUYER_GLN}" in keys else None,
    )
    bad = f.order("PO-1").replace(b"<cbc:Quantity ", b"<cbc:Quantity foo='1' ")
    mid, state = send(store, known, bad)
    assert state == "failed"
    with store.session() as session:
        message = session.get_one(Message, mid)
        assert (message.error_code, message.partner) == ("XSD_INVALID", "buyer")
        assert "(and 2 more)" in (message.error_detail or "")
    stranger = f.order("PO-2", buyer="7300010000018").replace(b"IssueDate", b"IsueDate")
    mid, state = send(store, known, stranger)
    with store.session() as session:
        message = session.get_one(Message, mid)
        assert (message.error_code, message.partner) == ("XSD_INVALID", None)
        assert message.sender_key == "0088:7300010000018"


def test_intake_is_idempotent_per_source_ref(store: Store) -> None:
    env = Envelope(payload=b"<x/>", source="folder:in", source_ref="claimed-1", filename="a.xml")
    assert intake(store, [env]) == intake(store, [env])
    with store.session() as session:
        assert session.scalar(select(func.count()).select_from(Message)) == 1


def test_unknown_partner_fails_then_redrive_after_config_fix(store: Store) -> None:
    strict = Policy(max_size=10**7, accept_unknown_partners=False, partner_of=lambda keys: None)
    mid, state = send(store, strict, f.order("PO-1"))
    assert state == "failed"
    with store.session() as session:
        message = session.get_one(Message, mid)
        assert message.error_code == "UNKNOWN_PARTNER"
        assert f"0088:{f.BUYER_GLN}" in (message.error_detail or "")
        assert message.doc_kind == "Order" and message.doc_id == "PO-1"

    buyer = {"scheme": "0088", "value": f.BUYER_GLN}
    partner = {"id": "buyer-ab", "name": "Buyer AB", "role": "buyer", "endpoint": buyer}
    gateway = Gateway(settings(partners=[partner]), store)
    assert gateway.redrive([mid], dry_run=True) == [mid]
    assert gateway.redrive([mid]) == [mid]
    with store.session() as session:
        message = session.get_one(Message, mid)
        assert message.state == "processed" and message.partner == "buyer-ab"
        assert message.attempts == 2
        rows = session.scalars(select(DocumentRow).where(DocumentRow.message_id == mid)).all()
        assert len(rows) == 1


def test_redriving_an_orphan_does_not_duplicate_its_document(store: Store, policy: Policy) -> None:
    orphan_id, _ = send(store, policy, f.invoice("INV-1", "PO-7", [("1", "1", "1.00")]))

    gateway = Gateway(settings(unknown_partner="accept"), store)
    gateway.redrive([orphan_id])
    with store.session() as session:
        assert session.get_one(Message, orphan_id).state == "orphan"
        count = (
            select(func.count()).select_from(DocumentRow).where(DocumentRow.message_id == orphan_id)
        )
        assert session.scalar(count) == 1


def test_oversize_file_is_refused_without_reading_its_bytes(store: Store, tmp_path: Path) -> None:
    big = tmp_path / "big.xml"
    big.write_bytes(f.order("PO-1", f.items(50)))
    gateway = Gateway(settings(unknown_partner="accept"), store)
    limit = big.stat().st_size - 1
    env = file_envelope(big, source="cli", source_ref="r1", filename="big.xml", max_bytes=limit)
    assert env.payload == b"" and env.oversize == big.stat().st_size
    [mid] = intake(gateway.store, [env])
    assert process_messages(store, gateway.policy, [mid]) == {mid: "failed"}
    with store.session() as session:
        message = session.get_one(Message, mid)
        assert message.error_code == "TOO_LARGE" and message.size == big.stat().st_size
        assert (
            message.payload == b""
            and message.sha256 == hashlib.sha256(big.read_bytes()).hexdigest()
        )
        assert "were not stored" in (message.error_detail or "")


def test_identical_copies_in_one_batch_share_the_first_ones_fate(
    store: Store, policy: Policy
) -> None:
    send(store, policy, f.order("PO-1", f.items(1)))
    conflicting = f.order("PO-1", f.items(2))
    envs = [
        Envelope(payload=conflicting, source="t", source_ref=f"c{n}", filename="c.xml")
        for n in range(2)
    ] + [
        Envelope(payload=f.order("PO-2"), source="t", source_ref=f"d{n}", filename="d.xml")
        for n in range(2)
    ]
    ids = intake(store, envs)
    states = process_messages(store, policy, ids)
    assert [states[i] for i in ids] == ["failed", "failed", "processed", "duplicate"]
    with store.session() as session:
        codes = [session.get_one(Message, i).error_code for i in ids]
    assert codes == ["DUPLICATE_ID_CONFLICT", "DUPLICATE_ID_CONFLICT", None, "DUPLICATE"]


def test_endpoint_match_settles_two_candidate_orders(store: Store, policy: Policy) -> None:
    """Two orders 'PO-5' whose buyers both carry the GLN: the one whose endpoint it is wins."""
    send(store, policy, f.order("PO-5", f.items(1)))
    other = f.order("PO-5", f.items(1), buyer="7300010000018").replace(
        b'<cac:PartyIdentification><cbc:ID schemeID="0088">7300010000018</cbc:ID>',
        f'<cac:PartyIdentification><cbc:ID schemeID="0088">{f.BUYER_GLN}</cbc:ID>'.encode(),
    )
    send(store, policy, other)
    _, state = send(store, policy, f.order_response("R-1", "PO-5", "AP"))
    assert state == "processed"
    assert status(store, f"0088:{f.BUYER_GLN}:PO-5") == "Accepted"
    assert status(store, "0088:7300010000018:PO-5") == "Received"


def test_a_number_that_is_a_store_id_and_an_order_number_is_ambiguous(
    store: Store, policy: Policy
) -> None:
    send(store, policy, f.order("2"))  # store id 1
    send(store, policy, f.order("1"))  # store id 2
    send(store, policy, f.order("4500012901"))  # beyond any INTEGER key: only an order number
    with store.session() as session:
        with pytest.raises(LookupFailed, match="matches 2 orders"):
            resolve_order(session, "1")
        assert resolve_order(session, f"0088:{f.BUYER_GLN}:1").order_number == "1"
        assert resolve_order(session, "4500012901").order_number == "4500012901"
        assert resolve_order(session, "3").order_number == "4500012901"  # a plain store id
