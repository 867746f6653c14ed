"""An operator's hand on single messages: dismiss a failed one, attach an orphan to its order,
read the bytes as received. Each change is recorded in history with the operator's name."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from edi_gateway.errors import ErrorCode, GatewayError
from edi_gateway.pipeline.correlate import ORPHAN, PROCESSED, MessageRef, attach, attach_waiting
from edi_gateway.pipeline.history import now, record
from edi_gateway.store import schema
from edi_gateway.store import tables as t
from edi_gateway.store.queries import find_order, get_message, get_order, lock_orders

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from edi_gateway.domain.documents import Document
    from edi_gateway.store.db import Store

DISMISSED = "dismissed"
Reread = Callable[[int], Sequence["Document"]]


def dismiss(store: Store, message_id: int, reason: str, actor: str) -> dict[str, Any]:
    """Mark a failed message ``dismissed`` (nothing more will be done about it): it leaves the
    failed list and is never redriven; its error stays for the record."""
    if not reason.strip():
        raise GatewayError(ErrorCode.USAGE, "a dismissal needs a reason (--reason TEXT)")
    with store.session() as session:
        # locked: two operators dismissing it at once (or a redrive) go one after the other,
        # and the second sees it no longer failed instead of recording a second dismissal
        message = get_message(session, message_id, lock=True)
        if message.state != "failed":
            raise GatewayError(
                ErrorCode.NOT_ALLOWED,
                f"message {message_id} is {message.state}: only a failed message can be "
                "dismissed (see `edi-gateway messages show ID`)",
            )
        was = f"failed {message.error_code or ''}".strip()
        message.state, message.updated_at = DISMISSED, now()
        detail = f"{reason.strip()} (was {was})"
        record(session, "message.dismissed", detail, actor=actor, message_id=message_id)
    return {"id": message_id, "state": DISMISSED, "was": was, "reason": reason.strip()}


def attach_orphan(
    store: Store, message_id: int, order_ref: str, actor: str, reread: Reread
) -> dict[str, Any]:
    """Attach an orphan message's documents to the order ``order_ref`` names, the way
    correlation attaches them (ledger, status, history), as the operator; again when
    PostgreSQL rolls it back to break a circle of lock waits (its locks are the documents'
    numbers, which processing takes too: ``store.db.again_after_deadlocks``)."""
    from edi_gateway.store.db import again_after_deadlocks

    return again_after_deadlocks(
        lambda: _attach_orphan(store, message_id, order_ref, actor, reread),
        f"attaching message {message_id} to order {order_ref}",
    )


def _attach_orphan(
    store: Store, message_id: int, order_ref: str, actor: str, reread: Reread
) -> dict[str, Any]:
    with store.session() as session:
        _an_orphan(session, message_id)
    documents = {d.document_id: d for d in reread(message_id)}  # a session of its own
    with store.session() as session:
        # the locks processing takes for this message's documents and for the order, all at
        # once and before anything is read: two operators attaching it (to one order or two),
        # or processing re-correlating it, go one at a time and the second finds it attached
        found = find_order(session, order_ref)
        d = schema.documents.c
        numbers = session.execute(
            select(d.doc_number, d.order_ref).where(d.message_id == message_id)
        ).all()
        keys = [found.order_number, *(n for row in numbers for n in row if n)]
        lock_orders(session, keys)
        message = _an_orphan(session, message_id)
        order = get_order(session, found.id)
        rows = list(
            session.scalars(
                select(t.DocumentRow).where(
                    t.DocumentRow.message_id == message_id, t.DocumentRow.state == ORPHAN
                )
            )
        )
        ref = MessageRef(message_id, message.source, message.partner)
        for row in rows:
            document = documents.get(row.doc_number)
            if document is None:
                raise GatewayError(
                    ErrorCode.NOT_ALLOWED,
                    f"message {message_id} no longer reads as document {row.doc_number}: "
                    "redrive it instead",
                )
            attach(session, order, row, document, ref, actor=actor)
        message.state, message.order_id, message.updated_at = PROCESSED, order.id, now()
        detail = f"attached by hand to order {order.order_number}"
        record(session, "message.attached", detail, actor=actor, message_id=message_id)
        # orphans that waited for these documents (a credit note naming this invoice) find
        # their order now, as when the documents are processed (pipeline/process.py _apply);
        # so do those that wait for the order number these named and the store does not know
        # (a credit note naming that number and this invoice: correlate._with_preceding).
        # The numbers they wait for are this message's, locked above
        attach_waiting(session, [n for row in rows for n in (row.doc_number, row.order_ref) if n])
        return {
            "id": message_id,
            "state": PROCESSED,
            "order_id": order.id,
            "order": order.order_number,
            "number": order.order_number,
        }


def _an_orphan(session: Session, message_id: int) -> t.Message:
    message = get_message(session, message_id)
    if message.state != ORPHAN:
        raise GatewayError(
            ErrorCode.NOT_ALLOWED,
            f"message {message_id} is {message.state}: only an orphan can be attached "
            "(`edi-gateway messages list --state orphan`)",
        )
    return message


def raw_payload(store: Store, message_id: int) -> bytes:
    """The bytes of a message exactly as they arrived."""
    with store.session() as session:
        message = get_message(session, message_id)
        payload = message.payload
        if payload is None:
            raise GatewayError(
                ErrorCode.NOT_FOUND,
                f"message {message_id} was kept without its bytes ({message.error_code}): "
                "the connector's error folder or the sender has them",
            )
        return payload
