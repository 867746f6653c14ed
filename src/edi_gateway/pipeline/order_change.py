"""Apply a buyer's Order Change (Peppol T114) to its order: line actions, units, sequence.

docs/adr/0025-advanced-ordering.md. The rules are ``domain/order_change.py``; this applies
them in the caller's transaction: the change's sequence number is checked against the
changes applied before (their numbers are kept in ``documents.code``), every line action is
planned against the order's current lines, and only when all of them hold are the order
lines updated and one history event written per action (``line.added``, ``line.deleted``,
``line.changed``, ``line.reopened``). Anything that does not hold refuses the whole change
with a coded :class:`DocumentError` (``CHANGE_OUT_OF_SEQUENCE``, ``ORDER_CHANGE_REFUSED``):
the message is failed, kept and can be redriven; the order is left as it was.

A deleted line stays on the order with its ordered quantity at 0; that it was deleted is
derived from the ledger (the latest change line for it says ``2``), never typed in.

A supplier's Order Response that arrives while the buyer's latest document on the order is a
change (no response since) answers that change (:func:`on_response`): AP or CA accepts it; RE
refuses it, not the order: the change is marked ``refused``, the response is kept as its
``answer`` (outside the ledger, so the order is not Rejected), and the order's lines are
replayed from the original order and the changes still in effect (:func:`replay`).
"""

from __future__ import annotations

from dataclasses import replace

from sqlalchemy import delete, insert, select
from sqlalchemy.orm import Session

from edi_gateway.domain.documents import (
    Document,
    DocumentKind,
    Line,
    Order,
    OrderChange,
    OrderResponse,
    Party,
    Quantity,
)
from edi_gateway.domain.order_change import (
    ChangeRefused,
    CurrentLine,
    LineAction,
    SequenceRefused,
    Step,
    check_sequence,
    plan,
)
from edi_gateway.domain.status import ZERO
from edi_gateway.errors import DocumentError, ErrorCode
from edi_gateway.pipeline.history import SYSTEM, record
from edi_gateway.pipeline.item_ids import from_response
from edi_gateway.pipeline.limits import kept
from edi_gateway.pipeline.orders import NEW_LINE, billed_rows, line_rows
from edi_gateway.store import tables as t
from edi_gateway.store.queries import deleted_lines, order_payload

CHANGE = DocumentKind.ORDER_CHANGE.value
RESPONSE = DocumentKind.ORDER_RESPONSE.value
REFUSED, ANSWER = "refused", "answer"
_EVENTS = {
    LineAction.ADDED: "line.added",
    LineAction.DELETED: "line.deleted",
    LineAction.CHANGED: "line.changed",
    LineAction.REOPENED: "line.reopened",
}


def apply_order_change(
    session: Session, order: t.Order, row: t.DocumentRow, document: Document, *, actor: str
) -> None:
    """Apply ``document`` (an Order Change attached as ``row``) to ``order``'s lines."""
    assert isinstance(document, OrderChange)
    what = f"order change {document.document_id}"
    if order.cancelled:
        raise DocumentError(
            ErrorCode.ORDER_CHANGE_REFUSED,
            f"{what}: order {order.order_number} is cancelled; a cancelled order is not changed",
        )
    try:
        sequence = check_sequence(document.sequence_id, applied_sequences(session, order, row))
    except SequenceRefused as exc:
        raise DocumentError(ErrorCode.CHANGE_OUT_OF_SEQUENCE, f"{what}: {exc}") from None
    lines = {line.line_id: line for line in _order_lines(session, order)}
    deleted = deleted_lines(session, order.id)
    current = {
        line_id: _current(line, deleted=line.id in deleted) for line_id, line in lines.items()
    }
    try:
        steps = _fitted(plan(current, document.lines), what)
    except ChangeRefused as exc:
        raise DocumentError(ErrorCode.ORDER_CHANGE_REFUSED, f"{what}: {exc}") from None
    added = [step for step in steps if step.action is LineAction.ADDED]
    for step in steps:
        if step.action is not LineAction.ADDED:
            _update(lines[step.line_id], step)
    _insert_added(session, order, added, start=len(lines))
    summary = f"{what} ({sequence}): " + (
        f"{len(steps)} line action{'s' if len(steps) != 1 else ''}" if steps else "no line action"
    )
    record(session, "order_change.applied", summary, actor=actor, order_id=order.id)
    for step in steps:
        detail = f"{step.describe()} by {what}" + _taken_back(lines.get(step.line_id), step)
        record(session, _EVENTS[step.action], detail, actor=actor, order_id=order.id)
    if document.billed is not None:  # none named: the invoicee stays as it was
        set_invoicee(session, order, document.billed, f"by {what}", actor=actor)


