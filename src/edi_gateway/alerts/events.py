"""Recording what operators are to be told (``alert_events``), only for subscribed causes."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import Connection, exists, func, insert, select

from edi_gateway.errors import REMEDY, ErrorCode
from edi_gateway.store.leases import EVENTS, is_postgres, xact_lock_shared, xact_locks
from edi_gateway.store.schema import alert_events, messages, outbox

if TYPE_CHECKING:
    from edi_gateway.config import Settings
    from edi_gateway.store.db import Store
    from edi_gateway.transports.email_spec import SmtpConnector


def mail_connectors(settings: Settings) -> list[SmtpConnector]:
    """The SMTP connectors of gateway.yaml (told by their ``type:``: a config without one never
    imports their model, as ``config/connectors.py`` intends)."""
    return [conn for conn in settings.connectors if conn.type == "smtp"]


IMPLIED = {"connector.down": ("store.unavailable",)}
"""Causes a channel hears because it lists another: store trouble was told as each connector
down until ``store.unavailable`` came (docs/adr/0033, session 13), so a channel listing
``connector.down`` keeps hearing of it after an upgrade, without an edit of its config."""


def heard(listed: Iterable[str]) -> tuple[str, ...]:
    """The causes a channel listing ``listed`` is told, in order: those and what they imply."""
    causes = list(dict.fromkeys(listed))
    for cause in list(causes):
        causes += [more for more in IMPLIED.get(cause, ()) if more not in causes]
    return tuple(causes)


def subscribed(settings: Settings) -> set[str]:
    """The causes some channel is told about (nothing is recorded for the others)."""
    causes = {c for conn in mail_connectors(settings) for c in heard(conn.notify)}
    return causes | {c for hook in settings.alerts.webhooks for c in heard(hook.causes)}


def record(
    conn: Connection,
    cause: str,
    text: str,
    at: datetime,
    *,
    partner: str | None = None,
    subject: str | None = None,
) -> None:
    """One event (in the caller's transaction)."""
    recording(conn)
    conn.execute(
        insert(alert_events).values(
            at=at, cause=cause, partner=partner, subject=subject and subject[:300], text=text[:2000]
        )
    )


def recording(conn: Connection) -> None:
    """Hold, until the caller's transaction ends, the shared lock every transaction that
    records events holds (``store.leases.EVENTS``), once per transaction.

    An event's id is taken when it is inserted and seen when its transaction commits: on
    PostgreSQL another gateway's later event (a higher id) can commit first, and a digest that
    told it moved its cursor past this one, which was then never told. A digest reads the
    events after taking the same lock exclusively (``alerts.digest``): it waits for every
    transaction recording one, and those that start meanwhile wait for it, so an event it
    does not see has a higher id than every one it read."""
    if not is_postgres(conn):
        return  # one writer: ids commit in order
    # the innermost: a lock taken in a savepoint that rolls back is given up with it
    transaction = conn.get_nested_transaction() or conn.get_transaction()
    if conn.info.get(_RECORDING) is not transaction:
        xact_lock_shared(conn, EVENTS, _EVENTS_KEY)
        conn.info[_RECORDING] = transaction


_RECORDING = "edi_gateway.alerts.recording"  # conn.info: the transaction holding the lock
_EVENTS_KEY = "alert_events"


def settled_events(conn: Connection) -> None:
    """Wait until no transaction records events, and keep new ones from starting until the
    caller's transaction ends (see :func:`recording`): its reads then see every event whose
    id is below the newest one they find."""
    xact_locks(conn, EVENTS, [_EVENTS_KEY])


def record_once(
    conn: Connection, cause: str, text: str, at: datetime, *, subject: str, within: timedelta
) -> bool:
    """Record an event about ``subject`` unless one of the same cause and subject was recorded
    within ``within`` (a state that lasts is told again after that, not at every look)."""
    e = alert_events.c
    recent = exists().where(e.cause == cause, e.subject == subject[:300], e.at > at - within)
    if conn.scalar(select(recent)):
        return False
    record(conn, cause, text, at, subject=subject)
    return True


def record_outcome(
    store: Store, settings: Settings, states: Mapping[int, str], at: datetime
) -> int:
    """New orders and failed messages among a batch's ``states`` (message id -> state)."""
    wanted = subscribed(settings) & {"order.received", "message.failed"}
    if not wanted or not states:
        return 0
    c = messages.c
    count = 0
    ids = list(states)
    with store.connect() as conn:
        for start in range(0, len(ids), 500):
            rows = conn.execute(
                select(c.id, c.state, c.filename, c.source, c.doc_kind, c.doc_id, c.partner)
                .add_columns(c.error_code, c.error_detail)
                .where(c.id.in_(ids[start : start + 500]))
                .order_by(c.id)
            )
            for row in rows:
                if row.state == "failed" and "message.failed" in wanted:
                    detail = (
                        (row.error_detail or "").splitlines()[0][:200] if row.error_detail else ""
                    )
                    text = (
                        f"message {row.id} {row.filename} from {row.source}: "
                        f"{row.error_code} {detail}".strip()
                    )
                    record(
                        conn,
                        "message.failed",
                        text,
                        at,
                        partner=row.partner,
                        subject=row.error_code,
                    )
                    count += 1
                elif (
                    row.doc_kind == "Order"
                    and row.state in ("processed", "orphan")
                    and "order.received" in wanted
                ):
                    text = f"order {row.doc_id} (message {row.id})"
                    record(conn, "order.received", text, at, partner=row.partner)
                    count += 1
    return count


def record_deliveries(
    store: Store, settings: Settings, done: Mapping[int, str], at: datetime
) -> int:
    """Deliveries among ``done`` (outbox id -> state) that just failed for the first time, or
    were given up on."""
    if "delivery.failed" not in subscribed(settings) or not done:
        return 0
    o = outbox.c
    count = 0
    ids = [i for i, state in done.items() if state in ("pending", "failed")]
    with store.connect() as conn:
        for start in range(0, len(ids), 500):
            rows = conn.execute(
                select(o.id, o.state, o.attempts, o.partner, o.connector, o.kind, o.doc_number)
                .add_columns(o.last_error)
                .where(o.id.in_(ids[start : start + 500]))
            )
            for row in rows:
                if row.state == "pending" and row.attempts != 1:
                    continue  # told at the first failure and when given up, not at every retry
                how = "given up" if row.state == "failed" else "failed, retrying"
                text = (
                    f"outbox {row.id}: {row.kind} {row.doc_number} via {row.connector} {how}: "
                    f"{(row.last_error or '')[:300]}"
                )
                record(
                    conn, "delivery.failed", text, at, partner=row.partner, subject=row.connector
                )
                count += 1
    return count


def record_connector_down(
    store: Store, settings: Settings, connector: str, *, code: str, message: str, at: datetime
) -> None:
    """A connector whose poll (or server) just failed after working (not because of the
    store: :func:`record_store_unavailable`)."""
    if "connector.down" not in subscribed(settings):
        return
    text = f"connector {connector}: {code}: {message[:500]}" + _remedy(code)
    with store.connect() as conn:
        record(conn, "connector.down", text, at, subject=connector)


def record_store_unavailable(
    store: Store, settings: Settings, trouble: StoreTrouble, at: datetime
) -> None:
    """The store failed this gateway's polls from ``trouble.since`` until it worked again at
    ``at``: one event for the whole time and every connector it held up (it could not be
    recorded sooner: the events are in the store)."""
    if "store.unavailable" not in subscribed(settings):
        return
    seconds = max(0, round((at - trouble.since).total_seconds()))
    text = (
        f"from {trouble.since:%Y-%m-%d %H:%M:%S} to {at:%H:%M:%S} UTC ({seconds} s), "
        f"connectors not polled meanwhile: {', '.join(sorted(trouble.connectors))}; "
        f"{trouble.code}: {trouble.message[:500]}" + _remedy(trouble.code)
    )
    with store.connect() as conn:
        record(conn, "store.unavailable", text, at, subject=trouble.code)


@dataclass(slots=True)
class StoreTrouble:
    """Polls the store failed since ``since`` (STORE_BUSY, STORE_UNAVAILABLE), until one
    works: the first failure's code and message, and every connector held up."""

    since: datetime
    code: str
    message: str
    connectors: set[str] = field(default_factory=set)


def _remedy(code: str) -> str:
    try:
        remedy = REMEDY.get(ErrorCode(code), "")
    except ValueError:
        remedy = ""
    return f" ({remedy})" if remedy else ""


def newest(conn: Connection) -> int:
    """The id of the newest event (0 when none), for a channel that starts listening now."""
    return int(conn.scalar(select(func.coalesce(func.max(alert_events.c.id), 0))) or 0)
