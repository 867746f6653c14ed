"""Cancellations in the ledger: a buyer's OrderCancellation, and the answer it gets.

Data only, in the caller's transaction (docs/adr/0008-cancellations.md): the state of each
cancellation document (``pending``, ``accepted``, ``refused``; ``documents.state``) and a
history event for every decision. ``ledger.recompute`` derives ``Cancelled`` from an accepted
one. Telling the supplier and the buyer is the react step's (``outbound/cancel.py``).

- A cancellation that arrives is decided by :func:`edi_gateway.domain.cancellation.on_arrival`.
- A supplier's Order Response that arrives while one is pending answers it, not the order: it
  is kept with state ``answer``, outside the ledger (so its RE never makes the order Rejected).
  A CA that keeps some line refuses the cancellation and, as it says what the supplier will
  deliver, stays an ordinary (``attached``) response of the order.
- A supplier's Order Response to an order already cancelled is kept outside the ledger too
  (state ``late``); one that does not agree raises the order's attention
  (``_after_cancellation``).
- An operator answers with :func:`decide` (``edi-gateway orders cancel``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from sqlalchemy import select

from edi_gateway.domain.cancellation import CancellationState, Verdict, answer, on_arrival
from edi_gateway.domain.documents import Document, DocumentKind, OrderResponse
from edi_gateway.domain.status import ZERO, LineQuantities
from edi_gateway.pipeline.history import SYSTEM, record
from edi_gateway.store import tables as t

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

CANCELLATION = DocumentKind.ORDER_CANCELLATION.value
PENDING, ACCEPTED, REFUSED = (s.value for s in CancellationState)
DECIDED = (ACCEPTED, REFUSED)
IN_EFFECT = frozenset({ACCEPTED, "attached"})
"""Cancellation states that make the order Cancelled (``attached``: stores from before 0008)."""
ANSWER = "answer"
"""The state of a supplier's Order Response that answered a pending cancellation."""
LATE = "late"
"""The state of a supplier's Order Response to an order a cancellation had ended: outside the
ledger, relayed to the buyer, counted as the supplier's answer (KPIs)."""
SENT = "cancellation.sent"
"""The history event of a cancellation sent to the supplier (``outbound/cancel.py``)."""
RESPONSES = (DocumentKind.ORDER_RESPONSE, DocumentKind.ORDER_RESPONSE_SIMPLE)
NOT_ACCEPTED = "7"

Note = Callable[[str], str]
"""A cancellation's ID -> the words of a decision about it."""


def accepted_note(cancellation_id: str) -> str:
    """What the buyer is told when its cancellation took effect."""
    return f"Order cancelled as requested by cancellation {cancellation_id}"


def refused_note(cancellation_id: str, reason: str) -> str:
    """What the buyer is told when its cancellation was refused."""
    return f"Cancellation {cancellation_id} refused by the supplier: {reason}"


def supplier_of(order: t.Order) -> str:
    """The order's supplier in words: partner id, else name, else party key."""
    return order.seller_partner or order.seller_name or order.seller_key or "the supplier"


def on_received(
    session: Session, order: t.Order, row: t.DocumentRow, document: Document, message_id: int | None
) -> None:
    """Apply the cancellation rules to a document received for ``order`` (just attached)."""
    if document.kind is DocumentKind.ORDER_CANCELLATION:
        _arrive(session, order, row, message_id)
    elif document.kind in RESPONSES and isinstance(document, OrderResponse):
        _answer(session, order, row, document)


def pending(session: Session, order_id: int) -> list[t.DocumentRow]:
    """The order's cancellations waiting for an answer, oldest first."""
    return list(
        session.scalars(
            select(t.DocumentRow)
            .where(
                t.DocumentRow.order_id == order_id,
                t.DocumentRow.kind == CANCELLATION,
                t.DocumentRow.state == PENDING,
            )
            .order_by(t.DocumentRow.id)
        )
    )


def decide(
    session: Session,
    order: t.Order,
    rows: Sequence[t.DocumentRow],
    state: str,
    note: Note,
    *,
    actor: str = SYSTEM,
) -> None:
    """Give these cancellations ``state`` (accepted or refused), each with a history event.

    The event carries the cancellation's message, and for a refusal its detail is exactly what
    the buyer is told. The caller recomputes the order (``ledger.recompute``).
    """
    if state not in DECIDED:
        raise ValueError(f"a cancellation is decided as accepted or refused, not {state!r}")
    for row in rows:
        row.state = state
        record(
            session,
            f"cancellation.{state}",
            note(row.doc_number),
            actor=actor,
            order_id=order.id,
            message_id=row.message_id,
        )


def _arrive(session: Session, order: t.Order, row: t.DocumentRow, message_id: int | None) -> None:
    verdict = _verdict(session, order)
    row.state = verdict.state.value
    number = row.doc_number
    if verdict.state is CancellationState.PENDING:
        event = "cancellation.requested"
        detail = f"cancellation {number} requested, waiting for {supplier_of(order)}: {verdict.why}"
    elif verdict.state is CancellationState.ACCEPTED:
        event, detail = "cancellation.accepted", f"{accepted_note(number)}: {verdict.why}"
    else:
        event, detail = "cancellation.refused", refused_note(number, verdict.why)
    record(session, event, detail, order_id=order.id, message_id=message_id)


