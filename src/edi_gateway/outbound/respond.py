"""Order Responses (Peppol T76) the gateway issues: on an operator's command or an auto rule.

``respond`` composes the response from the stored order and the decision, writes the UBL,
checks it against the UBL 2.1 XSD (a document that fails is an internal error and is never
queued), records it as an outgoing document of the order (its line statuses and quantities
move the order's status like a received response would) and queues it in the outbox for the
buyer's outbound connector, all in one transaction.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import TYPE_CHECKING

from sqlalchemy import func, select

from edi_gateway.domain.documents import DocumentKind, Line, Order, OrderResponse, Quantity
from edi_gateway.domain.status import OrderStatus
from edi_gateway.errors import ErrorCode, GatewayError
from edi_gateway.outbound.outbox import Outgoing, enqueue

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from edi_gateway.config import Settings
    from edi_gateway.store.db import Store
    from edi_gateway.store.tables import Order as OrderRow
    from edi_gateway.store.tables import OrderLine

CODES = ("AB", "AP", "RE", "CA")
ACCEPTED, CHANGED, NOT_ACCEPTED = "5", "3", "7"
FINAL = {OrderStatus.CANCELLED.value, OrderStatus.CLOSED.value}
MOVED_ON = {
    OrderStatus.PARTIALLY_DELIVERED.value,
    OrderStatus.FULLY_DELIVERED.value,
    OrderStatus.PARTIALLY_INVOICED.value,
    OrderStatus.FULLY_INVOICED.value,
    OrderStatus.REJECTED.value,
}


class ResponseRefused(GatewayError):
    """The order's state or the request does not allow this response."""

    def __init__(self, message: str) -> None:
        super().__init__(ErrorCode.NOT_ALLOWED, message)


@dataclass(frozen=True, slots=True)
class LineChange:
    """A changed line: its new quantity (0 = not accepted) and, optionally, a new date."""

    line_id: str
    quantity: Decimal
    delivery_date: date | None = None


@dataclass(frozen=True, slots=True)
class Decision:
    """What to answer: AB, AP, RE (with a reason) or CA (with the changed lines)."""

    code: str
    reason: str | None = None
    changes: tuple[LineChange, ...] = field(default_factory=tuple)


@dataclass(frozen=True, slots=True)
class Issued:
    """What ``respond`` did."""

    order_id: int
    document_id: int
    doc_number: str
    outbox_id: int
    status: str


def respond(
    store: Store,
    settings: Settings,
    order_ref: str,
    decision: Decision,
    *,
    actor: str,
    force: bool = False,
) -> Issued:
    """Issue an Order Response for the order ``order_ref`` (see ``store.queries.resolve_order``)."""
    from edi_gateway.store.queries import resolve_order

    _check_decision(decision)
    with store.session() as session:
        order = resolve_order(session, order_ref)
        return issue(session, settings, order, decision, actor=actor, force=force)


def issue(
    session: Session,
    settings: Settings,
    order: OrderRow,
    decision: Decision,
    *,
    actor: str,
    force: bool = False,
) -> Issued:
    """``respond`` inside the caller's transaction, for an order row already loaded."""
    from edi_gateway.pipeline.correlate import MessageRef, attach
    from edi_gateway.pipeline.history import now, record
    from edi_gateway.pipeline.orders import document_row
    from edi_gateway.store.tables import DocumentRow, OrderLine

    _check_decision(decision)
    _check_state(order, decision, force)
    connector = _buyer_connector(settings, order)
    lines = list(
        session.scalars(
            select(OrderLine).where(OrderLine.order_id == order.id).order_by(OrderLine.position)
        )
    )
    response = _compose(session, order, lines, decision)
    payload = _written(response)
    row = DocumentRow(**document_row(None, response, order.id, now(), direction="out"))
    session.add(row)
    session.flush()
    attach(session, order, row, response, MessageRef(None, "gateway", None), actor=actor)
    if force and (order.status in MOVED_ON or order.status in FINAL):
        record(
            session,
            "response.forced",
            f"{decision.code} despite {order.status}",
            actor=actor,
            order_id=order.id,
        )
    outbox_id = enqueue(
        session,
        Outgoing(
            partner=order.buyer_partner or "",
            connector=connector,
            kind=DocumentKind.ORDER_RESPONSE.value,
            doc_number=response.document_id,
            payload=payload,
            document_id=row.id,
            order_id=order.id,
        ),
    )
    return Issued(order.id, row.id, response.document_id, outbox_id, order.status)


def _check_decision(decision: Decision) -> None:
    if decision.code not in CODES:
        raise ResponseRefused(f"response code {decision.code!r}: expected one of {CODES}")
    if decision.code == "RE" and not (decision.reason or "").strip():
        raise ResponseRefused("a rejection needs a reason (--reason TEXT)")
    if decision.code == "CA" and not decision.changes:
        raise ResponseRefused("accepting with changes needs at least one --change LINE:QTY[:DATE]")
    if decision.code != "CA" and decision.changes:
        raise ResponseRefused("line changes go only with an acceptance with changes (CA)")
    seen = [c.line_id for c in decision.changes]
    if len(seen) != len(set(seen)):
        raise ResponseRefused("a line is changed twice; give each line once")
    if any(c.quantity < 0 for c in decision.changes):
        raise ResponseRefused("a changed quantity cannot be negative (0 = line not accepted)")


