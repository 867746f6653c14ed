"""Correlation: an Order becomes an order record; every other document attaches to its order.

An order is identified by its buyer party and order ID. A document finds its order by the
order IDs it references plus the buyer (or, failing that, seller) party keys; a document whose
order is not known yet is kept as an ``orphan`` and attaches by itself when the order arrives.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, NamedTuple

from sqlalchemy import or_, select, update
from sqlalchemy.orm import InstrumentedAttribute, Session

from edi_gateway.domain.documents import (
    ApplicationResponse,
    Document,
    DocumentKind,
    Line,
    Party,
    self_billed,
)
from edi_gateway.errors import GatewayError
from edi_gateway.pipeline.cancellations import on_received
from edi_gateway.pipeline.history import SYSTEM, now, record
from edi_gateway.pipeline.ledger import recompute
from edi_gateway.pipeline.ledger_rows import Documents, LedgerRow
from edi_gateway.pipeline.order_change import apply_order_change, on_response
from edi_gateway.pipeline.orders import document_row
from edi_gateway.pipeline.shipments import record_shipment
from edi_gateway.pipeline.work import unexpected
from edi_gateway.store import schema
from edi_gateway.store import tables as t
from edi_gateway.store.bulk import insert_many
from edi_gateway.store.db import transient
from edi_gateway.store.queries import lock_orders, order_lines
from edi_gateway.store.widths import decimal_text

log = logging.getLogger(__name__)

PROCESSED, ORPHAN = "processed", "orphan"


@dataclass(frozen=True, slots=True)
class MessageRef:
    """The message a document came in (none for one the gateway issues), its source, partner."""

    id: int | None
    source: str
    partner: str | None


def correlate(session: Session, ref: MessageRef, document: Document) -> tuple[str, int | None]:
    """Attach a (non-Order) document to its order; return the message state and the order id.

    Orders themselves are stored in bulk by ``pipeline.orders.insert_orders``.
    """
    if document.kind is DocumentKind.ORDER:
        raise ValueError("orders are stored by insert_orders, not correlated")
    found = match_order(session, document)
    if found.order is None and _lock_chain(session, document):  # locked: look again
        found = match_order(session, document)
    order = found.order
    row = t.DocumentRow(**document_row(ref.id, document, order.id if order else None, now()))
    session.add(row)
    session.flush()
    if order is None:
        record(session, "document.orphan", _why_orphan(document, found), message_id=ref.id)
        return ORPHAN, None
    attach(session, order, row, document, ref)
    return PROCESSED, order.id


def _why_orphan(document: Document, found: Match) -> str:
    """The ``document.orphan`` detail: what the orphan waits for, or why it cannot attach."""
    if found.conflict:
        detail = f"{found.conflict}: attach it by hand (messages attach) to the right one"
    elif document.order_refs:
        detail = f"waits for order {', '.join(document.order_refs)}"
        if preceding := document.preceding_ref():
            detail += f" or for invoice {preceding} to be attached to its order"
    elif waited := document.waits_for():
        detail = f"waits for document {waited} (no order reference)"
    else:
        detail = "waits for order: no order reference"
    if found.ambiguous:
        listed = ", ".join(f"{o.id} ({o.buyer_key}:{o.order_number})" for o in found.ambiguous)
        detail += f"; several orders match ({listed}): redrive once it is clear"
    return detail


class Match(NamedTuple):
    """The order a document belongs to; when none could be chosen, the candidates, or why the
    references disagree (``conflict``, for the orphan's ``document.orphan`` detail)."""

    order: t.Order | None
    ambiguous: list[t.Order]
    conflict: str | None = None


def match_order(session: Session, document: Document) -> Match:
    """The order this document belongs to, and, when none could be chosen, the candidates.

    Candidates are the orders with a referenced order ID. They are narrowed, in turn, to those
    whose buyer keys meet the document's buyer keys; then also whose seller keys meet its
    seller keys; then whose primary buyer key (the endpoint) is the document's. The first step
    that leaves exactly one order decides. With no buyer match at all, a single seller match
    decides (a delivery party is often not the buyer). Otherwise nothing is guessed.
    A bill that also references preceding invoices is checked against them
    (:func:`_with_preceding`).
    """
    if isinstance(document, ApplicationResponse) or not document.order_refs:
        via = _order_via_documents(session, document, document.referenced_documents())
        if via is not None:
            return Match(_locked(session, *via), [])
    if not document.order_refs:
        return Match(None, [])
    found = _by_number(session, document)
    if document.kind in BILLING_KINDS and document.billing_refs:
        return _with_preceding(session, document, found)
    return found


def _by_number(session: Session, document: Document) -> Match:
    candidates = {
        o.id: o
        for o in session.scalars(
            select(t.Order).where(t.Order.order_number.in_(document.order_refs))
        )
    }
    if not candidates:
        return Match(None, [])
    billing = document.kind in BILLING_KINDS
    buyer_roles = BILLED_BY if billing else ("buyer",)
    buyers = _meeting(session, list(candidates), buyer_roles, document.buyer)
    sellers = _meeting(session, list(candidates), ("seller",), document.seller)
    primary = document.buyer.key() if document.buyer else None
    steps = [buyers, buyers & sellers, {i for i in buyers if candidates[i].buyer_key == primary}]
    if not buyers:
        if billing and _buys_elsewhere(session, document.buyer):
            return Match(None, [])  # another buyer's bill: the seller alone does not decide
        steps = [sellers]
    for narrowed in steps:
        if len(narrowed) == 1:
            return Match(candidates[next(iter(narrowed))], [])
    ambiguous = buyers or sellers
    return Match(None, [candidates[i] for i in sorted(ambiguous)] if len(ambiguous) > 1 else [])


def _with_preceding(session: Session, document: Document, found: Match) -> Match:
    """A bill naming both an order (EN 16931 BT-13, the buyer's purchase order number) and
    preceding invoices (BT-25, invoices the seller sent before: a credit note's) against the
    order those invoices are attached to, when it is one (:func:`_order_via_documents`) and
    the bill's buyer is its buyer or invoicee. Neither reference outranks the other in the
    norm, so: they agree, or the order number found none (a buyer's reference, a typo) and
    the invoice's order decides (also among several candidates it is one of); they disagree
    and the bill waits as an orphan whose detail names both (``conflict``), for an operator:
    attached either way, it would move one order's ledger on a guess. ADR 0005."""
    via = _order_via_documents(session, document, document.billing_refs)
    if via is None:
        return found
    order_id, number = via
    if found.order is not None and found.order.id == order_id:
        return found
    if not _meeting(session, [order_id], BILLED_BY, document.buyer):
        return found  # another buyer's order: the invoice's number is no evidence here
    named = [found.order] if found.order else found.ambiguous
    if named and order_id not in {o.id for o in named}:
        listed = ", ".join(f"{o.id} ({o.buyer_key}:{o.order_number})" for o in named)
        conflict = (
            f"order reference {', '.join(document.order_refs)} finds order {listed}, but "
            f"preceding invoice {', '.join(document.billing_refs)} is attached to order "
            f"{order_id} ({number})"
        )
        return Match(None, [], conflict)
    return Match(_locked(session, order_id, number), [])


BILLING_KINDS = frozenset({DocumentKind.INVOICE, DocumentKind.CREDIT_NOTE, DocumentKind.DEBIT_NOTE})
"""Documents whose buyer is the AccountingCustomerParty: the order's invoicee when it names
one (``order_keys`` role ``billed``), the buyer partner's configured ``invoicee:`` when it
names none (role ``invoicee``), else its buyer."""
BILLED_BY = ("buyer", "billed", "invoicee")


def _locked(session: Session, order_id: int, number: str) -> t.Order | None:
    """The order a document found through another document, read after taking its number's
    lock. A batch locks the order numbers its documents name (``process._numbers``), and this
    document names none. Until now only the order row's update (``updated_at``, flushed before
    the ledger is read) kept two such documents of one order, on two gateways at once, from
    each deriving the lines without the other's rows (two credit notes of two invoices: one
    credit lost, as the race test shows without either): the lock makes it the rule. It comes
    after the batch's own; a circle it closes is broken by PostgreSQL and the batch processed
    again (``store.db.again_after_deadlocks``). None: the order was purged meanwhile."""
    lock_orders(session, [number])
    return session.get(t.Order, order_id)


def _meeting(
    session: Session, candidates: Collection[int], roles: Sequence[str], party: Party | None
) -> set[int]:
    keys = party.keys() if party else []
    if not keys:
        return set()
    return set(
        session.scalars(
            select(t.OrderKey.order_id).where(
                t.OrderKey.order_id.in_(list(candidates)),
                t.OrderKey.role.in_(roles),
                t.OrderKey.party_key.in_(keys),
            )
        )
    )


def _buys_elsewhere(session: Session, party: Party | None) -> bool:
    """Whether ``party`` is the buyer (or invoicee) of some order in the store. A bill whose
    buyer meets none of the candidate orders then belongs to an order of that buyer the store
    does not hold: the candidates' one seller match is a number clash (an invoice to buyer B
    numbered as buyer A's order attached to A's order, and counted there as invoiced). Only
    for bills: a despatch advice's buyer is often its delivery party, which may well buy on
    its own account too (ADR 0005). One indexed probe (``order_keys.party_key``)."""
    keys = party.keys() if party else []
    if not keys:
        return False
    roles = t.OrderKey.role.in_(BILLED_BY)
    probe = select(t.OrderKey.id).where(t.OrderKey.party_key.in_(keys), roles).limit(1)
    return session.scalars(probe).first() is not None


def attach(
    session: Session,
    order: t.Order,
    row: t.DocumentRow,
    document: Document,
    ref: MessageRef,
    *,
    actor: str = SYSTEM,
    lines: list[t.OrderLine] | None = None,
    before: Documents | None = None,
) -> None:
    """Attach a document to its order: ledger lines, order changes, derived status, history.

    A received cancellation, or a supplier's response while one is pending, is decided by
    ``pipeline.cancellations`` (its state may then be other than ``attached``).

    ``actor`` is who the change is recorded for: ``system`` for received documents, the
    operator for documents the gateway issues on a command. ``lines``: the order's lines when
    the caller already loaded them (``store.queries.order_lines``), read once instead of here
    and again in the recompute; an Order Change reads them afresh (it may add lines).
    ``before``: the order's attached documents with their ledger rows as they were before this
    one was written, when the caller knows them (a bulk batch, ``store.prefetch``): the
    recompute then counts them and this document's rows instead of reading them all again.
    Only for a document the gateway issues (nothing else of the order changes meanwhile).
    """
    row.order_id = order.id
    row.state = "attached"
    if document.kind is DocumentKind.ORDER_CHANGE:
        apply_order_change(session, order, row, document, actor=actor)
        lines = None
    if lines is None:
        lines = order_lines(session, order)
    unmatched, written = _insert_ledger(session, row, document, lines)
    record_shipment(session, order, row, document)
    if order.seller_partner is None and document.kind not in _BUYER_KINDS:
        # a self-billed invoice is the buyer's: its sender is not the order's supplier
        order.seller_partner = None if self_billed(document.customization_id) else ref.partner
    order.updated_at = now()
    detail = f"{document.kind.value} {document.document_id}"
    if unmatched:
        detail += f"; lines matching no order line: {', '.join(unmatched)}"
    event = "document.attached" if row.direction == "in" else "document.issued"
    record(session, event, detail, actor=actor, order_id=order.id, message_id=ref.id)
    if row.direction == "in":  # a buyer's cancellation, or a supplier's answer to one
        on_received(session, order, row, document, ref.id)
        if row.state == "attached":  # or a supplier's answer to the buyer's latest change
            on_response(session, order, row, document)
    documents: Documents | None = None
    if before is not None and row.direction == "out" and row.state == "attached":
        docs, ledger = before
        documents = ([*docs, row], {**ledger, row.id: written})
    recompute(session, order, actor, lines, documents)


def forget_rolled_back(session: Session, *, documents: bool = True) -> None:
    """Take the ledger rows (and with ``documents`` the document rows) the session holds out
    of it after a savepoint that attached or issued a document was rolled back. They are
    written with Core, so the rollback does not expunge what was loaded of them (the recompute
    reads the ledger), and SQLite gives their IDs again to the next document's rows: an object
    kept alive meanwhile (a traceback holds the frames that loaded it; the CLI's collector
    runs rarely) would stand in for them, rolled-back quantities and all. Unchanged objects
    only (a change pending in one is never lost); the next read loads afresh. Attaching
    orphans keeps ``documents``: its document rows were in the store before, and it goes on
    with the next ones."""
    kinds = (t.DocumentRow, t.DocumentLine) if documents else (t.DocumentLine,)
    dirty = session.dirty
    for obj in list(session.identity_map.values()):
        if isinstance(obj, kinds) and obj not in dirty:
            session.expunge(obj)


def attach_orphans(session: Session, order_id: int) -> list[t.DocumentRow]:
    """Attach every orphan that references this order; return those attached (more orphans
    may wait for them: :func:`attach_waiting`)."""
    order = session.get_one(t.Order, order_id)
    why = "orphan attached on arrival of its order"
    return [
        row
        for row in _orphans_waiting_for(session, [order.order_number], t.DocumentRow.order_ref)
        if _attach_orphan(session, row, order, why)
    ]


def attach_waiting(session: Session, numbers: Sequence[str]) -> list[t.DocumentRow]:
    """Attach the orphans that wait for a document numbered one of ``numbers`` (a credit note
    that came before its invoice; a bill whose order number finds nothing, through its
    preceding invoice: ``documents.preceding_ref``) and now find their order through it, then
    those that wait for them in turn; return every one attached. Each attaches once (only
    orphans are looked for), so the chain ends."""
    attached: list[t.DocumentRow] = []
    columns = (t.DocumentRow.order_ref, t.DocumentRow.preceding_ref)
    while numbers:
        # No lock is taken here (it would cost one per orphan attached, unbounded): a document
        # being stored as an orphan at this moment holds the number of the order its chain
        # waits for (:func:`_lock_chain`), which whoever attaches that chain holds too.
        wanted = set(numbers)
        found = [
            row
            for row in _orphans_waiting_for(session, numbers, *columns)
            if _attach_orphan(
                session,
                row,
                None,
                "orphan attached on arrival of "
                f"{row.order_ref if row.order_ref in wanted else row.preceding_ref}",
            )
        ]
        attached += found
        numbers = [row.doc_number for row in found]
    return attached


def _lock_chain(session: Session, document: Document) -> bool:
    """Take the locks of the order numbers this document's orphan would wait for through other
    orphans; whether the caller must look for its order again: always, for a document that
    waits for a document. Between the caller's first look (N an orphan) and these reads, N's
    order may have arrived on a gateway that holds none of this batch's numbers: it attached
    N, looked for N's waiters before this document was committed, and ended. These reads then
    find no orphan left to lock; when only a lock taken meant "look again", this document
    stayed an orphan for good (CI, 2026-12-06: one in the four-gateway chain test).

    A document naming no order waits for the document it references, N (``waits_for``), whose
    number its batch locks. When N is itself an orphan waiting for order O (or for another
    orphan waiting for O ...), N is attached, by O's arrival or by hand, under O's lock, and
    its waiters are looked for then: this document, stored meanwhile on another gateway, was
    not seen, and stayed an orphan (review of 2026-12-05). Holding O too, the two go one after
    the other: the second either reads N attached (and attaches through it) or is found
    waiting by the attacher. One lock per hop of this document's chain, after the batch's own
    (a circle is broken by PostgreSQL and the batch processed again: db.again_after_deadlocks);
    the attacher takes none of its own for it, so a batch's keys stay bounded by its documents.

    A document naming an order number waits for it, and its batch holds it; a bill naming
    preceding invoices too also waits for the first of them (``Document.preceding_ref``, which
    its batch holds too) to attach, through which its order is found when the number finds
    none (:func:`_with_preceding`): its chain is followed the same way. The chain goes through
    what each orphan waits for, its order number and its preceding invoice alike.
    """
    waited = document.preceding_ref() if document.order_refs else document.waits_for()
    if waited is None:
        return False
    seen = {waited}
    numbers = [waited]
    while numbers:
        found = session.execute(
            select(t.DocumentRow.order_ref, t.DocumentRow.preceding_ref).where(
                t.DocumentRow.state == ORPHAN, t.DocumentRow.doc_number.in_(numbers)
            )
        )
        numbers = sorted({number for row in found for number in row if number} - seen)
        lock_orders(session, numbers)
        seen.update(numbers)
    return True


def _orphans_waiting_for(
    session: Session, numbers: Sequence[str], *columns: InstrumentedAttribute[str | None]
) -> list[t.DocumentRow]:
    """The orphans whose ``columns`` (``order_ref``, ``preceding_ref``) hold one of
    ``numbers``, each once, in the order they were stored."""
    found: dict[int, t.DocumentRow] = {}
    for start in range(0, len(numbers), 500):
        chunk = numbers[start : start + 500]
        waits = or_(*(column.in_(chunk) for column in columns))
        for row in session.scalars(
            select(t.DocumentRow).where(t.DocumentRow.state == ORPHAN, waits)
        ):
            found[row.id] = row
    return [found[key] for key in sorted(found)]


def _attach_orphan(session: Session, row: t.DocumentRow, order: t.Order | None, why: str) -> bool:
    """Attach the orphan ``row`` to the order it now finds (to ``order`` only, when given);
    whether it attached. One that cannot attach never sinks the others, nor what arrived."""
    from edi_gateway.ubl.read import read_stored

    found = session.execute(
        select(t.Message.payload, t.Message.source, t.Message.partner).where(
            t.Message.id == row.message_id
        )
    ).first()
    if found is None or row.message_id is None:
        return False
    payload, source, partner = found
    try:
        document = read_stored(payload)
    except GatewayError:  # not UBL (a supplier's CSV reply): `messages redrive` attaches it
        return False
    match = match_order(session, document)
    target = match.order
    if match.conflict:
        _tell_conflict(session, row.message_id, _why_orphan(document, match))
    if target is None or (order is not None and target is not order):
        return False
    try:
        with session.begin_nested():  # an orphan that cannot attach never sinks its order
            attach(session, target, row, document, MessageRef(row.message_id, source, partner))
    except Exception as exc:
        if transient(exc):
            raise
        forget_rolled_back(session, documents=False)
        reason = unexpected(exc)
        log.warning("orphan %s cannot attach to order %s: %s", row.message_id, target.id, reason)
        record(
            session,
            "orphan.not_attached",
            f"{reason}; it stays an orphan (messages redrive {row.message_id})",
            message_id=row.message_id,
        )
        return False
    session.execute(
        update(t.Message)
        .where(t.Message.id == row.message_id)
        .values(state=PROCESSED, order_id=target.id, updated_at=now())
    )
    record(session, "message.processed", why, message_id=row.message_id, order_id=target.id)
    return True


def _tell_conflict(session: Session, message_id: int, detail: str) -> None:
    """Record why an orphan looked at again still cannot attach when its references now
    disagree (its order number's order and its preceding invoice's, which attached since):
    news for the operator, whose list showed it waiting. Once: the order's arrival and its
    invoice's attaching may both look at it in one batch."""
    h = t.HistoryEvent
    last = session.scalar(
        select(h.detail)
        .where(h.message_id == message_id, h.event == "document.orphan")
        .order_by(h.id.desc())
        .limit(1)
    )
    if last != detail:
        record(session, "document.orphan", detail, message_id=message_id)


_BUYER_KINDS = {
    DocumentKind.ORDER_CHANGE,
    DocumentKind.ORDER_CANCELLATION,
    DocumentKind.RECEIPT_ADVICE,
}


def _order_via_documents(
    session: Session, document: Document, refs: Sequence[str]
) -> tuple[int, str] | None:
    """The one order the documents numbered ``refs`` (among those this one references) are
    attached to: its ID and number (read together: the number is what :func:`_locked` locks).
    None when they are attached to none, or to several."""
    if not refs:
        return None
    query = (
        select(t.DocumentRow.order_id, t.Order.order_number)
        .join(t.Order, t.Order.id == t.DocumentRow.order_id)
        .where(t.DocumentRow.doc_number.in_(refs))
    )
    # Numbers are unique per issuer only (EN 16931 BT-25: an invoice "previously sent by the
    # Seller"): the referenced document must come from a party this one names, or another
    # seller's invoice 1001 would take this credit note to an order of other parties.
    parties = [party for party in (document.buyer, document.seller) if party]
    keys = [key for party in parties for key in party.keys()]  # noqa: SIM118 - not a dict
    if keys:
        query = query.where(t.DocumentRow.sender_key.in_(keys))
    found = {(order_id, number) for order_id, number in session.execute(query) if order_id}
    return found.pop() if len(found) == 1 else None


def _insert_ledger(
    session: Session, row: t.DocumentRow, document: Document, lines: list[t.OrderLine]
) -> tuple[list[str], list[LedgerRow]]:
    """Write the document's ledger rows; the lines that match no order line, and the rows as
    reading them back would give them."""
    by_id: dict[str, int] = {}
    by_item: dict[str, int] = {}
    for known in lines:
        by_id[known.line_id] = known.id
        for item in (known.seller_item_id, known.buyer_item_id, known.standard_item_id):
            if item:
                by_item.setdefault(item, known.id)
    rows: list[dict[str, object]] = []
    unmatched: list[str] = []
    for line in document.lines:
        # A response line the seller added (status 1: freight ...) is no order line's.
        added = document.kind is DocumentKind.ORDER_RESPONSE and line.status_code == "1"
        target = None if added else _match(line, by_id, by_item, document.kind)
        if target is None and not added:
            unmatched.append(line.line_id)
        rows.append(
            {
                "document_id": row.id,
                "order_line_id": target,
                "line_ref": line.order_line_ref or line.line_id,
                "quantity": line.quantity.value if line.quantity else None,
                "unit": line.quantity.unit if line.quantity else None,
                "status_code": line.status_code,
                "price": line.price,
                "amount": line.line_amount,
                "backorder": line.backorder_quantity.value if line.backorder_quantity else None,
            }
        )
    # one driver executemany (store.bulk): the ORM's bulk INSERT cost ~0.5 ms a document more
    insert_many(session.connection(), schema.document_lines, rows)
    return unmatched, [_as_read(values) for values in rows]


def _as_read(values: dict[str, Any]) -> LedgerRow:
    """A ledger row as reading it back gives it: numbers through their stored text (``1E+2``
    reads back as ``100``), so a recompute that counts the row without reading it states
    every quantity exactly as one that reads it."""
    return LedgerRow(
        document_id=values["document_id"],
        order_line_id=values["order_line_id"],
        line_ref=values["line_ref"],
        quantity=_read_back(values["quantity"]),
        unit=values["unit"],
        status_code=values["status_code"],
        price=_read_back(values["price"]),
        amount=_read_back(values["amount"]),
        backorder=_read_back(values["backorder"]),
    )


def _read_back(value: Decimal | None) -> Decimal | None:
    if value is None or (type(value) is Decimal and "E" not in str(value)):
        return value  # its text is what is stored, and reads back as the same Decimal
    return Decimal(str(decimal_text(value)))


def _match(
    line: Line, by_id: dict[str, int], by_item: dict[str, int], kind: DocumentKind
) -> int | None:
    if line.order_line_ref and line.order_line_ref in by_id:
        return by_id[line.order_line_ref]
    for item in (line.seller_item_id, line.buyer_item_id, line.standard_item_id):
        if item and item in by_item:
            return by_item[item]
    if kind in (DocumentKind.ORDER_CHANGE, DocumentKind.ORDER_RESPONSE):
        return by_id.get(line.line_id)
    return None
