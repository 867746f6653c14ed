"""Cancellations towards the supplier and the buyer (docs/adr/0008-cancellations.md).

``pipeline/cancellations.py`` decides, as data, what becomes of a buyer's cancellation. This
is the react step that follows, and the operator's answer:

- **the supplier** hears of a cancellation that takes effect or is requested: a forward that
  has not reached it is withdrawn (``outbound/cancel_supplier.py``), or, once the order has
  reached it, the cancellation is sent in its formats through the outbox;
- **the buyer** is told the outcome through its outbound connector: a Peppol T116 Order
  Response Advanced answering its Order Cancellation (T115), AP "Order cancelled as requested
  by cancellation <id>" when it took effect, RE "Cancellation <id> refused by the supplier:
  <reason>" when it was refused (docs/adr/0025-advanced-ordering.md). These responses
  are recorded with state ``notice``: listed with the order, outside the ledger, so they never
  move its status (the order stays Cancelled; a refusal leaves it as it was);
- ``answer`` (``edi-gateway orders cancel ORDER --accepted|--refused``) decides a pending
  cancellation for the supplier, recorded with the operator's name.

Every step writes history events carrying the cancellation's message; those events are also
what makes the step idempotent (a step already recorded is not done again).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import or_, select

from edi_gateway.errors import GatewayError
from edi_gateway.outbound import cancel_supplier as supplier_side
from edi_gateway.outbound.issuing import NotAllowed, queue_to_buyer
from edi_gateway.pipeline.cancellations import (
    ACCEPTED,
    CANCELLATION,
    DECIDED,
    PENDING,
    REFUSED,
    SENT,
    accepted_note,
    decide,
    pending,
    refused_note,
    supplier_of,
)
from edi_gateway.pipeline.history import SYSTEM, now, record

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from edi_gateway.config import Settings
    from edi_gateway.store.db import Store
    from edi_gateway.store.tables import DocumentRow, Order

NOTICE = "notice"
"""The state of an Order Response telling the buyer a cancellation's outcome."""
NOT_SENT = "cancellation.not_sent"
TOLD, NOT_TOLD = "cancellation.buyer_told", "cancellation.buyer_not_told"
NO_REASON = "no reason given"


@dataclass(frozen=True, slots=True)
class Answered:
    """An operator's answer: the order, the cancellations decided, the order's status now."""

    order_id: int
    order_number: str
    cancellations: list[str]
    outcome: str
    status: str
    outbox_ids: list[int]


def settle_cancellations(
    store: Store, settings: Settings, message_ids: Sequence[int], *, actor: str = SYSTEM
) -> list[int]:
    """Tell supplier and buyer what they have not been told yet about the cancellations of
    the orders these messages touched; return the outbox ids queued."""
    if not message_ids:
        return []
    from edi_gateway.store.tables import DocumentRow, Message, Order

    ids = list(message_ids)
    touched = select(Message.order_id).where(Message.id.in_(ids), Message.order_id.is_not(None))
    queued: list[int] = []
    with store.session() as session:
        rows = session.scalars(
            select(DocumentRow)
            .where(
                DocumentRow.kind == CANCELLATION,
                DocumentRow.state.in_((PENDING, *DECIDED)),
                or_(DocumentRow.message_id.in_(ids), DocumentRow.order_id.in_(touched)),
            )
            .order_by(DocumentRow.id)
        )
        by_order: dict[int, list[DocumentRow]] = defaultdict(list)
        for row in rows:
            if row.order_id is not None and row.message_id is not None:
                by_order[row.order_id].append(row)
        for order_id, group in by_order.items():
            order = session.get_one(Order, order_id)
            queued += _settle(session, settings, order, group, actor)
    return queued


