"""Writing history events: every state change says when, what and by whom."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy.orm import Session

from edi_gateway.store.tables import HistoryEvent

SYSTEM = "system"


def now() -> datetime:
    """The current time in UTC."""
    return datetime.now(UTC)


def record(
    session: Session,
    event: str,
    detail: str | None = None,
    *,
    actor: str = SYSTEM,
    order_id: int | None = None,
    message_id: int | None = None,
) -> None:
    """Add one history event to the session (committed with the change it describes)."""
    session.add(
        HistoryEvent(
            at=now(),
            order_id=order_id,
            message_id=message_id,
            event=event,
            detail=detail,
            actor=actor,
        )
    )
