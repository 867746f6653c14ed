"""What the daemon tells about each message and delivery: one log line and its metrics.

Every line about a message carries ``message_id`` (and ``connector``, ``partner``,
``order_id``, ``state``, ``code`` when known) as structured fields: ``--log-format json`` writes
them as JSON keys, the text format in the message.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Mapping
from typing import Any

from sqlalchemy import select

from edi_gateway.daemon_metrics import Metrics
from edi_gateway.store.db import Store

log = logging.getLogger("edi_gateway.messages")


def messages_taken(
    store: Store, metrics: Metrics, connector: str, states: Mapping[int, str], seconds: float
) -> None:
    """Log and count one acknowledged batch of ``connector``."""
    from edi_gateway.store.schema import messages

    metrics.processing.labels(connector).observe(seconds)
    if not states:
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
            ).where(c.id.in_(list(states)))
        ).all()
    for row in rows:
        state = states[row.id]
        code = row.error_code if state == "failed" else None
        metrics.taken(
            connector, row.partner, code or ("INTERNAL_ERROR" if state == "failed" else None)
        )
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


def deliveries(store: Store, metrics: Metrics, done: Mapping[int, str]) -> Counter[str]:
    """Log and count the outbox rows one flush tried to deliver; the sent ones per partner."""
    from edi_gateway.outbound.outbox import SENT
    from edi_gateway.store.tables import OutboxRow

    delivered: Counter[str] = Counter()
    if not done:
        return delivered
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
            ).where(OutboxRow.id.in_(list(done)))
        ).all()
    for row in rows:
        state = done[row.id]
        sent = state == SENT
        if sent:
            delivered[row.partner] += 1
        metrics.delivery(row.connector, row.partner, sent=sent)
        fields = {
            "outbox_id": row.id,
            "connector": row.connector,
            "partner": row.partner,
            "order_id": row.order_id,
            "state": state,
            "file_name": row.filename,
        }
        if sent:
            log.info(
                "outbox %d: %s %s sent to %s via %s (%s)",
                row.id,
                row.kind,
                row.doc_number,
                row.partner,
                row.connector,
                row.delivered_to,
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

    with store.session() as session:
        return count_pending(session)