def invoicee(session: Session, order_id: int, named: Party | None) -> Party | None:
    """The invoicee in effect on the order: the AccountingCustomerParty of the latest change
    in effect (attached, not refused) that names one, else ``named``, the Order's own.

    Read from the stored changes (no column keeps the party: an invoice needs its address and
    legal data, not only the keys ``order_keys`` holds); an order without changes costs one
    query that finds none."""
    from edi_gateway.ubl.read import read_stored

    payloads = session.scalars(
        select(t.Message.payload)
        .join(t.DocumentRow, t.DocumentRow.message_id == t.Message.id)
        .where(
            t.DocumentRow.order_id == order_id,
            t.DocumentRow.kind == CHANGE,
            t.DocumentRow.state == "attached",
        )
        .order_by(t.DocumentRow.id.desc())
    )
    for payload in payloads:
        change = read_stored(payload) if payload is not None else None
        if isinstance(change, OrderChange) and change.billed is not None:
            return change.billed
    return named


def set_invoicee(
    session: Session, order: t.Order, billed: Party | None, why: str, *, actor: str = SYSTEM
) -> None:
    """Make ``billed`` (None: the buyer) the order's invoicee: its keys replace the order's
    ``billed`` keys, by which the invoices to it find the order (``correlate.BILLED_BY``), and
    an ``order.invoicee_changed`` event says so. Nothing when the keys stay the same."""
    k = t.OrderKey
    mine = k.order_id == order.id
    buyer = session.scalars(select(k.party_key).where(mine, k.role == "buyer"))
    rows = billed_rows(order.id, buyer, billed) if billed is not None else []
    was = list(session.scalars(select(k.party_key).where(mine, k.role == "billed").order_by(k.id)))
    new = [row["party_key"] for row in rows]
    if set(new) == set(was):
        return
    session.execute(delete(k).where(mine, k.role == "billed"))
    if rows:
        session.execute(insert(k), rows)
    detail = f"invoicee {_named(was)} -> {_named(new)} {why}"
    record(session, "order.invoicee_changed", detail, actor=actor, order_id=order.id)


def _named(keys: list[str]) -> str:
    return keys[0] if keys else "the buyer"


def _fitted(steps: list[Step], what: str) -> list[Step]:
    """The steps with each new quantity as ``qty_ordered`` keeps it: a conversion to the order
    line's unit is exact (``domain.order_change.convert``) and rounded only when it does not
    fit its column (``limits.kept``; a whole part too long is VALUE_TOO_LONG)."""
    return [
        step
        if step.after is None or step.given is None
        else replace(
            step,
            after=kept(
                step.after, f"{what} line {step.line_id}: the quantity converted to its unit"
            ),
        )
        for step in steps
    ]


def applied_sequences(
    session: Session, order: t.Order, row: t.DocumentRow | None = None
) -> list[tuple[str, str]]:
    """(change ID, sequence number) of the changes applied to ``order`` (but ``row``)."""
    query = select(t.DocumentRow.doc_number, t.DocumentRow.code).where(
        t.DocumentRow.order_id == order.id,
        t.DocumentRow.kind == CHANGE,
        t.DocumentRow.state == "attached",
        t.DocumentRow.code.is_not(None),
    )
    if row is not None:
        query = query.where(t.DocumentRow.id != row.id)
    return [(doc, code) for doc, code in session.execute(query) if code is not None]


def _order_lines(session: Session, order: t.Order) -> list[t.OrderLine]:
    return list(
        session.scalars(
            select(t.OrderLine)
            .where(t.OrderLine.order_id == order.id)
            .order_by(t.OrderLine.position)
        )
    )


def _current(line: t.OrderLine, *, deleted: bool) -> CurrentLine:
    return CurrentLine(
        line_id=line.line_id,
        quantity=line.qty_ordered,
        unit=line.unit,
        despatched=line.qty_despatched,
        deleted=deleted,
        price=line.price,
        delivery_date=line.delivery_date,
    )


def _update(line: t.OrderLine, step: Step) -> None:
    if step.after is not None:
        line.qty_ordered = step.after
    if line.unit is None and step.unit is not None:
        line.unit = step.unit
    if step.price is not None:
        line.price = step.price
    if step.delivery_date is not None:
        line.delivery_date = step.delivery_date


def _taken_back(line: t.OrderLine | None, step: Step) -> str:
    """What the history adds when the step lowers a line below what the supplier confirmed:
    that confirmation no longer counts (the ledger's rule, ``pipeline/ledger._taken_back``)."""
    confirmed = None if line is None else line.qty_confirmed
    if confirmed is None or step.after is None or step.after >= confirmed:
        return ""
    return f"; the {confirmed} the supplier confirmed no longer count"