def answer(
    store: Store,
    settings: Settings,
    order_ref: str,
    *,
    accepted: bool,
    reason: str | None,
    actor: str,
) -> Answered:
    """Decide the pending cancellations of ``order_ref`` for the supplier, then tell both sides.

    NotAllowed (saying what there is) when the order has no pending cancellation.
    """
    from edi_gateway.pipeline.ledger import recompute
    from edi_gateway.store.queries import locked_order

    text = (reason or "").strip()
    with store.session() as session:
        order = locked_order(session, order_ref)  # two operators answering: one answer
        waiting = pending(session, order.id)
        if not waiting:
            raise NotAllowed(_nothing_pending(session, order))
        if accepted:
            said = f" ({text})" if text else ""
            state = ACCEPTED
            decide(
                session, order, waiting, state, lambda n: f"{accepted_note(n)}{said}", actor=actor
            )
        else:
            state = REFUSED
            why = text or NO_REASON
            decide(session, order, waiting, state, lambda n: refused_note(n, why), actor=actor)
        recompute(session, order, actor)
        queued = _settle(session, settings, order, waiting, actor)
        return Answered(
            order.id,
            order.order_number,
            [row.doc_number for row in waiting],
            state,
            order.status,
            queued,
        )


def _nothing_pending(session: Session, order: Order) -> str:
    from edi_gateway.store.tables import DocumentRow

    known = session.execute(
        select(DocumentRow.doc_number, DocumentRow.state).where(
            DocumentRow.order_id == order.id, DocumentRow.kind == CANCELLATION
        )
    ).all()
    listing = ", ".join(f"{number} {state}" for number, state in known)
    return (
        f"order {order.order_number} has no cancellation waiting for the supplier's answer, "
        "so there is nothing to accept or refuse"
        + (f" (its cancellations: {listing})" if listing else " (the buyer has not cancelled it)")
        + "; `orders cancel` answers a buyer's pending cancellation, it does not cancel orders"
    )


def _settle(
    session: Session, settings: Settings, order: Order, rows: list[DocumentRow], actor: str
) -> list[int]:
    done = _recorded(session, [r.message_id for r in rows if r.message_id is not None])
    queued: list[int] = []
    for row in rows:
        events = done.get(row.message_id or 0, set())
        if row.state in (PENDING, ACCEPTED) and not events & {SENT, NOT_SENT}:
            _tell_supplier(session, settings, order, row, actor)
        if row.state in DECIDED and not events & {TOLD, NOT_TOLD}:
            if row.state == ACCEPTED:
                why = f"cancellation {row.doc_number} accepted"
                supplier_side.withdraw(session, order, why=why, actor=actor)
            outbox_id = _tell_buyer(session, settings, order, row, actor)
            if outbox_id is not None:
                queued.append(outbox_id)
    return queued


def _recorded(session: Session, message_ids: list[int]) -> dict[int, set[str]]:
    from edi_gateway.store.tables import HistoryEvent

    found: dict[int, set[str]] = defaultdict(set)
    if message_ids:
        for message_id, event in session.execute(
            select(HistoryEvent.message_id, HistoryEvent.event).where(
                HistoryEvent.message_id.in_(message_ids),
                HistoryEvent.event.in_((SENT, NOT_SENT, TOLD, NOT_TOLD)),
            )
        ):
            if message_id is not None:
                found[message_id].add(event)
    return found


def _tell_supplier(
    session: Session, settings: Settings, order: Order, row: DocumentRow, actor: str
) -> None:
    """Send the cancellation to each supplier the order reached; say why where it is not."""
    number, who = row.doc_number, supplier_of(order)
    forwards = supplier_side.forwards_of(session, order.id)
    if not forwards:
        detail = (
            f"cancellation {number} not sent: {who} never got order {order.order_number} "
            "from the gateway"
        )
        if row.state == PENDING:
            detail += (
                f"; it waits for {who}'s Order Response or `edi-gateway orders cancel "
                f"{order.id} --accepted|--refused`"
            )
        _note(session, order, row, NOT_SENT, detail, actor=actor)
    for forward in forwards:
        if not supplier_side.reached(session, forward):
            later = (
                "its forward is withdrawn instead"
                if row.state == ACCEPTED
                else f"answer it with `edi-gateway orders cancel {order.id} --accepted|--refused`"
            )
            detail = (
                f"cancellation {number} not sent to {forward.partner}: order "
                f"{order.order_number} has not reached it ({forward.state}); {later}"
            )
            _note(session, order, row, NOT_SENT, detail, actor=actor)
            continue
        try:
            with session.begin_nested():
                names = supplier_side.send(session, settings, order, row, forward)
        except Exception as exc:  # noqa: BLE001 -- one bad rendering must not stop the rest
            message = getattr(exc, "message", None) or str(exc) or type(exc).__name__
            record(
                session,
                "cancellation.send_failed",
                f"cancellation {number} to {forward.partner}: {message}"[:2000],
                actor=actor,
                order_id=order.id,
            )
            continue
        what = "request" if row.state == PENDING else "notice"
        detail = f"cancellation {number} ({what}) to {forward.partner}: {', '.join(names)}"
        _note(session, order, row, SENT, detail, actor=actor)


