"""The supplier's side of a cancellation: withdraw what it has not received, or tell it.

An order's forward (``outbound/forward.py``) has *reached* the supplier once any file of it was
delivered. One that has not (held, waiting for its bundle, queued in the outbox with nothing
sent yet, failed) can be **withdrawn**: the forward and its pending outbox rows become
``withdrawn`` and are never sent; the other orders of a withdrawn bundle wait again and go in
the next one. Once it has reached the supplier, the cancellation is **sent** instead, in every
format of the supplier's profile, at once and file by file: ``ubl`` as the buyer's
OrderCancellation bytes, the other formats as the order rendered marked CANCELLED with the
cancellation's ID and reason, named like the order's files with ``-cancellation`` before the
extension (the outbox keeps names unique per connector).
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import CursorResult, func, select, update

from edi_gateway.outbound.bundle import file_name, render_order
from edi_gateway.outbound.forward import DELIVERED, FAILED, HELD, QUEUED, WAITING, WITHDRAWN
from edi_gateway.outbound.outbox import AWAITING, PENDING, SENT, Outgoing, enqueue
from edi_gateway.pipeline.history import SYSTEM, now, record

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from edi_gateway.config import Partner, Settings
    from edi_gateway.store.tables import DocumentRow, Forward, Order

SUFFIX = "-cancellation"
WITHDRAWABLE = (HELD, WAITING, QUEUED, FAILED)


def forwards_of(session: Session, order_id: int) -> list[Forward]:
    """Every forward of the order (one per supplier)."""
    from edi_gateway.store.tables import Forward

    query = select(Forward).where(Forward.order_id == order_id).order_by(Forward.id)
    return list(session.scalars(query))


def reached(session: Session, row: Forward) -> bool:
    """Whether any file of this forward has been delivered to its supplier."""
    from edi_gateway.store.tables import OutboxRow

    if row.state == DELIVERED:
        return True
    if row.state not in (QUEUED, FAILED) or not row.bundle:
        return False
    sent = session.scalar(
        select(func.count()).where(
            OutboxRow.partner == row.partner,
            OutboxRow.doc_number == row.bundle,
            OutboxRow.state.in_((SENT, AWAITING)),  # sent, its receipt still to come
        )
    )
    return bool(sent)


def withdraw(session: Session, order: Order, *, why: str, actor: str = SYSTEM) -> list[str]:
    """Withdraw every forward of ``order`` that has not reached its supplier; return them.

    Conditional updates: a forward that a concurrent flush moved on (or whose file went out
    meanwhile) is left alone; the caller then sees it as reached.
    """
    withdrawn: list[str] = []
    for row in forwards_of(session, order.id):
        state = row.state
        if state not in WITHDRAWABLE or reached(session, row):
            continue
        try:
            with session.begin_nested():
                if state == QUEUED:
                    _withdraw_bundle(session, row, order, actor)
                if not _move(session, row, state, WITHDRAWN):
                    raise _Raced(f"forward {row.id} moved on meanwhile")
        except _Raced:
            continue
        record(
            session,
            "forward.withdrawn",
            f"withdrawn: {row.partner} never gets order {order.order_number} ({why})",
            actor=actor,
            order_id=order.id,
        )
        withdrawn.append(row.partner)
    return withdrawn


def send(
    session: Session,
    settings: Settings,
    order: Order,
    cancellation: DocumentRow,
    forward: Forward,
) -> list[str]:
    """Queue the cancellation for the supplier of ``forward``; return the file names."""
    from edi_gateway.outbound.issuing import original_order
    from edi_gateway.store.tables import Message

    partner = settings.partner(forward.partner)
    if partner is None or partner.forward is None:
        return []
    payload = session.scalar(select(Message.payload).where(Message.id == cancellation.message_id))
    assert payload is not None  # a cancellation always comes in a message
    moment = now()
    files = render_order(
        partner.forward,
        partner.id,
        original_order(session, order),
        payload,
        language=partner.language,
        sent_on=moment.date(),
        cancelled=_mark(payload, cancellation.doc_number),
    )
    names: list[str] = []
    for file in files:
        wanted = _name(
            partner, order, forward, fmt=file.format, extension=file.extension, moment=moment
        )
        outbox_id = enqueue(
            session,
            Outgoing(
                partner=partner.id,
                connector=partner.forward.connector or partner.outbound or "",
                kind=cancellation.kind,
                doc_number=cancellation.doc_number,
                payload=file.payload,
                extension=file.extension,
                media_type=file.media_type,
                document_id=cancellation.id,
                order_id=order.id,
                filename=wanted,
            ),
            settings,
        )
        names.append(_queued_name(session, outbox_id))
    return names


def _mark(payload: bytes, number: str) -> str:
    """``<cancellation ID>: <reason>`` from the buyer's cancellation, as the renderers show it."""
    from edi_gateway.domain.documents import OrderCancellation
    from edi_gateway.ubl.read import read_stored

    document = read_stored(payload)
    reason = document.reason if isinstance(document, OrderCancellation) else None
    return f"{number}: {reason}" if reason else number


