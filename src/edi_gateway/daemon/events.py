"""What the daemon tells about each message and delivery: one log line and its metrics.

Every line about a message carries ``message_id`` (and ``connector``, ``partner``,
``order_id``, ``state``, ``code`` when known) as structured fields: ``--log-format json`` writes
them as JSON keys, the text format in the message.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from edi_gateway.store.db import Store

if TYPE_CHECKING:
    from edi_gateway.config import Settings
    from edi_gateway.daemon.metrics import Tally

log = logging.getLogger("edi_gateway.messages")


def messages_taken(
    store: Store, metrics: Tally, connector: str, states: Mapping[int, str], seconds: float
) -> None:
    """Log and count one acknowledged batch of ``connector``. Its messages are read only
    when something is told of them: Prometheus metrics, or log lines at INFO; else
    (``run --once``) only the failed ones, which are logged as warnings."""
    from edi_gateway.store.schema import messages

    metrics.batch(connector, seconds)
    told = log.isEnabledFor(logging.INFO)  # run --once logs warnings only: no line to build
    failed = [message_id for message_id, state in states.items() if state == "failed"]
    wanted = list(states) if metrics.live or told else failed
    if not wanted:
        return
    c = messages.c
    with store.connect() as conn:
        rows = conn.execute(
            select(
                c.id,
                c.filename,
                c.partner,
                c.error_code,
                c.error_detail,
                c.order_id,
                c.doc_kind,
                c.doc_id,
            ).where(c.id.in_(wanted))
        ).all()
    for row in rows:
        state = states[row.id]
        code = row.error_code if state == "failed" else None
        metrics.taken(
            connector, row.partner, code or ("INTERNAL_ERROR" if state == "failed" else None)
        )
        if state != "failed" and not told:
            continue
        fields: dict[str, Any] = {
            "message_id": row.id,
            "connector": connector,
            "partner": row.partner,
            "order_id": row.order_id,
            "state": state,
            "code": code,
            "file_name": row.filename,
        }
        what = f"{row.doc_kind} {row.doc_id}" if row.doc_kind else "document"
        if state == "failed":
            log.warning(
                "message %d (%s) from %s failed: %s %s",
                row.id,
                row.filename,
                connector,
                code,
                (row.error_detail or "")[:300],
                extra=fields,
            )
        else:
            log.info(
                "message %d (%s) from %s: %s, %s",
                row.id,
                row.filename,
                connector,
                what,
                state,
                extra=fields,
            )


def deliveries(store: Store, metrics: Tally, done: Mapping[int, str]) -> Counter[str]:
    """Log and count the outbox rows one flush tried to deliver (or whose receipt was settled);
    the sent ones per partner. A row awaiting its receipt is logged, counted once settled."""
    delivered: Counter[str] = Counter()
    if not done:
        return delivered
    from edi_gateway.outbound.outbox import AWAITING, SENT
    from edi_gateway.store.tables import OutboxRow

    with store.session() as session:
        rows = session.execute(
            select(
                OutboxRow.id,
                OutboxRow.connector,
                OutboxRow.partner,
                OutboxRow.kind,
                OutboxRow.doc_number,
                OutboxRow.order_id,
                OutboxRow.filename,
                OutboxRow.last_error,
                OutboxRow.delivered_to,
                OutboxRow.next_attempt_at,
            ).where(OutboxRow.id.in_(list(done)))
        ).all()
    for row in rows:
        state = done[row.id]
        sent = state == SENT
        if sent:
            delivered[row.partner] += 1
        if state != AWAITING:
            metrics.delivery(row.connector, row.partner, sent=sent)
        fields = {
            "outbox_id": row.id,
            "connector": row.connector,
            "partner": row.partner,
            "order_id": row.order_id,
            "state": state,
            "file_name": row.filename,
        }
        if state == AWAITING or sent:
            awaited = (
                f"; its receipt is awaited until {row.next_attempt_at:%Y-%m-%d %H:%M:%S} UTC"
                if state == AWAITING
                else ""
            )
            log.info(
                "outbox %d: %s %s sent to %s via %s (%s)%s",
                row.id,
                row.kind,
                row.doc_number,
                row.partner,
                row.connector,
                row.delivered_to,
                awaited,
                extra=fields,
            )
        else:
            log.warning(
                "outbox %d: %s %s to %s via %s not delivered (%s): %s",
                row.id,
                row.kind,
                row.doc_number,
                row.partner,
                row.connector,
                state,
                (row.last_error or "")[:300],
                extra=fields,
            )
    return delivered


def outbox_pending(store: Store) -> int:
    """How many outbox rows wait for delivery."""
    from edi_gateway.outbound.outbox import count_pending

    with store.connect() as conn:
        return count_pending(conn)


@dataclass(frozen=True, slots=True)
class Waiting:
    """Deliveries whose partner's receipt is awaited: how many, and when the oldest went."""

    count: int = 0
    oldest: datetime | None = None

    def health(self, moment: datetime) -> dict[str, Any]:
        """The ``waiting`` block of ``/healthz``."""
        age = None if self.oldest is None else (moment - self.oldest).total_seconds()
        seconds = None if age is None else round(max(age, 0.0), 1)
        return {"receipts": {"count": self.count, "oldest_seconds": seconds}}


def settle_receipts(store: Store, settings: Settings) -> dict[int, str]:
    """Check the awaited receipts (only looks, see outbound/receipts.py); the rows settled.
    Forwards whose files are now all delivered (or one failed) are moved on."""
    from edi_gateway.outbound.forward import note_deliveries
    from edi_gateway.outbound.receipts import check_receipts

    done = check_receipts(store, settings)
    if done:
        note_deliveries(store, wait=False)  # another gateway at it: next round
    return done


def receipts_waiting(store: Store, metrics: Tally) -> Waiting:
    """How many deliveries await their receipt (also the ``edi_receipts_awaiting`` gauge)."""
    from edi_gateway.outbound.receipts import awaiting_receipts

    with store.connect() as conn:
        count, oldest = awaiting_receipts(conn)
    metrics.receipts(count)
    return Waiting(count, oldest)