def _tell_buyer(
    session: Session, settings: Settings, order: Order, row: DocumentRow, actor: str
) -> int | None:
    """Queue the T116 that tells the buyer the outcome; None when it cannot be told.

    Peppol advanced ordering answers an Order Cancellation with an Order Response Advanced:
    AP, the cancellation is accepted; RE, it is refused (docs/adr/0025-advanced-ordering.md).
    """
    from edi_gateway.outbound.issuing import buyer_connector

    number = row.doc_number
    try:
        connector = buyer_connector(settings, order)
    except NotAllowed as exc:
        _note(session, order, row, NOT_TOLD, f"cancellation {number}: {exc.message}", actor=actor)
        return None
    accepted = row.state == ACCEPTED
    code, note = ("AP", accepted_note(number)) if accepted else ("RE", _refusal(session, row))
    try:
        with session.begin_nested():
            outbox_id, doc_number = _queue_notice(
                session, settings, order, code, note, connector=connector, actor=actor
            )
    except GatewayError as exc:
        record(
            session,
            "cancellation.buyer_failed",
            f"cancellation {number}: {exc.message}"[:2000],
            actor=actor,
            order_id=order.id,
        )
        return None
    _note(session, order, row, TOLD, f"OrderResponse {doc_number} ({code}): {note}", actor=actor)
    return outbox_id


def _queue_notice(
    session: Session,
    settings: Settings,
    order: Order,
    code: str,
    note: str,
    *,
    connector: str,
    actor: str,
) -> tuple[int, str]:
    """Compose, check, record (state ``notice``) and queue the T116 for the buyer."""
    from edi_gateway.outbound.issuing import written
    from edi_gateway.outbound.respond import Decision, compose_response
    from edi_gateway.pipeline.orders import document_row
    from edi_gateway.store.tables import DocumentRow
    from edi_gateway.ubl.write import write_order_response

    response = compose_response(session, order, [], Decision(code, reason=note), advanced=True)
    payload = written(response, write_order_response)
    values = document_row(None, response, order.id, now(), direction="out")
    values["state"] = NOTICE
    row = DocumentRow(**values)
    session.add(row)
    session.flush()
    record(
        session,
        "document.issued",
        f"OrderResponse {response.document_id} ({code}) to the buyer: {note}",
        actor=actor,
        order_id=order.id,
    )
    outbox_id = queue_to_buyer(
        session, order, connector, response, payload, document_id=row.id, settings=settings
    )
    return outbox_id, response.document_id


def _refusal(session: Session, row: DocumentRow) -> str:
    """What the buyer is told of a refusal: the detail of its latest refusal event."""
    from edi_gateway.store.tables import HistoryEvent

    said = session.scalar(
        select(HistoryEvent.detail)
        .where(
            HistoryEvent.message_id == row.message_id, HistoryEvent.event == "cancellation.refused"
        )
        .order_by(HistoryEvent.id.desc())
        .limit(1)
    )
    return said or refused_note(row.doc_number, NO_REASON)


def _note(
    session: Session, order: Order, row: DocumentRow, event: str, detail: str, *, actor: str
) -> None:
    record(session, event, detail[:2000], actor=actor, order_id=order.id, message_id=row.message_id)
