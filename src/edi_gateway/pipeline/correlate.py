"""Correlation: an Order becomes an order record; every other document attaches to its order.

An order is identified by its buyer party and order ID. A document finds its order by the
order IDs it references plus the buyer (or, failing that, seller) party keys; a document whose
order is not known yet is kept as an ``orphan`` and attaches by itself when the order arrives.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from edi_gateway.domain.documents import (
    ApplicationResponse,
    Document,
    DocumentKind,
    Invoice,
    Line,
    Order,
    OrderResponse,
)
from edi_gateway.errors import DocumentError, ErrorCode
from edi_gateway.pipeline.history import SYSTEM, now, record
from edi_gateway.pipeline.ledger import recompute
from edi_gateway.store import tables as t

PROCESSED, ORPHAN = "processed", "orphan"


def correlate(
    session: Session, message: t.Message, document: Document, counterpart: str | None = None
) -> str:
    """Store ``document`` (from ``message``) against its order; return the message state.

    ``counterpart`` is the configured partner the document is addressed to, if any.
    """
    if isinstance(document, Order) and document.kind is DocumentKind.ORDER:
        attach_orphans(session, create_order(session, message, document, counterpart))
        return PROCESSED
    order = find_order(session, document)
    row = _document_row(message.id, document, order)
    session.add(row)
    session.flush()
    if order is None:
        refs = ", ".join(document.order_refs) or "no order reference"
        record(session, "document.orphan", f"waits for order {refs}", message_id=message.id)
        return ORPHAN
    attach(session, order, row, document, message)
    return PROCESSED


def create_order(
    session: Session, message: t.Message, document: Order, seller_partner: str | None = None
) -> t.Order:
    """Insert the order, its party keys and its lines."""
    buyer_key = document.buyer.key() if document.buyer else None
    if buyer_key is None:
        raise DocumentError(
            ErrorCode.INTERPRETATION_FAILED, "the order's buyer party has no identifier or name"
        )
    stamp = now()
    order = t.Order(
        buyer_key=buyer_key,
        order_number=document.document_id,
        buyer_name=document.buyer.name if document.buyer else None,
        seller_key=document.seller.key() if document.seller else None,
        seller_name=document.seller.name if document.seller else None,
        buyer_partner=message.partner,
        seller_partner=seller_partner,
        issue_date=document.issue_date,
        currency=document.currency,
        total_amount=document.total_amount,
        status="Received",
        response_code=None,
        cancelled=False,
        created_at=stamp,
        updated_at=stamp,
    )
    session.add(order)
    session.flush()
    _insert_keys(session, order.id, document)
    _insert_lines(session, order.id, document.lines, start=0)
    row = _document_row(message.id, document, order)
    session.add(row)
    message.order_id = order.id
    record(
        session,
        "order.received",
        f"order {document.document_id} with {len(document.lines)} lines",
        actor=message.source,
        order_id=order.id,
        message_id=message.id,
    )
    return order


def find_order(session: Session, document: Document) -> t.Order | None:
    """The one order this document belongs to, or None when unknown or ambiguous."""
    order_id = _order_via_documents(session, document)
    if order_id is not None:
        return session.get(t.Order, order_id)
    if not document.order_refs:
        return None
    candidates = list(
        session.scalars(select(t.Order).where(t.Order.order_number.in_(document.order_refs)))
    )
    if not candidates:
        return None
    for role, party in (("buyer", document.buyer), ("seller", document.seller)):
        keys = party.keys() if party else []
        if not keys:
            continue
        matched = set(
            session.scalars(
                select(t.OrderKey.order_id).where(
                    t.OrderKey.order_id.in_([c.id for c in candidates]),
                    t.OrderKey.role == role,
                    t.OrderKey.party_key.in_(keys),
                )
            )
        )
        if len(matched) == 1:
            return next(c for c in candidates if c.id in matched)
    return None


def attach(
    session: Session, order: t.Order, row: t.DocumentRow, document: Document, message: t.Message
) -> None:
    """Attach a document to its order: ledger lines, order changes, derived status, history."""
    row.order_id = order.id
    row.state = "attached"
    message.order_id = order.id
    if document.kind is DocumentKind.ORDER_CHANGE:
        _apply_order_change(session, order, document)
    unmatched = _insert_ledger(session, order, row, document)
    if order.seller_partner is None and document.kind not in _BUYER_KINDS:
        order.seller_partner = message.partner
    order.updated_at = now()
    detail = f"{document.kind.value} {document.document_id}"
    if unmatched:
        detail += f"; lines matching no order line: {', '.join(unmatched)}"
    record(
        session, "document.attached", detail, actor=SYSTEM, order_id=order.id, message_id=message.id
    )
    recompute(session, order, SYSTEM)


def attach_orphans(session: Session, order: t.Order) -> int:
    """Attach every orphan that references this order; return how many attached."""
    from edi_gateway.ubl.parse import parse
    from edi_gateway.ubl.read import interpret

    orphans = list(
        session.scalars(
            select(t.DocumentRow)
            .where(t.DocumentRow.state == ORPHAN, t.DocumentRow.order_ref == order.order_number)
            .order_by(t.DocumentRow.id)
        )
    )
    attached = 0
    for row in orphans:
        if row.message_id is None:
            continue
        message = session.get_one(t.Message, row.message_id)
        document = interpret(parse(message.payload, max_size=len(message.payload) + 1))
        if find_order(session, document) is not order:
            continue
        attach(session, order, row, document, message)
        message.state = PROCESSED
        message.updated_at = now()
        record(
            session,
            "message.processed",
            "orphan attached on arrival of its order",
            message_id=message.id,
            order_id=order.id,
        )
        attached += 1
    return attached


_BUYER_KINDS = {
    DocumentKind.ORDER_CHANGE,
    DocumentKind.ORDER_CANCELLATION,
    DocumentKind.RECEIPT_ADVICE,
}


def _order_via_documents(session: Session, document: Document) -> int | None:
    """Documents that reference other documents rather than the order find it through them."""
    refs: list[str] = []
    if isinstance(document, ApplicationResponse):
        refs = document.referenced_document_ids
    elif not document.order_refs:
        refs = document.billing_refs + document.despatch_refs
    if not refs:
        return None
    found = set(
        session.scalars(
            select(t.DocumentRow.order_id).where(
                t.DocumentRow.doc_number.in_(refs), t.DocumentRow.order_id.is_not(None)
            )
        )
    )
    return found.pop() if len(found) == 1 else None


def _document_row(message_id: int, document: Document, order: t.Order | None) -> t.DocumentRow:
    code: str | None = None
    amount = None
    if isinstance(document, OrderResponse):
        code = document.response_code
    elif isinstance(document, Invoice):
        code = document.type_code
        amount = document.payable_amount
    elif isinstance(document, ApplicationResponse):
        code = document.response_code
    elif isinstance(document, Order):
        amount = document.total_amount
    return t.DocumentRow(
        message_id=message_id,
        direction="in",
        kind=document.kind.value,
        doc_number=document.document_id,
        sender_key=(document.sender().key() if document.sender() else None),  # type: ignore[union-attr]
        order_id=order.id if order else None,
        order_ref=document.order_refs[0] if document.order_refs else None,
        issue_date=document.issue_date,
        code=code,
        state="attached" if order else ORPHAN,
        amount=amount,
        created_at=now(),
    )


def _insert_keys(session: Session, order_id: int, document: Document) -> None:
    rows = [
        {"order_id": order_id, "role": role, "party_key": key}
        for role, party in (("buyer", document.buyer), ("seller", document.seller))
        if party
        for key in party.keys()  # noqa: SIM118 - Party.keys() is not a dict view
    ]
    if rows:
        session.execute(insert(t.OrderKey), rows)


def _insert_lines(session: Session, order_id: int, lines: Sequence[Line], start: int) -> None:
    zero = 0
    rows = [
        {
            "order_id": order_id,
            "position": start + index,
            "line_id": line.line_id,
            "item_name": line.item_name,
            "seller_item_id": line.seller_item_id,
            "buyer_item_id": line.buyer_item_id,
            "standard_item_id": line.standard_item_id,
            "unit": line.quantity.unit if line.quantity else None,
            "price": line.price,
            "delivery_date": line.delivery_date,
            "status_code": None,
            "qty_ordered": line.quantity.value if line.quantity else zero,
            "qty_confirmed": None,
            "qty_despatched": zero,
            "qty_received": zero,
            "qty_invoiced": zero,
            "qty_credited": zero,
        }
        for index, line in enumerate(lines)
    ]
    if rows:
        session.execute(insert(t.OrderLine), rows)


def _apply_order_change(session: Session, order: t.Order, document: Document) -> None:
    existing = {
        line.line_id: line
        for line in session.scalars(select(t.OrderLine).where(t.OrderLine.order_id == order.id))
    }
    added = [line for line in document.lines if line.line_id not in existing]
    for line in document.lines:
        current = existing.get(line.line_id)
        if current is None:
            continue
        if line.quantity is not None:
            current.qty_ordered = line.quantity.value
        if line.price is not None:
            current.price = line.price
    _insert_lines(session, order.id, added, start=len(existing))


def _insert_ledger(
    session: Session, order: t.Order, row: t.DocumentRow, document: Document
) -> list[str]:
    order_lines = session.scalars(select(t.OrderLine).where(t.OrderLine.order_id == order.id))
    by_id: dict[str, int] = {}
    by_item: dict[str, int] = {}
    for known in order_lines:
        by_id[known.line_id] = known.id
        for item in (known.seller_item_id, known.buyer_item_id, known.standard_item_id):
            if item:
                by_item.setdefault(item, known.id)
    rows: list[dict[str, object]] = []
    unmatched: list[str] = []
    for line in document.lines:
        target = _match(line, by_id, by_item, document.kind)
        if target is None:
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
            }
        )
    if rows:
        session.execute(insert(t.DocumentLine), rows)
    return unmatched


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
