"""Process one stored message: validate -> interpret -> check partner and duplicates -> correlate.

Each message is handled in its own savepoint, so a bad document marks only itself ``failed``
and the batch goes on. Every outcome is a terminal state with a history event:
``processed`` (attached to an order), ``orphan`` (waits for its order), ``duplicate``
(byte-identical re-send) or ``failed`` (with a stable error code).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from edi_gateway.domain.documents import Document, DocumentKind
from edi_gateway.errors import DocumentError, ErrorCode, GatewayError
from edi_gateway.pipeline.correlate import correlate
from edi_gateway.pipeline.history import now, record
from edi_gateway.store.db import Store
from edi_gateway.store.tables import DocumentRow, Message

log = logging.getLogger(__name__)

PROCESSED, ORPHAN, DUPLICATE, FAILED = "processed", "orphan", "duplicate", "failed"
SUPPORTED = frozenset(kind.value for kind in DocumentKind)
ORIGINAL_STATES = (PROCESSED, ORPHAN)


@dataclass(frozen=True, slots=True)
class Policy:
    """What processing needs from the configuration."""

    max_size: int
    accept_unknown_partners: bool
    partner_of: Callable[[Sequence[str]], str | None]


def process_messages(store: Store, policy: Policy, ids: Iterable[int]) -> dict[int, str]:
    """Process the given messages (one commit for all); return each one's final state."""
    states: dict[int, str] = {}
    with store.session() as session:
        for message_id in ids:
            states[message_id] = process_one(session, policy, message_id)
    return states


def pending_ids(store: Store) -> list[int]:
    """Messages committed by intake but not yet processed (e.g. after a crash)."""
    with store.session() as session:
        return list(
            session.scalars(select(Message.id).where(Message.state == "received").order_by("id"))
        )


def process_one(session: Session, policy: Policy, message_id: int) -> str:
    """Take one message to a terminal state inside the caller's transaction."""
    message = session.get_one(Message, message_id)
    if message.state != "received":
        return message.state  # already terminal: a transport re-offered it after a crash
    message.attempts += 1
    try:
        _run_stages(session, policy, message)
    except GatewayError as exc:
        _fail(session, message, exc)
    except Exception as exc:  # a bug must fail one message, never the daemon
        log.exception("internal error processing message %s", message_id)
        _fail(session, message, GatewayError(ErrorCode.INTERNAL_ERROR, repr(exc)))
    return message.state


def _run_stages(session: Session, policy: Policy, message: Message) -> None:
    original = _identical_earlier(session, message)
    if original is not None:
        _finish(session, message, DUPLICATE, duplicate_of=original)
        return
    from edi_gateway.ubl.read import interpret
    from edi_gateway.ubl.validate import validate_document

    validated = validate_document(message.payload, max_size=policy.max_size, kinds=SUPPORTED)
    document = interpret(validated.root)
    _identify(message, document)
    message.partner = _check_partner(policy, document)
    _check_id_conflict(session, message, document)
    receiver = document.receiver()
    counterpart = policy.partner_of(receiver.keys()) if receiver else None
    with session.begin_nested():  # correlation writes all or nothing
        state = correlate(session, message, document, counterpart)
    _finish(session, message, state)


def _identical_earlier(session: Session, message: Message) -> int | None:
    return session.scalar(
        select(Message.id)
        .where(
            Message.sha256 == message.sha256,
            Message.id != message.id,
            Message.state.in_((*ORIGINAL_STATES, DUPLICATE)),
            Message.id < message.id,
        )
        .order_by(Message.id)
        .limit(1)
    )


def _identify(message: Message, document: Document) -> None:
    sender = document.sender()
    message.doc_kind = document.kind.value
    message.doc_id = document.document_id
    message.sender_key = sender.key() if sender else None


def _check_partner(policy: Policy, document: Document) -> str | None:
    sender = document.sender()
    keys = sender.keys() if sender else []
    partner = policy.partner_of(keys)
    if partner is None and not policy.accept_unknown_partners:
        who = ", ".join(keys) if keys else "a party without any identifier"
        raise DocumentError(
            ErrorCode.UNKNOWN_PARTNER,
            f"{document.kind.value} {document.document_id} comes from {who}, "
            "which is not a partner in gateway.yaml",
        )
    return partner


def _check_id_conflict(session: Session, message: Message, document: Document) -> None:
    earlier = session.scalar(
        select(DocumentRow.message_id).where(
            DocumentRow.direction == "in",
            DocumentRow.sender_key == message.sender_key,
            DocumentRow.kind == document.kind.value,
            DocumentRow.doc_number == document.document_id,
        )
    )
    if earlier is not None:
        raise DocumentError(
            ErrorCode.DUPLICATE_ID_CONFLICT,
            f"{document.kind.value} {document.document_id} from {message.sender_key} was "
            f"already received as message {earlier} with different content; "
            "it was not merged",
        )


def _finish(
    session: Session, message: Message, state: str, duplicate_of: int | None = None
) -> None:
    message.state = state
    message.error_code = ErrorCode.DUPLICATE.value if state == DUPLICATE else None
    message.error_detail = (
        f"byte-identical to message {duplicate_of}" if duplicate_of is not None else None
    )
    message.error_line = None
    message.duplicate_of = duplicate_of
    message.updated_at = now()
    detail = message.error_detail or (
        f"{message.doc_kind} {message.doc_id}" if message.doc_kind else None
    )
    record(session, f"message.{state}", detail, message_id=message.id, order_id=message.order_id)


def _fail(session: Session, message: Message, exc: GatewayError) -> None:
    message.state = FAILED
    message.error_code = exc.code.value
    message.error_detail = exc.message[:4000]
    message.error_line = exc.line
    message.updated_at = now()
    where = f" at line {exc.line}" if exc.line else ""
    record(
        session,
        "message.failed",
        f"{exc.code.value}{where}: {exc.message[:500]}",
        message_id=message.id,
    )
