"""The outbox: every outbound document is a row before it is bytes anywhere.

``enqueue`` adds a row in the caller's transaction (with the document it carries). ``flush``
delivers due rows through their connector. Delivery is idempotent: the folder transport
writes a file once per name and content, so a flush re-run after a crash between delivering
and marking the row ``sent`` sends nothing twice and loses nothing. A failed delivery is
retried with exponential backoff; after ``MAX_ATTEMPTS`` the row is ``failed`` and shows in
``outbox list --state failed``.

A delivery whose partner confirms it later (an AS2 async MDN) is not waited for: the row is
``awaiting_receipt`` with the transport's ``receipt`` (what to expect), ``sent_at`` (when it
went) and ``next_attempt_at`` (the deadline), and ``check_receipts`` (run by ``flush`` and by
the daemon on its own cadence) only looks: a good receipt makes it ``sent``, a bad one or none
by the deadline is a failed attempt like any other (retried with the same message id). A
receipt that arrives after its attempt was failed still counts: a confirming one makes the row
``sent``, a refusing one is recorded (docs/adr/0017-waits-on-partners-are-state.md).
"""

from __future__ import annotations

import json
import logging
import re
from collections import Counter
from dataclasses import dataclass, field, fields, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import Connection, and_, bindparam, func, insert, or_, select, update

from edi_gateway.crashpoints import reach
from edi_gateway.errors import ErrorCode, GatewayError
from edi_gateway.pipeline.history import now, record
from edi_gateway.store.db import transient
from edi_gateway.store.leases import lease_timeout, skip_locked
from edi_gateway.store.schema import error_code_of, outbox, outbox_payloads

if TYPE_CHECKING:
    from sqlalchemy import ColumnElement, Executable
    from sqlalchemy.orm import Session

    from edi_gateway.config import Settings
    from edi_gateway.store.db import Store
    from edi_gateway.store.tables import Forward, OutboxRow
    from edi_gateway.transports.base import OutboundTransport

log = logging.getLogger(__name__)
PENDING, SENT, FAILED = "pending", "sent", "failed"
AWAITING = "awaiting_receipt"
WITHDRAWN = "withdrawn"
MAX_ATTEMPTS = 8
FIRST_RETRY = timedelta(seconds=30)
LONGEST_WAIT = timedelta(hours=1)
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True, slots=True)
class Outgoing:
    """What to queue: the bytes, for whom, through which connector, as which file."""

    partner: str
    connector: str
    kind: str
    doc_number: str
    payload: bytes
    extension: str = "xml"
    media_type: str = "application/xml"
    document_id: int | None = None
    order_id: int | None = None
    filename: str | None = None
    """The file name wanted (a supplier's pattern); default ``<kind>-<number>.<ext>``."""


