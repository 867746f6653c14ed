"""Digests: each channel is told every event of its due causes, grouped, with what to do.

A cause is due on a channel when events of it wait (newer than the channel's cursor) and the
channel was not told about that cause within ``alerts.every_minutes``; a channel whose last
attempt failed is tried again no sooner than ``RETRY``. All due causes of a channel go in one
digest. The cursor rows are locked while a digest goes (``FOR UPDATE SKIP LOCKED`` on
PostgreSQL; SQLite has one writer), so two gateways never send the same digest; a crash between
sending and committing can send one digest twice (at least once, never lost). The events are
read once no transaction is still recording one (``alerts.events.recording``): a cursor moved
to the newest event read never passes one of a lower id that another gateway commits later.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    and_,
    delete,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError

from edi_gateway.alerts.events import heard, mail_connectors, newest, settled_events
from edi_gateway.errors import ErrorCode, GatewayError
from edi_gateway.store.leases import is_postgres, skip_locked
from edi_gateway.store.schema import alert_cursors, alert_events

if TYPE_CHECKING:
    from edi_gateway.config import Settings
    from edi_gateway.config.alerts import Webhook
    from edi_gateway.store.db import Store
    from edi_gateway.transports.email_spec import SmtpConnector

log = logging.getLogger(__name__)
RETRY = timedelta(seconds=60)
KEEP = timedelta(days=1)  # events every channel was told are deleted after this
MAX_LISTED = 50  # lines per cause and partner in one digest; the rest are counted
TITLES = {
    "order.received": ("New order received", "new orders received"),
    "message.failed": ("Message failed", "messages failed"),
    "delivery.failed": ("Delivery failed", "deliveries failed"),
    "delivery.overdue": ("Deliveries overdue", "connectors with overdue deliveries"),
    "connector.down": ("Connector down", "connectors down"),
    "store.unavailable": ("Store unavailable", "times the store was unavailable"),
    "certificate.expiring": ("Certificate expiring", "certificates expiring"),
    "sla.overdue": ("Order overdue", "orders overdue"),
}
WHAT_TO_DO = {
    "order.received": "Review them with `edi-gateway orders list --status Received`.",
    "message.failed": (
        "`edi-gateway messages show ID` says why (code and remedy); fix it with the sender or "
        "in gateway.yaml, then `messages redrive ID`, or `messages dismiss ID --reason`."
    ),
    "delivery.failed": (
        "`edi-gateway outbox list --state pending` (and `--state failed`) lists them with the "
        "error; fix what it names, then `edi-gateway outbox retry --now` (or `outbox withdraw "
        "ID --reason` for a document that must not go)."
    ),
    "delivery.overdue": (
        "Documents are due but nobody delivers them: check that `edi-gateway run` is running "
        "and flushing its outbox (`/healthz`, the daemon's log)."
    ),
    "connector.down": (
        "The connector is retried with backoff; `/healthz` shows its last error. Fix what the "
        "error names (server, credentials, path) and it recovers by itself."
    ),
    "store.unavailable": (
        "The gateway could not use its store for a while (each line says from when to when "
        "and which connectors were not polled meanwhile): check the database server, its disk "
        "and connections, and the network to it. Nothing was lost: what was not taken waited "
        "at its source and was taken once the store worked again. STORE_BUSY (transactions "
        "kept waiting for each other's locks) that recurs is worth reporting with the log."
    ),
    "certificate.expiring": (
        "Renew the certificate before the date (with the partner for theirs), replace the file "
        "named, and restart the gateway."
    ),
    "sla.overdue": (
        "`edi-gateway orders list --overdue` lists them: respond (`edi-gateway respond ORDER`) "
        "or despatch (`edi-gateway despatch ORDER`), or ask the supplier to."
    ),
}


@dataclass(frozen=True, slots=True)
class Digest:
    """What one channel is told at once: per cause, per partner, the events' lines."""

    causes: dict[str, dict[str, list[str]]]
    counts: dict[str, int]

    @property
    def subject(self) -> str:
        total = sum(self.counts.values())
        if total == 1:
            [(cause, by_partner)] = self.causes.items()
            [lines] = by_partner.values()
            return f"{TITLES[cause][0]}: {lines[0]}"[:200]
        parts = ", ".join(
            f"{n} {TITLES[cause][1] if n > 1 else TITLES[cause][0].lower()}"
            for cause, n in self.counts.items()
        )
        return f"edi-gateway: {total} alerts ({parts})"[:200]

    def text(self) -> str:
        out: list[str] = []
        for cause, by_partner in self.causes.items():
            out.append(f"{TITLES[cause][0]} ({self.counts[cause]})")
            out.append(f"  What to do: {WHAT_TO_DO[cause]}")
            for partner, lines in by_partner.items():
                out.append(f"  {partner}:")
                out += [f"    - {line}" for line in lines[:MAX_LISTED]]
                if len(lines) > MAX_LISTED:
                    out.append(f"    ... and {len(lines) - MAX_LISTED} more")
            out.append("")
        return "\n".join(out).rstrip() + "\n"

    def json(self, at: datetime) -> dict[str, Any]:
        return {
            "gateway": "edi-gateway",
            "sent_at": at.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "subject": self.subject,
            "alerts": [
                {
                    "cause": cause,
                    "count": self.counts[cause],
                    "what_to_do": WHAT_TO_DO[cause],
                    "partners": {p: lines[:MAX_LISTED] for p, lines in by_partner.items()},
                }
                for cause, by_partner in self.causes.items()
            ],
        }