def _check_state(order: OrderRow, decision: Decision, force: bool) -> None:
    if order.status in FINAL or (order.status in MOVED_ON and not force):
        raise ResponseRefused(
            f"order {order.order_number} is {order.status}: an Order Response no longer fits"
            + ("" if order.status in FINAL else "; use --force to send one anyway")
        )


def _buyer_connector(settings: Settings, order: OrderRow) -> str:
    partner = settings.partner(order.buyer_partner) if order.buyer_partner else None
    if partner is None:
        raise ResponseRefused(
            f"the buyer of order {order.order_number} ({order.buyer_key}) is not a partner in "
            f"{settings.path}; add it with an outbound connector first"
        )
    if partner.outbound is None:
        raise ResponseRefused(
            f"partner {partner.id!r} has no outbound connector: set partners[].outbound "
            f"in {settings.path}"
        )
    return partner.outbound


def _compose(
    session: Session, order: OrderRow, lines: list[OrderLine], decision: Decision
) -> OrderResponse:
    from edi_gateway.store.tables import DocumentRow

    original = _original_order(session, order)
    sent = session.scalar(
        select(func.count()).where(
            DocumentRow.order_id == order.id,
            DocumentRow.direction == "out",
            DocumentRow.kind == DocumentKind.ORDER_RESPONSE.value,
        )
    )
    response = OrderResponse(
        kind=DocumentKind.ORDER_RESPONSE,
        document_id=f"{order.order_number}-OR{(sent or 0) + 1}",
        issue_date=datetime.now(UTC).date(),
        currency=order.currency,
        buyer=original.buyer,
        seller=original.seller,
        order_refs=[order.order_number],
        response_code=decision.code,
        reason=decision.reason,
        notes=[decision.reason] if decision.reason else [],
    )
    if decision.code == "CA":
        response.lines = _changed_lines(lines, decision.changes)
    return response


def _changed_lines(lines: list[OrderLine], changes: tuple[LineChange, ...]) -> list[Line]:
    by_id = {c.line_id: c for c in changes}
    unknown = sorted(set(by_id) - {line.line_id for line in lines})
    if unknown:
        known = ", ".join(line.line_id for line in lines)
        raise ResponseRefused(f"no order line {', '.join(unknown)}; the lines are: {known}")
    out: list[Line] = []
    for line in lines:
        change = by_id.get(line.line_id)
        quantity = line.qty_ordered if change is None else change.quantity
        status = ACCEPTED if change is None else (NOT_ACCEPTED if quantity == 0 else CHANGED)
        composed = Line(line_id=line.line_id, quantity=Quantity(quantity, line.unit))
        composed.order_line_ref = line.line_id
        composed.item_name = line.item_name
        composed.seller_item_id = line.seller_item_id
        composed.price = line.price
        composed.status_code = status
        composed.delivery_date = change.delivery_date if change else None
        out.append(composed)
    return out


def _original_order(session: Session, order: OrderRow) -> Order:
    """The order document as received (parties with their endpoints come from it)."""
    from edi_gateway.store.tables import DocumentRow, Message
    from edi_gateway.ubl.parse import parse
    from edi_gateway.ubl.read import interpret

    payload = session.scalar(
        select(Message.payload)
        .join(DocumentRow, DocumentRow.message_id == Message.id)
        .where(DocumentRow.order_id == order.id, DocumentRow.kind == DocumentKind.ORDER.value)
        .order_by(DocumentRow.id)
        .limit(1)
    )
    if payload is None:
        raise GatewayError(ErrorCode.INTERNAL_ERROR, f"order {order.id} has no stored Order")
    document = interpret(parse(payload, max_size=len(payload) + 1))
    assert isinstance(document, Order)
    return document


def _written(response: OrderResponse) -> bytes:
    """The UBL bytes, checked against the UBL 2.1 XSD before anything can leave."""
    from edi_gateway.ubl.validate import validate_document
    from edi_gateway.ubl.write import WriteError, write_order_response

    try:
        payload = write_order_response(response)
    except WriteError as exc:
        raise GatewayError(
            ErrorCode.INTERNAL_ERROR,
            f"cannot write Order Response {response.document_id}: {exc}; nothing was sent",
        ) from exc
    try:
        validate_document(payload, max_size=len(payload) + 1)
    except GatewayError as exc:
        raise GatewayError(
            ErrorCode.INTERNAL_ERROR,
            f"the generated Order Response {response.document_id} fails the UBL 2.1 schema "
            f"({exc}); nothing was sent",
        ) from exc
    return payload