def enqueue(session: Session | Connection, item: Outgoing, settings: Settings) -> int:
    """Queue ``item`` in the caller's transaction (an ORM session, or a Core connection: a
    bundle flush, which imports no ORM); return its outbox id.

    File names are ``item.filename`` or ``<kind>-<document number>.<ext>``, made safe, and
    never collide with another row of the same connector (a counter is added). A UBL document
    for a partner whose ``signature:`` says ``sign`` is signed here, so the row holds exactly
    the bytes that are sent (docs/adr/0021-xml-signatures.md).
    """
    item = signed(item, settings)

    wanted = item.filename or f"{item.kind}-{item.doc_number}.{item.extension}"
    stem, dot, extension = wanted.rpartition(".")
    if not dot:
        stem, extension = wanted, item.extension
    stem = _UNSAFE.sub("_", stem).strip("._")[:180] or "document"
    filename = f"{stem}.{extension}"
    stamp = now()
    row = {
        "created_at": stamp,
        "document_id": item.document_id,
        "order_id": item.order_id,
        "partner": item.partner,
        "connector": item.connector,
        "kind": item.kind,
        "doc_number": item.doc_number,
        "filename": filename,
        "media_type": item.media_type,
        "state": PENDING,
        "attempts": 0,
        "next_attempt_at": stamp,
    }
    if not isinstance(session, Connection):
        session.flush()  # what the caller changed goes first, as it always did
    # The row with Core, not as an ORM object (no caller uses one): its unit of work cost
    # more than the INSERT; values as parameters to a statement built once. Names are mostly
    # unique: the wanted one is inserted unless the connector has it (the unique index says
    # so, in the same statement); only then is a free one looked for.
    # Another gateway may take the free name found before this insert commits (PostgreSQL:
    # its row is not seen until then): the insert waits for it and, taken, finds no row; the
    # next look sees the name taken. Each turn follows a name another transaction committed.
    queue_if_free = _queue_if_free(session)
    outbox_id: int | None = session.execute(queue_if_free, row).scalar()
    while outbox_id is None:
        filename = row["filename"] = _free_name(session, item.connector, stem, extension)
        outbox_id = session.execute(queue_if_free, row).scalar()
    # the bytes apart from the row, whose state changes with every attempt (schema.py)
    # (as parameters, not .values(): a cached statement would keep the first one's bytes)
    session.execute(_PAYLOAD, {"outbox_id": outbox_id, "payload": item.payload})
    record(
        session,
        "outbox.queued",
        f"{item.kind} {item.doc_number} for {item.partner} via {item.connector} as {filename}",
        order_id=item.order_id,
    )
    return outbox_id


_QUEUE_IF_FREE: dict[str, Executable] = {}


def _queue_if_free(session: Session | Connection) -> Executable:
    """``INSERT ... ON CONFLICT (connector, filename) DO NOTHING RETURNING id`` in the
    store's dialect (SQLite or PostgreSQL): no row when the name is taken."""
    bind = session if isinstance(session, Connection) else session.get_bind()
    dialect = bind.dialect.name
    found = _QUEUE_IF_FREE.get(dialect)
    if found is None:
        from edi_gateway.store.bulk import insert_if_new  # the store's dialect only

        statement = insert_if_new(dialect, outbox, [outbox.c.connector, outbox.c.filename])
        found = _QUEUE_IF_FREE[dialect] = statement.returning(outbox.c.id)
    return found


_PAYLOAD = insert(outbox_payloads)


def signed(item: Outgoing, settings: Settings) -> Outgoing:
    """``item`` with its UBL payload signed when its partner's settings say ``sign``."""
    partner = settings.partner(item.partner)
    signature = partner.signature if partner is not None else None
    if signature is None or not signature.sign or item.media_type != "application/xml":
        return item
    from signxml.exceptions import SignXMLException

    from edi_gateway.ubl.signature import sign_ubl

    what = f"{item.kind} {item.doc_number} for {item.partner}"
    try:
        return replace(item, payload=sign_ubl(item.payload, signature.signing_key))
    except (ValueError, SignXMLException) as exc:
        raise GatewayError(
            ErrorCode.INTERNAL_ERROR, f"signing {what} failed ({exc}); nothing was queued"
        ) from exc


def flush(
    store: Store,
    settings: Settings,
    *,
    partner: str | None = None,
    at: datetime | None = None,
    only: list[int] | None = None,
) -> dict[int, str]:
    """Settle the receipts that came (``check_receipts``), then deliver every due pending row
    (of ``partner``, or among the ids ``only``, if given); return id -> new state of each row
    either touched."""
    moment = at or now()
    if _idle(store, moment):
        return {}
    from edi_gateway.outbound.receipts import check_receipts

    done = check_receipts(store, settings, partner=partner, at=moment)
    o = outbox.c
    query = select(o.id).where(o.state == PENDING, o.next_attempt_at <= moment)
    if partner:
        query = query.where(o.partner == partner)
    if only is not None:
        query = query.where(o.id.in_(only))
    with store.connect() as conn:
        due = list(conn.scalars(query.order_by(o.id)))
    opened: dict[str, OutboundTransport] = {}  # one connection per connector and flush
    try:
        for row_id in due:
            # One transaction per row: a crash re-sends at most the row in hand, and the store
            # is not held while other rows go over the wire. The row is locked while it goes:
            # another gateway skips it, and one that stalls past its lease cannot commit.
            with store.connect() as conn:
                found = locked_deliveries(conn, o.id == row_id)
                if not found or found[0].state != PENDING:
                    continue
                row = found[0]
                # Locked the gateway's lease plus what one exchange through it may take.
                exchange = settings.connector(row.connector).exchange_seconds
                lease_timeout(conn, settings.daemon.lease_seconds + exchange)
                if _checked(conn, row, settings, at or now()):
                    done[row_id] = _deliver(conn, row, settings, opened, at or now())
                else:
                    done[row_id] = row.state
                save_delivery(conn, row)
    finally:
        for transport in opened.values():
            close_quietly(transport)
    return done