def _verdict(session: Session, order: t.Order) -> Verdict:
    lines = session.scalars(select(t.OrderLine).where(t.OrderLine.order_id == order.id))
    return on_arrival(
        (
            LineQuantities(
                ordered=line.qty_ordered,
                confirmed=line.qty_confirmed,
                despatched=line.qty_despatched,
            )
            for line in lines
        ),
        response_code=order.response_code,
        cancelled=order.cancelled,
    )


def _answer(session: Session, order: t.Order, row: t.DocumentRow, document: OrderResponse) -> None:
    waiting = pending(session, order.id)
    if not waiting:
        if order.cancelled:
            _after_cancellation(session, order, row, document)
        return
    code = document.response_code
    state = answer(code, every_line_zero=_every_line_zero(session, order, row))
    what = f"{document.kind.value} {document.document_id} ({code or 'no code'})"
    numbers = ", ".join(r.doc_number for r in waiting)
    if not (state == REFUSED and code == "CA"):  # a CA keeping lines also answers the order
        row.state = ANSWER
    who = supplier_of(order)
    if state is None:
        record(
            session,
            "cancellation.acknowledged",
            f"{what} from {who} acknowledges cancellation {numbers}; waiting for its answer",
            order_id=order.id,
        )
        return
    record(
        session,
        "cancellation.answered",
        f"{what} from {who} answers cancellation {numbers}: {state}",
        order_id=order.id,
    )
    if state == ACCEPTED:
        decide(session, order, waiting, ACCEPTED, lambda n: f"{accepted_note(n)}: {who} agreed")
        return
    reason = _reason(document)
    decide(session, order, waiting, REFUSED, lambda n: refused_note(n, reason))


def _after_cancellation(
    session: Session, order: t.Order, row: t.DocumentRow, document: OrderResponse
) -> None:
    """A supplier's Order Response to an order a cancellation already ended answers no order
    that stands: it is kept with state ``late``, outside the ledger (it used to replace the
    confirmations of the cancelled order, silently), and still relayed to the buyer like any
    reply (``outbound/relay.py``). What it says depends on what it answers:

    - a T116 (advanced ordering) response to a cancellation the supplier was sent answers the
      cancellation, as a pending one's answer would (:func:`answer`): AP or a CA of zeros
      agrees, RE or a CA that delivers refuses;
    - any other (a T76, which cannot answer a cancellation, or any response when the supplier
      was never sent one) answers the order it had: AP or a CA that delivers means goods may
      be on their way to a buyer who cancelled, RE or a CA of zeros agrees with the buyer.

    AB only acknowledges. A refusal is ``cancellation.disputed`` and raises the order's
    attention; the cancellation stays accepted (the buyer has been told)."""
    from edi_gateway.ubl.write_order_response import is_advanced  # rare: not at import

    row.state = LATE
    code = document.response_code
    zeros = _every_line_zero(session, order, row)
    if is_advanced(document.profile_id) and _sent(session, order):
        said = answer(code, every_line_zero=zeros)
    elif code == "AP" or (code == "CA" and not zeros):
        said = CancellationState.REFUSED
    else:
        said = CancellationState.ACCEPTED if code in ("RE", "CA") else None
    ended = session.scalars(
        select(t.DocumentRow.doc_number)
        .where(
            t.DocumentRow.order_id == order.id,
            t.DocumentRow.kind == CANCELLATION,
            t.DocumentRow.state.in_(IN_EFFECT),
        )
        .order_by(t.DocumentRow.id)
    )
    what = f"{document.kind.value} {document.document_id} ({code or 'no code'})"
    head = (
        f"{what} from {supplier_of(order)} arrived after cancellation "
        f"{', '.join(ended)} ended order {order.order_number}; kept outside its quantities"
    )
    if said is CancellationState.REFUSED:
        record(
            session,
            "cancellation.disputed",
            f"{head}: it does not agree ({_reason(document)})",
            order_id=order.id,
        )
        order.attention = True
        return
    verdict = "it agrees" if said is CancellationState.ACCEPTED else "it acknowledges"
    record(session, "cancellation.answered", f"{head}: {verdict}", order_id=order.id)


def _sent(session: Session, order: t.Order) -> bool:
    """Whether the supplier was sent a cancellation of ``order`` (``outbound/cancel.py``)."""
    sent = select(t.HistoryEvent.id).where(
        t.HistoryEvent.order_id == order.id, t.HistoryEvent.event == SENT
    )
    return session.scalars(sent.limit(1)).first() is not None


def _reason(document: OrderResponse) -> str:
    said = document.reason or "; ".join(n for n in document.notes if n.strip())
    if said:
        return said.strip()
    if document.response_code == "CA":
        return f"it still delivers part of the order ({document.document_id})"
    return "no reason given"


def _every_line_zero(session: Session, order: t.Order, row: t.DocumentRow) -> bool:
    """Whether the response says 0 (or status 7, not accepted) for every line of the order."""
    order_lines = set(
        session.scalars(select(t.OrderLine.id).where(t.OrderLine.order_id == order.id))
    )
    zeroed = {
        line.order_line_id
        for line in session.scalars(
            select(t.DocumentLine).where(t.DocumentLine.document_id == row.id)
        )
        if line.status_code == NOT_ACCEPTED or (line.quantity is not None and line.quantity == ZERO)
    }
    return bool(order_lines) and order_lines <= zeroed
