"""Intake: the raw bytes are committed to the store before anything else happens."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from sqlalchemy import select, tuple_
from sqlalchemy.orm import Session

from edi_gateway.envelope import Envelope
from edi_gateway.pipeline.history import now
from edi_gateway.store.db import Store
from edi_gateway.store.tables import HistoryEvent, Message

RECEIVED = "received"


def intake(store: Store, envelopes: Sequence[Envelope]) -> list[int]:
    """Commit every envelope as a ``received`` message; return their ids in the same order.

    Idempotent per ``(source, source_ref)``: an envelope a transport offers again after a crash
    gets the id of the message already stored, and no second copy is made.
    """
    if not envelopes:
        return []
    with store.session() as session:
        known = _existing(session, [(env.source, env.source_ref) for env in envelopes])
        ids: list[int] = []
        for env in envelopes:
            key = (env.source, env.source_ref)
            if key not in known:
                known[key] = _store_new(session, env)
            ids.append(known[key])
    return ids


def _existing(session: Session, keys: list[tuple[str, str]]) -> dict[tuple[str, str], int]:
    found: dict[tuple[str, str], int] = {}
    for start in range(0, len(keys), 400):
        chunk = keys[start : start + 400]
        rows = session.execute(
            select(Message.source, Message.source_ref, Message.id).where(
                tuple_(Message.source, Message.source_ref).in_(chunk)
            )
        )
        found.update({(src, ref): mid for src, ref, mid in rows})
    return found


def _store_new(session: Session, env: Envelope) -> int:
    message = Message(
        received_at=env.received_at,
        source=env.source,
        source_ref=env.source_ref,
        filename=env.filename,
        sha256=hashlib.sha256(env.payload).hexdigest(),
        size=len(env.payload),
        payload=env.payload,
        state=RECEIVED,
        attempts=0,
        updated_at=now(),
    )
    session.add(message)
    session.flush()
    session.add(
        HistoryEvent(
            at=message.received_at,
            message_id=message.id,
            event="message.received",
            detail=f"{env.filename} ({message.size} bytes, sha256 {message.sha256[:12]})",
            actor=env.source,
        )
    )
    return message.id