@dataclass(slots=True)
class Delivery:
    """An outbox row while one delivery attempt (or the check of its receipt) changes it:
    read with Core and written back by :func:`save_delivery` in the same transaction, so a
    delivery cycle (``outbox flush``, most of a bundle flush's run) never imports the ORM
    (~0.1 s of start-up: docs/adr/0039). The fields an attempt may change are the last."""

    id: int
    order_id: int | None
    partner: str
    connector: str
    kind: str
    doc_number: str
    filename: str
    media_type: str
    state: str
    attempts: int
    next_attempt_at: datetime
    last_error: str | None
    delivered_to: str | None
    sent_at: datetime | None
    receipt: str | None
    read: tuple[object, ...] = field(init=False, repr=False, compare=False)
    """The changeable fields as read: :func:`save_delivery` writes nothing when none changed
    (a receipt still awaited, checked every second)."""

    def __post_init__(self) -> None:
        self.read = self.changes()

    def changes(self) -> tuple[object, ...]:
        """The fields an attempt may change, as they are now."""
        return tuple(getattr(self, name) for name in _CHANGEABLE)


_CHANGEABLE = (
    "state",
    "attempts",
    "next_attempt_at",
    "last_error",
    "delivered_to",
    "sent_at",
    "receipt",
)
_DELIVERY_COLUMNS = [outbox.c[f.name] for f in fields(Delivery) if f.init]
_SAVE = update(outbox).where(outbox.c.id == bindparam("row_id"))
"""Built once; the columns set are those of the parameters given (``save_delivery``)."""


def locked_deliveries(conn: Connection, condition: ColumnElement[bool]) -> list[Delivery]:
    """The outbox rows ``condition`` selects, in ID order, locked for this transaction; those
    another transaction holds are skipped (store/leases.py)."""
    query = skip_locked(select(*_DELIVERY_COLUMNS).where(condition).order_by(outbox.c.id))
    return [Delivery(*found) for found in conn.execute(query)]


def save_delivery(conn: Connection, row: Delivery) -> None:
    """Write what changed on ``row`` since it was read, if anything (its ``error_code`` with its
    ``last_error``, as the ORM class keeps them together)."""
    now_is = row.changes()
    if now_is == row.read:
        return
    values = dict(zip(_CHANGEABLE, now_is, strict=True))
    conn.execute(_SAVE, {"row_id": row.id, "error_code": error_code_of(row.last_error), **values})
    row.read = now_is


def _idle(store: Store, moment: datetime) -> bool:
    """No row is due and no receipt is awaited, so a flush has nothing to do: asked through the
    table alone, so an idle flush (most of a daemon's) never imports the ORM mapping."""
    o = outbox.c
    work = select(o.id).where(
        or_(
            and_(o.state == PENDING, o.next_attempt_at <= moment),
            and_(o.receipt.is_not(None), o.state.in_((AWAITING, PENDING, FAILED))),
        )
    )
    with store.connect() as conn:
        return conn.execute(work.limit(1)).first() is None


