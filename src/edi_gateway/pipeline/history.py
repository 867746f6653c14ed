"""Writing history events: every state change says when, what and by whom."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, insert

from edi_gateway.store.schema import history

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

SYSTEM = "system"


def now() -> datetime:
    """The current time in UTC."""
    return datetime.now(UTC)


def record(
    executor: Connection | Session,
    event: str,
    detail: str | None = None,
    *,
    actor: str = SYSTEM,
    order_id: int | None = None,
    message_id: int | None = None,
) -> None:
    """Write one history event in the caller's transaction (it commits with the change);
    inside :func:`together` on the same session, with the block's other events."""
    values = {
        "at": now(),
        "order_id": order_id,
        "message_id": message_id,
        "event": event,
        "detail": detail,
        "actor": actor,
    }
    pending = None if isinstance(executor, Connection) else executor.info.get(_PENDING)
    if pending is not None:
        pending.append(values)
        return
    executor.execute(_INSERT, values)


@contextmanager
def together(session: Session) -> Iterator[None]:
    """The events :func:`record` writes on ``session`` inside the block are written at its
    end, all with one ``executemany`` (issuing a document records three to five, one
    statement each otherwise); each keeps its own time, actor, order and message. When the
    block raises, none is written (its transaction or savepoint is rolled back anyway). A bulk
    batch is one block: a refused item's events are dropped with :func:`drop_since`. Blocks
    do not nest."""
    assert _PENDING not in session.info, "history.together blocks do not nest"
    pending: list[dict[str, Any]] = []
    session.info[_PENDING] = pending
    try:
        yield
    finally:
        del session.info[_PENDING]
    from edi_gateway.store.bulk import insert_many

    insert_many(session.connection(), history, pending)


_PENDING = "edi_gateway.history.pending"


def pending_mark(session: Session) -> int | None:
    """How many events the enclosing :func:`together` block holds now (None: no block)."""
    pending = session.info.get(_PENDING)
    return None if pending is None else len(pending)


def drop_since(session: Session, mark: int | None) -> None:
    """Drop the events recorded in the enclosing :func:`together` block after ``mark``: those
    of work whose savepoint was rolled back."""
    pending = session.info.get(_PENDING)
    if pending is not None and mark is not None:
        del pending[mark:]


_INSERT = insert(history)
"""One statement, its values given as parameters: an ``insert().values()`` built per event
cost ~70 us more each (constructing it and its cache key), three events a document in bulk."""


def record_many(
    executor: Connection | Session,
    events: Sequence[tuple[str, str | None, int | None]],
    *,
    actor: str = SYSTEM,
) -> None:
    """Write ``(event, detail, order_id)`` events in the caller's transaction, one
    ``executemany`` for all (a bundle of thousands of orders writes one event on each)."""
    from edi_gateway.store.bulk import insert_many

    conn = executor if isinstance(executor, Connection) else executor.connection()
    rows = [{"event": e, "detail": d, "order_id": o} for e, d, o in events]
    insert_many(conn, history, rows, {"at": now(), "actor": actor, "message_id": None})
