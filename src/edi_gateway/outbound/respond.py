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

from sqlalchemy import select

from edi_gateway.domain.documents import DocumentKind, Line, OrderResponse, Quantity, Substitute
from edi_gateway.domain.status import OrderStatus
from edi_gateway.outbound.issuing import (
    Issued,
    NotAllowed,
    buyer_connector,
    next_number,
    on_order,
    original_order,
    record_and_queue,
    written,
)

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


class ResponseRefused(NotAllowed):
    """The order's state or the request does not allow this response."""


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
    notes: tuple[tuple[str, str], ...] = field(default_factory=tuple)
    """(order line, note) pairs, e.g. ("3", "temporarily out of stock"); CA only."""
    substitutes: tuple[tuple[str, str, str], ...] = ()
    """(order line, seller item ID, item name) triples: the seller delivers that item instead
    (T76 ``SellerSubstitutedLineItem``; the line goes with status 3, changed); CA only."""


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
    _check_decision(decision)
    return on_order(
        store, order_ref, lambda s, o: issue(s, settings, o, decision, actor=actor, force=force)
    )


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
    from edi_gateway.pipeline.history import record
    from edi_gateway.store.tables import OrderLine
    from edi_gateway.ubl.write import write_order_response

    _check_decision(decision)
    _check_state(order, decision, force)
    connector = buyer_connector(settings, order)
    lines = list(
        session.scalars(
            select(OrderLine).where(OrderLine.order_id == order.id).order_by(OrderLine.position)
        )
    )
    response = _compose(session, order, lines, decision)
    payload = written(response, write_order_response)
    status_before = order.status
    issued = record_and_queue(session, order, response, payload, connector=connector, actor=actor)
    if force and status_before in MOVED_ON:
        record(
            session,
            "response.forced",
            f"{decision.code} despite {status_before}",
            actor=actor,
            order_id=order.id,
        )
    return issued


def _check_decision(decision: Decision) -> None:
    if decision.code not in CODES:
        raise ResponseRefused(f"response code {decision.code!r}: expected one of {CODES}")
    if decision.code == "RE" and not (decision.reason or "").strip():
        raise ResponseRefused("a rejection needs a reason (--reason TEXT)")
    if decision.code == "CA" and not (decision.changes or decision.substitutes):
        raise ResponseRefused("accepting with changes needs at least one --change LINE:QTY[:DATE]")
    if decision.code != "CA" and (decision.changes or decision.notes or decision.substitutes):
        raise ResponseRefused(
            "line changes, line notes and substitutes go only with an acceptance with changes (CA)"
        )
    seen = [c.line_id for c in decision.changes]
    if len(seen) != len(set(seen)):
        raise ResponseRefused("a line is changed twice; give each line once")
    if any(c.quantity < 0 for c in decision.changes):
        raise ResponseRefused("a changed quantity cannot be negative (0 = line not accepted)")
    _check_substitutes(decision)


def _check_substitutes(decision: Decision) -> None:
    substituted = [line_id for line_id, _, _ in decision.substitutes]
    if len(substituted) != len(set(substituted)):
        raise ResponseRefused("a line is substituted twice; give each line one substitute")
    if any(not (item.strip() and name.strip()) for _, item, name in decision.substitutes):
        raise ResponseRefused("a substitute needs a seller item ID and a name (LINE:ITEM:NAME)")
    refused = sorted(c.line_id for c in decision.changes if c.quantity == 0)
    both = [line_id for line_id in refused if line_id in substituted]
    if both:
        raise ResponseRefused(
            f"line {', '.join(both)} is not accepted (quantity 0) and cannot be substituted"
        )


def _check_state(order: OrderRow, decision: Decision, force: bool) -> None:
    if order.status in FINAL or (order.status in MOVED_ON and not force):
        raise ResponseRefused(
            f"order {order.order_number} is {order.status}: an Order Response no longer fits"
            + ("" if order.status in FINAL else "; use --force to send one anyway")
        )


def _compose(
    session: Session, order: OrderRow, lines: list[OrderLine], decision: Decision
) -> OrderResponse:

    original = original_order(session, order)
    response = OrderResponse(
        kind=DocumentKind.ORDER_RESPONSE,
        document_id=next_number(session, order, DocumentKind.ORDER_RESPONSE, "OR"),
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
        substitutes = {
            line_id: Substitute(item.strip(), name.strip())
            for line_id, item, name in decision.substitutes
        }
        response.lines = _changed_lines(
            lines, decision.changes, dict(decision.notes), set(substitutes)
        )
        response.substitutes = substitutes
    return response


def _changed_lines(
    lines: list[OrderLine],
    changes: tuple[LineChange, ...],
    notes: dict[str, str],
    substituted: set[str],
) -> list[Line]:
    by_id = {c.line_id: c for c in changes}
    unknown = sorted((set(by_id) | set(notes) | substituted) - {line.line_id for line in lines})
    if unknown:
        known = ", ".join(line.line_id for line in lines)
        raise ResponseRefused(f"no order line {', '.join(unknown)}; the lines are: {known}")
    out: list[Line] = []
    for line in lines:
        change = by_id.get(line.line_id)
        quantity = line.qty_ordered if change is None else change.quantity
        status = ACCEPTED if change is None else (NOT_ACCEPTED if quantity == 0 else CHANGED)
        if line.line_id in substituted:
            status = CHANGED
        composed = Line(line_id=line.line_id, quantity=Quantity(quantity, line.unit))
        composed.order_line_ref = line.line_id
        composed.item_name = line.item_name
        composed.seller_item_id = line.seller_item_id
        composed.price = line.price
        composed.status_code = status
        composed.delivery_date = change.delivery_date if change else None
        composed.note = notes.get(line.line_id)
        out.append(composed)
    return out