def _checked(conn: Connection, row: Delivery, settings: Settings, moment: datetime) -> bool:
    """The official rules passed (or are off): the row may go. Held or retried otherwise."""
    from edi_gateway.outbound.checks import passes_rules

    try:
        return passes_rules(conn, row, settings)
    except Exception as exc:  # the check could not run: a failed attempt, retried, never a jam
        if transient(exc):
            raise
        if not isinstance(exc, GatewayError):
            log.exception("checking outbox row %s against the rules", row.id)
        failed_attempt(conn, row, exc, moment)
        return False


def _deliver(
    conn: Connection,
    row: Delivery,
    settings: Settings,
    opened: dict[str, OutboundTransport],
    moment: datetime,
) -> str:
    """One delivery attempt of ``row`` (reusing the connector's open transport); its state."""
    from edi_gateway.transports import open_outbound
    from edi_gateway.transports.base import AwaitingReceipt

    try:
        transport = opened.get(row.connector)
        if transport is None:
            transport = open_outbound(settings.connector(row.connector))
            opened[row.connector] = transport
        where = transport.deliver(row.filename, payload_of(conn, row), delivery_headers(row))
        reach("after-send")
    except Exception as exc:  # any transport failure is this row's failed attempt
        if transient(exc):  # the store went away (the row's payload is read on demand), not
            raise  # the partner: nothing to count, and the flush fails (daemon: one line)
        if not isinstance(exc, GatewayError | OSError):  # a transport bug: say so, go on
            log.exception("delivering outbox row %s via %s", row.id, row.connector)
        close_quietly(opened.pop(row.connector, None))  # the next row opens a fresh one
        failed_attempt(conn, row, exc, moment)
        return row.state
    if isinstance(where, AwaitingReceipt):  # the attempt ends when the receipt is checked
        row.state, row.delivered_to, row.sent_at = AWAITING, where.where, moment
        row.next_attempt_at = moment + timedelta(seconds=where.wait_seconds)
        row.receipt = json.dumps(dict(where.receipt), sort_keys=True)
        until = f"{row.next_attempt_at:%Y-%m-%d %H:%M:%S} UTC"
        record(
            conn,
            "outbox.awaiting_receipt",
            f"{row.kind} {row.doc_number} to {row.partner}: {where.where}; receipt by {until}",
            order_id=row.order_id,
        )
        return row.state
    mark_sent(conn, row, where, moment)
    return row.state


_NAMES_AT_ONCE = 64


def _free_name(session: Session | Connection, connector: str, stem: str, extension: str) -> str:
    """The first of ``stem.ext``, ``stem-2.ext``, ``stem-3.ext``... no row of ``connector``
    holds, asked of the (connector, filename) unique index by exact names: the name itself,
    then 64 at a time. A ``LIKE 'stem%'`` read every row of the connector whose name starts
    so, in SQLite (whose LIKE ignores case) the connector's whole outbox: 4 ms an enqueue at
    50,000 rows, 0.15 ms now."""
    first, size = 1, 1  # names are mostly unique: the wanted one alone first
    while True:
        names = [
            f"{stem}.{extension}" if n == 1 else f"{stem}-{n}.{extension}"
            for n in range(first, first + size)
        ]
        taken = set(session.scalars(_TAKEN, {"connector": connector, "names": names}))
        free = next((name for name in names if name not in taken), None)
        if free is not None:
            return free
        first, size = first + size, _NAMES_AT_ONCE


_TAKEN = select(outbox.c.filename).where(
    outbox.c.connector == bindparam("connector"),
    outbox.c.filename.in_(bindparam("names", expanding=True)),
)
"""Built once, values as parameters (a statement built per call cost ~0.3 ms to build)."""


def payload_of(conn: Connection, row: Delivery) -> bytes:
    """``row``'s bytes, read from their own table (``OutboxRow.payload`` reads them through a
    subquery, which SQLite copies twice more: a 35 MB bundle cost 100 MB)."""
    p = outbox_payloads.c
    found = conn.execute(select(p.payload).where(p.outbox_id == row.id)).scalar_one()
    return bytes(found)


