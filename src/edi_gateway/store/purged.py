"""The dedup keys purged messages and documents leave behind (docs/adr/0037), as processing
reads them: kept apart from store/purge.py so the hot path imports only this."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Connection, select

from edi_gateway.store import schema as s

DEDUP_STATES = ("processed", "orphan", "duplicate")
HOLDING_STATES = ("processed", "orphan")
"""Of those, the states of a message that holds what its bytes say (a ``duplicate`` points at
one that does)."""
"""The states whose bytes make a later copy a duplicate, kept or purged (pipeline/process.py
``_originals`` and :func:`purged_originals`)."""
CHUNK = 500


def purged_originals(conn: Connection, shas: Sequence[str]) -> dict[str, int]:
    """sha256 -> the id a purged message with these bytes had (one that did not fail): a later
    copy is a duplicate of it (pipeline/process.py)."""
    found: dict[str, int] = {}
    p = s.purged_messages.c
    for start in range(0, len(shas), CHUNK):
        rows = conn.execute(
            select(p.sha256, p.message_id)
            .where(p.sha256.in_(shas[start : start + CHUNK]), p.state.in_(DEDUP_STATES))
            .order_by(p.id)
        )
        for sha, mid in rows:
            found.setdefault(sha, mid)
    return found


def purged_numbers(
    conn: Connection, numbers: Sequence[str]
) -> dict[tuple[str | None, str, str], int | None]:
    """(sender key, kind, number) -> message id of the purged inbound documents with one of
    ``numbers``: the same number from the same sender again is an ID conflict."""
    found: dict[tuple[str | None, str, str], int | None] = {}
    p = s.purged_documents.c
    for start in range(0, len(numbers), CHUNK):
        rows = conn.execute(
            select(p.sender_key, p.kind, p.doc_number, p.message_id).where(
                p.direction == "in", p.doc_number.in_(numbers[start : start + CHUNK])
            )
        )
        found.update({(k, kind, n): mid for k, kind, n, mid in rows})
    return found