Send = Callable[[Digest, datetime], None]


@dataclass(frozen=True, slots=True)
class Channel:
    """Where alerts go: its name (a connector's or a webhook's), its causes, how to send."""

    name: str
    causes: tuple[str, ...]
    send: Send


def channels(settings: Settings) -> list[Channel]:
    """Every alert channel of gateway.yaml."""
    found = [
        Channel(conn.name, heard(conn.notify), _mail(conn))
        for conn in mail_connectors(settings)
        if conn.notify
    ]
    return found + [
        Channel(hook.name, heard(hook.causes), _post(hook)) for hook in settings.alerts.webhooks
    ]


def _mail(conn: SmtpConnector) -> Send:
    def send(digest: Digest, at: datetime) -> None:
        from edi_gateway.transports.email_out import SmtpOutbound

        SmtpOutbound(conn).notify(digest.subject, digest.text())

    return send


def signature(secret: str, stamp: int, body: bytes) -> str:
    """The ``X-Edi-Gateway-Signature`` header of a webhook POST of ``body`` at ``stamp``."""
    mac = hmac.new(secret.encode(), f"{stamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={stamp},v1={mac}"


def _post(hook: Webhook) -> Send:
    def send(digest: Digest, at: datetime) -> None:
        import urllib.error  # only where a webhook is configured (start-up of run)
        import urllib.request

        body = json.dumps(digest.json(at), ensure_ascii=False).encode()
        stamp = int(time.time())
        request = urllib.request.Request(  # noqa: S310 - the URL is an http(s) URL from config
            str(hook.url),
            data=body,
            method="POST",
            headers={
                "Content-Type": "application/json",
                "User-Agent": "edi-gateway-alerts",
                "X-Edi-Gateway-Signature": signature(hook.secret.value(), stamp, body),
            },
        )
        try:
            with urllib.request.urlopen(request, timeout=hook.timeout_seconds) as answer:  # noqa: S310
                answer.read(65536)
        except urllib.error.HTTPError as exc:
            raise GatewayError(
                ErrorCode.DELIVERY_REFUSED, f"webhook {hook.name} answered {exc.code} {exc.reason}"
            ) from exc
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise GatewayError(
                ErrorCode.CONNECTION_FAILED,
                f"webhook {hook.name}: cannot reach {hook.url}: {reason}",
            ) from exc

    return send


def prepare(store: Store, settings: Settings) -> None:
    """Give each channel and cause a cursor at the newest event: a channel is told what happens
    from when it first runs, not the history before it."""
    with store.connect() as conn:
        _prepare(conn, channels(settings))


def _prepare(conn: Connection, found: list[Channel]) -> None:
    c = alert_cursors.c
    have = {(row.channel, row.cause) for row in conn.execute(select(c.channel, c.cause))}
    start = None
    for channel in found:
        for cause in channel.causes:
            if (channel.name, cause) in have:
                continue
            start = newest(conn) if start is None else start
            row = {"channel": channel.name, "cause": cause, "last_event_id": start}
            try:
                with conn.begin_nested():  # another gateway may be creating it right now
                    conn.execute(insert(alert_cursors).values(**row))
            except IntegrityError:
                pass


def send_due(store: Store, settings: Settings, at: datetime) -> dict[str, str]:
    """Send each channel the digest of its due causes; channel -> what happened (``sent N``,
    or the error); channels with nothing due are left out."""
    every = timedelta(minutes=settings.alerts.every_minutes)
    outcome: dict[str, str] = {}
    found = channels(settings)
    if not found:
        return outcome  # nothing is recorded for causes nobody listens to
    for channel in found:
        with store.connect() as conn:
            _prepare(conn, [channel])
            done = _send_channel(store, conn, channel, at, every)
        if done:
            outcome[channel.name] = done
    with store.connect() as conn:
        _forget(conn, found, at)
    return outcome


def _send_channel(
    store: Store, conn: Connection, channel: Channel, at: datetime, every: timedelta
) -> str | None:
    c, e = alert_cursors.c, alert_events.c
    cursors = conn.execute(
        skip_locked(
            select(c.cause, c.last_event_id, c.last_sent_at, c.last_attempt_at).where(
                c.channel == channel.name, c.cause.in_(channel.causes)
            )
        )
    ).all()
    due = {
        row.cause: row.last_event_id
        for row in cursors
        if (row.last_sent_at is None or at - row.last_sent_at >= every)
        and (row.last_attempt_at is None or at - row.last_attempt_at >= min(every, RETRY))
    }
    if not due:
        return None
    waiting = or_(*(and_(e.cause == cause, e.id > after) for cause, after in due.items()))
    events = _waiting_events(store, conn, waiting)
    if not events:
        return None
    grouped: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    counts: dict[str, int] = defaultdict(int)
    last: dict[str, int] = {}
    for row in events:
        grouped[row.cause][row.partner or "(no partner)"].append(row.text)
        counts[row.cause] += 1
        last[row.cause] = row.id
    digest = Digest({k: dict(v) for k, v in grouped.items()}, dict(counts))
    mine = and_(c.channel == channel.name, c.cause.in_(list(last)))
    try:
        channel.send(digest, at)
    except (GatewayError, OSError) as exc:
        log.warning("alerts for %s not sent (tried again in %s): %s", channel.name, RETRY, exc)
        conn.execute(
            update(alert_cursors).where(mine).values(last_attempt_at=at, last_error=str(exc)[:2000])
        )
        return f"failed: {exc}"
    for cause, newest_id in last.items():
        conn.execute(
            update(alert_cursors)
            .where(c.channel == channel.name, c.cause == cause)
            .values(last_event_id=newest_id, last_sent_at=at, last_attempt_at=at, last_error=None)
        )
    return f"sent {len(events)}"


def _waiting_events(store: Store, conn: Connection, waiting: ColumnElement[bool]) -> Sequence[Any]:
    """The events ``waiting`` selects, in id order, none of a lower id still uncommitted (the
    cursor moves to the newest: one committed later would never be told). On PostgreSQL read
    in a short transaction of their own after waiting for those recording events
    (``alerts.events.recording``), which wait for it meanwhile, not for the digest's sending;
    on SQLite, with one writer, ids commit in order."""
    e = alert_events.c
    query = select(e.id, e.cause, e.partner, e.text).where(waiting).order_by(e.id)
    if not is_postgres(conn):
        return conn.execute(query).all()
    with store.connect() as reading:
        settled_events(reading)
        return reading.execute(query).all()


def _forget(conn: Connection, found: list[Channel], at: datetime) -> None:
    """Delete events older than ``KEEP`` that every channel of their cause was told (and those
    of causes no channel listens to)."""
    c, e = alert_cursors.c, alert_events.c
    told = dict(
        conn.execute(
            select(c.cause, func.min(c.last_event_id))
            .where(c.channel.in_([ch.name for ch in found]))
            .group_by(c.cause)
        ).all()
    )
    old = e.at < at - KEEP
    conn.execute(delete(alert_events).where(old, e.cause.not_in(list(told))))
    for cause, upto in told.items():
        conn.execute(delete(alert_events).where(old, e.cause == cause, e.id <= upto))