def mark_sent(
    conn: Connection, row: Delivery, where: str, moment: datetime, late: str = ""
) -> None:
    """Mark ``row`` delivered to ``where``; ``late``: its receipt came after the attempt failed
    (the attempt was counted then, ``sent_at`` is still when it went)."""
    if row.state == PENDING and not late:
        row.sent_at = moment
    if not late:
        row.attempts += 1
    row.state, row.delivered_to = SENT, where
    record(
        conn,
        "outbox.sent",
        f"{row.kind} {row.doc_number} to {row.partner}: {where}{late}",
        order_id=row.order_id,
    )


def close_quietly(transport: OutboundTransport | None) -> None:
    """Close a transport; a failure to close never undoes deliveries already made."""
    if transport is None:
        return
    try:
        transport.close()
    except Exception:  # a broken link has nothing left to release
        log.warning("closing an outbound transport failed", exc_info=True)


def delivery_headers(row: Delivery) -> dict[str, str]:
    """What a transport may carry beside the bytes (see ``OutboundTransport.deliver``)."""
    return {
        "document_type": row.kind,
        "document_id": row.doc_number,
        "partner": row.partner,
        "message_id": f"edi-gateway-outbox-{row.id}",
        "media_type": row.media_type,
    }


def failed_attempt(conn: Connection, row: Delivery, exc: BaseException, moment: datetime) -> None:
    """Count a failed attempt: retried after a doubling wait, ``failed`` after ``MAX_ATTEMPTS``.
    ``last_error`` always starts with the error's code (``coded_text``)."""
    from edi_gateway.transports.base import coded_text

    error = coded_text(exc)
    row.attempts += 1
    row.last_error = error[:2000]
    if row.attempts >= MAX_ATTEMPTS:
        row.state = FAILED
        event, detail = "outbox.failed", f"gave up after {row.attempts} attempts: {error}"
    else:
        wait = min(FIRST_RETRY * 2 ** (row.attempts - 1), LONGEST_WAIT)
        row.state, row.next_attempt_at = PENDING, moment + wait  # (awaiting a receipt until now)
        event = "outbox.retry"
        detail = f"attempt {row.attempts} failed ({error}); next at {row.next_attempt_at:%H:%M:%S}"
    record(conn, event, detail[:2000], order_id=row.order_id)


RETRYABLE = (PENDING, FAILED)


def retry(
    store: Store,
    row_ids: list[int],
    *,
    actor: str,
    states: tuple[str, ...] = (FAILED,),
    every: bool = False,
    dry_run: bool = False,
) -> list[int]:
    """Make rows due now: failed ones get a new round of attempts, pending ones (waiting out
    their backoff) skip the wait. These ids, or with ``every`` each row in ``states``.

    For when an operator fixed what made delivery fail (a full disk, a wrong path, a partner's
    server). Rows go back to ``pending``, due at once (failed ones with their attempts reset);
    forwards of a failed bundle go back to ``queued``. Each is recorded in the order's history
    with ``actor``. ``dry_run`` changes nothing. Returns the ids retried (or that would be);
    asked-for ids that are in none of ``states`` raise LookupFailed naming them.
    """
    from edi_gateway.errors import LookupFailed
    from edi_gateway.store.tables import OutboxRow

    moment = now()
    with store.session() as session:
        query = select(OutboxRow).where(OutboxRow.state.in_(states))
        if not every:
            query = query.where(OutboxRow.id.in_(row_ids))
        # Locked, as withdraw and delivery lock them: a row another operator withdraws (or
        # retries) at this moment, or a gateway delivers, is skipped, and one changed just
        # before is read as it is now. Unlocked, a retry that read a row as failed made it
        # due again after a withdrawal had committed (a withdrawn document sent), and two
        # retries at once both recorded it.
        rows = list(session.scalars(skip_locked(query.order_by(OutboxRow.id))))
        if not every:
            missing = sorted(set(row_ids) - {row.id for row in rows})
            if missing:
                which = " or ".join(states)
                raise LookupFailed(
                    ErrorCode.NOT_FOUND,
                    f"no {which} outbox row {', '.join(f'#{i}' for i in missing)} (or being "
                    f"changed at this moment): `outbox list --state {states[0]}` lists the "
                    "ones that can be retried",
                )
        if dry_run:
            return [row.id for row in rows]
        for row in rows:
            detail = f"{row.kind} {row.doc_number} for {row.partner} after: {row.last_error}"
            if row.state == FAILED:
                row.attempts = 0
            row.state, row.next_attempt_at = PENDING, moment
            record(session, "outbox.retried", detail[:2000], actor=actor, order_id=row.order_id)
            for forward in _bundled(session, row):
                if forward.state != "failed":
                    continue
                forward.state, forward.updated_at = "queued", moment
                record(
                    session,
                    "forward.queued",
                    f"delivery of {row.doc_number} retried",
                    actor=actor,
                    order_id=forward.order_id,
                )
        return [row.id for row in rows]


