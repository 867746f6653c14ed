"""Intake: the raw bytes are committed to the store before anything else happens."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.exc import IntegrityError

from edi_gateway.envelope import Envelope
from edi_gateway.errors import ErrorCode
from edi_gateway.pipeline.history import SYSTEM, now
from edi_gateway.store.bulk import ids_by_key, insert_keyed, insert_many
from edi_gateway.store.db import Store
from edi_gateway.store.schema import history, message_payloads, messages

RECEIVED, FAILED = "received", "failed"


def intake(store: Store, envelopes: Sequence[Envelope]) -> list[int]:
    """Commit every envelope as a ``received`` message; return their ids in the same order.

    Idempotent per ``(source, source_ref)``: an envelope a transport offers again after a crash
    gets the id of the message already stored, and no second copy is made. One statement per
    table for the whole batch: this is the hot path.
    """
    if not envelopes:
        return []
    keys = [(env.source, env.source_ref) for env in envelopes]
    seen = found = -1  # keys found by the last look that raised, and by this one
    while True:
        try:
            with store.connect() as conn:
                known = ids_by_key(conn, messages, ("source", "source_ref"), keys)  # unique
                fresh: dict[tuple[str, str], Envelope] = {}
                for env in envelopes:
                    fresh.setdefault((env.source, env.source_ref), env)
                for key in known:
                    fresh.pop(key, None)
                found = len(known)
                known.update(_store_new(conn, list(fresh.values())))
            return [known[key] for key in keys]
        except IntegrityError:
            # Another gateway stored one of these keys after the look above (a push connector
            # is served by every gateway: a partner's re-send may reach two at once). On
            # PostgreSQL the insert waited for that transaction and fails only once it
            # committed, so the next look finds the key; each turn follows a key another
            # transaction committed. One that finds nothing new is not this race: raised.
            if found <= seen:
                raise
            seen = found


def _store_new(conn: Connection, envelopes: list[Envelope]) -> dict[tuple[str, str], int]:
    if not envelopes:
        return {}
    stamp = now()
    rows = [_message_row(env, stamp) for env in envelopes]
    ids = insert_keyed(conn, messages, rows, ("source", "source_ref"))
    payloads = zip(ids, (env.payload for env in envelopes), strict=True)
    insert_many(conn, message_payloads, [{"message_id": m, "payload": p} for m, p in payloads])
    insert_many(
        conn,
        history,
        [
            {
                "at": row["received_at"],
                "order_id": None,
                "message_id": mid,
                "event": "message.received",
                "detail": f"{row['filename']} ({row['size']} bytes, sha256 {row['sha256'][:12]})"
                + (f" from {env.meta['sender']}" if env.meta.get("sender") else ""),
                "actor": row["source"],
            }
            for row, mid, env in zip(rows, ids, envelopes, strict=True)
        ],
    )
    refused = [(row, mid) for row, mid in zip(rows, ids, strict=True) if row["state"] == FAILED]
    if refused:
        insert_many(
            conn,
            history,
            [
                {
                    "at": stamp,
                    "order_id": None,
                    "message_id": mid,
                    "event": "message.failed",
                    "detail": f"{row['error_code']}: {row['error_detail']}",
                    "actor": SYSTEM,
                }
                for row, mid in refused
            ],
        )
    return {(env.source, env.source_ref): mid for env, mid in zip(envelopes, ids, strict=True)}


def _message_row(env: Envelope, stamp: datetime) -> dict[str, Any]:
    """A ``received`` message row; an oversize payload is recorded ``failed`` without its bytes,
    a payload the transport refused (``Envelope.refusal``) ``failed`` with its bytes."""
    row: dict[str, Any] = {
        "received_at": env.received_at,
        "source": env.source,
        "source_ref": env.source_ref,
        "filename": env.filename,
        "sha256": hashlib.sha256(env.payload).hexdigest(),
        "size": len(env.payload),
        "state": RECEIVED,
        "error_code": None,
        "error_detail": None,
        "attempts": 0,
        "updated_at": stamp,
    }
    if env.refusal is not None:
        code, detail = env.refusal
        row.update(state=FAILED, error_code=code.value, error_detail=detail)
    if env.oversize is not None:
        limit = int(env.meta.get("limit", "0"))
        kept = env.meta.get("kept_at", "the sender's side")
        row.update(
            sha256=env.meta.get("sha256", row["sha256"]),
            size=env.oversize,
            state=FAILED,
            error_code=ErrorCode.TOO_LARGE.value,
            error_detail=(
                f"payload is {env.oversize:,} bytes, more than the limit of {limit:,} bytes "
                f"(intake.max_size_mb); its bytes were not stored: the file is kept by the "
                f"connector ({kept}, then its error folder)"
            ),
        )
    return row