def _name(
    partner: Partner, order: Order, forward: Forward, *, fmt: str, extension: str, moment: datetime
) -> str:
    profile = partner.forward
    assert profile is not None
    name = file_name(
        profile.filename,
        supplier=partner.id,
        order=order.order_number,
        buyer=order.buyer_partner or order.buyer_key,
        date=moment.date(),
        seq=forward.seq or 0,
        format=fmt.removeprefix("layout:"),
        ext=extension,
    )
    stem, dot, ext = name.rpartition(".")
    return f"{stem}{SUFFIX}.{ext}" if dot else f"{name}{SUFFIX}"


def _queued_name(session: Session, outbox_id: int) -> str:
    from edi_gateway.store.tables import OutboxRow

    return session.get_one(OutboxRow, outbox_id).filename


def _withdraw_bundle(session: Session, row: Forward, order: Order, actor: str) -> None:
    """Withdraw the unsent outbox files of ``row``'s bundle; its other orders wait again."""
    from edi_gateway.store.tables import Forward, OutboxRow, table

    outbox = table(OutboxRow)
    files = list(
        session.scalars(
            select(OutboxRow.id).where(
                OutboxRow.partner == row.partner,
                OutboxRow.doc_number == row.bundle,
                OutboxRow.state == PENDING,
            )
        )
    )
    result = session.execute(
        update(outbox)
        .where(outbox.c.id.in_(files), outbox.c.state == PENDING)
        .values(
            state=WITHDRAWN,
            last_error=f"withdrawn: order {order.order_number} cancelled",
            error_code=None,  # no error code: tables.py keeps it with last_error
        )
    )
    if isinstance(result, CursorResult) and result.rowcount != len(files):
        raise _Raced(f"a file of bundle {row.bundle} left before it could be withdrawn")
    for outbox_id in files:
        session.expire(session.get_one(OutboxRow, outbox_id))
    record(
        session,
        "outbox.withdrawn",
        f"{row.bundle} for {row.partner}: {len(files)} file(s) not sent",
        actor=actor,
        order_id=order.id,
    )
    others = session.scalars(
        select(Forward).where(
            Forward.partner == row.partner,
            Forward.bundle == row.bundle,
            Forward.state == QUEUED,
            Forward.id != row.id,
        )
    )
    for other in list(others):
        if _move(session, other, QUEUED, WAITING, bundle=None, seq=None):
            record(
                session,
                "forward.waiting",
                f"bundle {row.bundle} was withdrawn (order {order.order_number} was cancelled); "
                f"waiting to go to {row.partner} in the next one",
                actor=actor,
                order_id=other.order_id,
            )


class _Raced(Exception):
    """A file went out while it was being withdrawn: the order reached the supplier."""


def _move(session: Session, row: Forward, old: str, new: str, **values: object) -> bool:
    """Move ``row`` from ``old`` to ``new`` unless someone else moved it first."""
    from edi_gateway.store.tables import Forward, table

    forwards = table(Forward)
    result = session.execute(
        update(forwards)
        .where(forwards.c.id == row.id, forwards.c.state == old)
        .values(state=new, updated_at=now(), **values)
    )
    session.expire(row)
    return not isinstance(result, CursorResult) or result.rowcount == 1