def withdraw(store: Store, row_ids: list[int], *, actor: str, reason: str) -> list[int]:
    """Give up on pending or failed rows for good: ``withdrawn``, never sent, recorded in the
    order's history with ``actor`` and ``reason``. Ids that are neither raise LookupFailed."""
    from edi_gateway.errors import LookupFailed
    from edi_gateway.store.tables import OutboxRow

    if not reason.strip():
        raise GatewayError(ErrorCode.USAGE, "a withdrawal needs a reason (--reason TEXT)")
    with store.session() as session:
        rows = list(
            session.scalars(
                skip_locked(
                    select(OutboxRow).where(
                        OutboxRow.id.in_(row_ids), OutboxRow.state.in_(RETRYABLE)
                    )
                ).order_by(OutboxRow.id)
            )
        )
        missing = sorted(set(row_ids) - {row.id for row in rows})
        if missing:
            raise LookupFailed(
                ErrorCode.NOT_FOUND,
                f"no pending or failed outbox row {', '.join(f'#{i}' for i in missing)} (sent, "
                "withdrawn, being delivered right now, or unknown)",
            )
        for row in rows:
            row.state = WITHDRAWN
            detail = f"{row.kind} {row.doc_number} for {row.partner} withdrawn: {reason}"
            record(session, "outbox.withdrawn", detail[:2000], actor=actor, order_id=row.order_id)
            for forward in _bundled(session, row):  # the orders this file carried
                forward.state, forward.updated_at = WITHDRAWN, now()
                record(
                    session,
                    "forward.withdrawn",
                    f"{row.partner} never gets this order: {row.doc_number} withdrawn ({reason})"[
                        :2000
                    ],
                    actor=actor,
                    order_id=forward.order_id,
                )
        return [row.id for row in rows]


def _bundled(session: Session, row: OutboxRow) -> list[Forward]:
    """The queued or failed forwards whose bundle ``row`` carries, locked (waiting) and read as
    they are now. ``note_deliveries`` locks the queued ones while it moves them by their files'
    states: a retry (or withdrawal) that read them while it marked them failed left them
    ``failed`` behind a row due again; now it waits and sees them failed."""
    from edi_gateway.store.tables import Forward

    query = select(Forward).where(
        Forward.partner == row.partner,
        Forward.bundle == row.doc_number,
        Forward.state.in_(["queued", "failed"]),
    )
    return list(session.scalars(query.with_for_update()))


def count_pending(conn: Connection) -> int:
    """How many rows wait for delivery."""
    return conn.scalar(select(func.count()).where(outbox.c.state == PENDING)) or 0