def _insert_added(session: Session, order: t.Order, steps: list[Step], *, start: int) -> None:
    lines = [step.line for step in steps if step.line is not None]
    rows = line_rows(order.id, lines, start=start)
    for values, step in zip(rows, steps, strict=True):
        values["qty_ordered"] = step.after
        values["unit"] = step.unit
    if rows:
        session.execute(insert(t.OrderLine), [{**values, **NEW_LINE} for values in rows])


def on_response(session: Session, order: t.Order, row: t.DocumentRow, document: Document) -> None:
    """Apply a supplier's Order Response (just attached as ``row``) to the change it answers;
    keep the seller's item IDs it states for lines the Order named without one."""
    if not isinstance(document, OrderResponse) or row.direction != "in":
        return
    from_response(session, order, row, document)
    change = _unanswered_change(session, order, row)
    if change is None:
        return
    code = document.response_code
    what = f"{document.kind.value} {document.document_id} ({code or 'no code'})"
    if code in ("AP", "CA"):
        detail = f"{what} accepts order change {change.doc_number}"
        record(session, "order_change.accepted", detail, order_id=order.id)
    elif code == "RE":
        change.state, row.state = REFUSED, ANSWER
        why = document.reason or "no reason given"
        detail = (
            f"{what} refuses order change {change.doc_number}: {why}; the order stands as "
            "before that change"
        )
        record(session, "order_change.refused", detail, order_id=order.id)
        replay(session, order)
    else:
        detail = f"{what} acknowledges order change {change.doc_number}"
        record(session, "order_change.acknowledged", detail, order_id=order.id)


def _unanswered_change(
    session: Session, order: t.Order, row: t.DocumentRow
) -> t.DocumentRow | None:
    latest = session.scalar(
        select(t.DocumentRow)
        .where(
            t.DocumentRow.order_id == order.id,
            t.DocumentRow.state == "attached",
            t.DocumentRow.kind.in_((CHANGE, RESPONSE)),
            t.DocumentRow.id != row.id,
        )
        .order_by(t.DocumentRow.id.desc())
        .limit(1)
    )
    return latest if latest is not None and latest.kind == CHANGE else None


def replay(session: Session, order: t.Order) -> None:
    """Set every line's ordered quantity and price from the original order and the changes in
    effect (attached), in their order; a line only a refused change added goes to 0."""
    from edi_gateway.ubl.read import read_stored

    payload = order_payload(session, order.id)
    original = read_stored(payload) if payload is not None else None
    if not isinstance(original, Order):
        return
    current = {
        line.line_id: CurrentLine(
            line.line_id,
            line.quantity.value if line.quantity else ZERO,
            line.quantity.unit if line.quantity else None,
            price=line.price,
            delivery_date=line.delivery_date,
        )
        for line in original.lines
    }
    changes = session.scalars(
        select(t.DocumentRow)
        .where(
            t.DocumentRow.order_id == order.id,
            t.DocumentRow.kind == CHANGE,
            t.DocumentRow.state == "attached",
        )
        .order_by(t.DocumentRow.id)
    )
    for change in changes:
        try:
            what = f"order change {change.doc_number}"
            current = _replayed(current, _ledger_lines(session, change), what)
        except ChangeRefused as exc:  # it built on a change that is refused now
            detail = f"order change {change.doc_number} no longer applies: {exc}"
            record(session, "order_change.not_replayed", detail, order_id=order.id)
    for line in _order_lines(session, order):
        was = current.get(line.line_id)
        line.qty_ordered = ZERO if was is None else was.quantity
        if was is not None and was.price is not None:
            line.price = was.price
    named = invoicee(session, order.id, original.billed)
    set_invoicee(session, order, named, "as the order and the changes in effect name it")


def _ledger_lines(session: Session, change: t.DocumentRow) -> list[Line]:
    return [
        Line(
            line_id=row.line_ref,
            quantity=None if row.quantity is None else Quantity(row.quantity, row.unit),
            status_code=row.status_code,
            price=row.price,
        )
        for row in session.scalars(
            select(t.DocumentLine)
            .where(t.DocumentLine.document_id == change.id)
            .order_by(t.DocumentLine.id)
        )
    ]


def _replayed(
    current: dict[str, CurrentLine], lines: list[Line], what: str
) -> dict[str, CurrentLine]:
    steps = _fitted(plan(current, lines), what)  # applied once already, so it applies again
    out = dict(current)
    for step in steps:
        was = out.get(step.line_id)
        out[step.line_id] = CurrentLine(
            step.line_id,
            step.after if step.after is not None else ZERO,
            step.unit,
            deleted=step.action is LineAction.DELETED,
            price=step.price if step.price is not None else (was.price if was else None),
        )
    return out
