"""Operator notifications by mail: "new order received", "message failed".

An ``smtp`` connector with ``notify: [order.received, message.failed]`` subscribes its ``to``
addresses to those events. After each poll the daemon calls :func:`notify_outcome` with the
states the poll produced; it sends at most one mail per event and connector, listing every
message concerned. A notification that cannot be sent is logged and dropped: it never holds up
intake or processing (the messages themselves are in the store either way).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from edi_gateway.store.schema import messages
from edi_gateway.transports.email_spec import SmtpConnector

if TYPE_CHECKING:
    from edi_gateway.config import Settings
    from edi_gateway.store.db import Store

log = logging.getLogger(__name__)
MAX_LISTED = 50  # lines in one notification; the rest are counted


def notify_outcome(settings: Settings, store: Store, states: Mapping[int, str]) -> int:
    """Mail the subscribed operators about new orders and failed messages among ``states``
    (message id -> state, as ``Gateway.poll`` returns them); return the mails sent."""
    subscribers = [c for c in settings.connectors if isinstance(c, SmtpConnector) and c.notify]
    if not subscribers or not states:
        return 0
    notices = _notices(store, list(states))
    if not notices:
        return 0
    from edi_gateway.transports.base import TransportError
    from edi_gateway.transports.email_out import SmtpOutbound

    sent = 0
    for conn in subscribers:
        transport = SmtpOutbound(conn)
        for event, (subject, text) in notices.items():
            if event not in conn.notify:
                continue
            try:
                transport.notify(subject, text)
                sent += 1
            except TransportError as exc:
                log.warning("notification %s via %s not sent: %s", event, conn.name, exc)
    return sent


def _notices(store: Store, ids: list[int]) -> dict[str, tuple[str, str]]:
    """event -> (subject, text) for the messages ``ids``."""
    c = messages.c
    with store.connect() as conn:
        rows = conn.execute(
            select(
                c.id,
                c.state,
                c.filename,
                c.source,
                c.doc_kind,
                c.doc_id,
                c.partner,
                c.error_code,
                c.error_detail,
            )
            .where(c.id.in_(ids[:1000]))
            .order_by(c.id)
        ).all()
    orders = [r for r in rows if r.doc_kind == "Order" and r.state in ("processed", "orphan")]
    failed = [r for r in rows if r.state == "failed"]
    notices: dict[str, tuple[str, str]] = {}
    if orders:
        subject = _subject("New order received", "new orders received", orders, _order_line)
        notices["order.received"] = (subject, _listing(orders, _order_line))
    if failed:
        subject = _subject("Message failed", "messages failed", failed, _failed_line)
        text = _listing(failed, _failed_line) + "\n\nSee: edi-gateway messages show ID"
        notices["message.failed"] = (subject, text)
    return notices


def _order_line(row: Any) -> str:
    return f"order {row.doc_id} from {row.partner or 'an unknown partner'} (message {row.id})"


def _failed_line(row: Any) -> str:
    detail = (row.error_detail or "").splitlines()[0][:200] if row.error_detail else ""
    return f"message {row.id} {row.filename} from {row.source}: {row.error_code} {detail}".strip()


def _subject(one: str, many: str, rows: list[Any], line: Callable[[Any], str]) -> str:
    return f"{one}: {line(rows[0])}" if len(rows) == 1 else f"{len(rows)} {many}"


def _listing(rows: list[Any], line: Callable[[Any], str]) -> str:
    text = "\n".join(f"- {line(r)}" for r in rows[:MAX_LISTED])
    if len(rows) > MAX_LISTED:
        text += f"\n... and {len(rows) - MAX_LISTED} more"
    return text