@dataclass(frozen=True, slots=True)
class ConnectorDeliveries:
    """Where an outbound connector's deliveries stand (``/healthz``, metrics, run summaries)."""

    connector: str
    pending: int = 0
    """Rows waiting for delivery (retrying ones included)."""
    retrying: int = 0
    """Pending rows whose last attempt failed: waiting out their backoff."""
    failed: int = 0
    """Rows given up on after ``MAX_ATTEMPTS``: an operator must retry or withdraw them."""
    awaiting: int = 0
    """Rows sent whose partner's receipt is awaited."""
    overdue: int = 0
    """Rows due (or past their receipt deadline) longer than the grace given: nobody delivers."""
    oldest_due: datetime | None = None
    last_error: str | None = None
    """The newest ``last_error`` of a retrying or failed row (``CODE: what``)."""

    @property
    def failing(self) -> bool:
        """Deliveries fail or are overdue: the gateway is degraded."""
        return bool(self.retrying or self.failed or self.overdue)

    def as_json(self, moment: datetime) -> dict[str, object]:
        """The connector's entry in ``/healthz`` and in ``--json`` summaries."""
        oldest = None
        if self.oldest_due is not None:
            oldest = round(max((moment - self.oldest_due).total_seconds(), 0.0), 1)
        return {
            "status": "failing" if self.failing else "ok",
            "pending": self.pending,
            "retrying": self.retrying,
            "failed": self.failed,
            "awaiting_receipt": self.awaiting,
            "overdue": self.overdue,
            "oldest_due_seconds": oldest,
            "last_error": self.last_error,
        }


def delivery_report(
    conn: Connection | Session, connectors: list[str], moment: datetime, grace: timedelta
) -> dict[str, ConnectorDeliveries]:
    """Per outbound connector (each of ``connectors``, and any other a row names): pending,
    retrying, failed, awaiting and overdue rows. A row is overdue when it has been due (or its
    receipt deadline passed) for longer than ``grace``. Reads only unfinished rows (state
    index), so its cost follows the backlog, not the store."""
    from sqlalchemy import case

    o = outbox.c
    late = moment - grace
    columns = (
        o.connector,
        o.state,
        func.count(),
        func.sum(case((o.attempts > 0, 1), else_=0)),
        func.sum(case((o.next_attempt_at < late, 1), else_=0)),
        func.min(o.next_attempt_at),
    )
    counts: dict[str, Counter[str]] = {c: Counter() for c in connectors}
    oldest_due: dict[str, datetime] = {}
    unfinished = o.state.in_([PENDING, FAILED, AWAITING])
    grouped = select(*columns).where(unfinished).group_by(o.connector, o.state)
    for connector, state, n, tried, past, oldest in conn.execute(grouped):
        into = counts.setdefault(connector, Counter())
        into[state] += n
        if state == PENDING:
            into["retrying"] += tried or 0
            oldest_due[connector] = oldest
        if state != FAILED:  # a failed row waits for an operator, not for a delivery
            into["overdue"] += past or 0
    failing = o.state.in_([PENDING, FAILED]) & (o.attempts > 0)
    newest = select(func.max(o.id)).where(failing).group_by(o.connector)
    chosen = select(o.connector, o.last_error).where(o.id.in_(newest))
    errors = {connector: error for connector, error in conn.execute(chosen)}
    return {
        connector: ConnectorDeliveries(
            connector,
            pending=c[PENDING],
            retrying=c["retrying"],
            failed=c[FAILED],
            awaiting=c[AWAITING],
            overdue=c["overdue"],
            oldest_due=oldest_due.get(connector),
            last_error=errors.get(connector),
        )
        for connector, c in sorted(counts.items())
    }


def delivery_grace(settings: Settings) -> timedelta:
    """How long a row may stay due (or past its receipt deadline) before it is overdue: two
    outbox cycles and a minute."""
    return timedelta(seconds=2 * settings.daemon.outbox_every_seconds + 60)


def delivery_states(
    conn: Connection | Session, settings: Settings, moment: datetime
) -> dict[str, ConnectorDeliveries]:
    """Where each outbound connector's deliveries stand (``/healthz``, gauges, summaries)."""
    outbound = [c.name for c in settings.connectors if c.direction == "out"]
    return delivery_report(conn, outbound, moment, delivery_grace(settings))
