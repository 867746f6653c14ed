"""Retention: purge what is finished, into an archive the operator can restore from.

``edi-gateway purge --before DATE`` and the daemon's ``retention:`` remove (docs/adr/0037):

- **finished orders**: status Closed, Cancelled or Fully invoiced, whose last activity (the
  order row, every history event, message, document, outbox row and forward of it) is older
  than the date, with everything hanging off them: keys, lines, documents and their lines,
  discrepancies, shipments, delivery, contacts, attachments, history, forwards, outbox rows,
  findings, and the messages that brought their documents (with their payloads, and the
  byte-identical duplicates of those messages); the search index follows (store/search.py);
- **dismissed messages** last touched before the date, with their payload, history, findings
  and the refused documents they hold.

Never anything open: an order with a discrepancy not cleared, a response clock still running
or overdue, a message still received or failed, an outbox row not delivered (or withdrawn), a
forward not delivered, or the latest bundle of its supplier (bundle numbers count up from the
highest one kept); never a message one of whose documents, history events or duplicates belongs
to something that stays.

Each batch is one transaction: its rows are read, appended to the archive and fsynced, then
deleted, the dedup keys of its messages and documents recorded (``purged_messages``,
``purged_documents``: the same bytes or document number received again are a duplicate or an
ID conflict, never new) and the run's counts moved on, and only then committed. A crash leaves
each batch wholly purged or wholly kept, and the archive holds every purged batch. Only one
purge runs at a time on a store (the ``purge`` lease, store/leases.py).
"""

from __future__ import annotations

import json
import os
import secrets
import socket
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Column,
    ColumnElement,
    Connection,
    Dialect,
    Table,
    and_,
    delete,
    exists,
    func,
    insert,
    or_,
    select,
    type_coerce,
    update,
)
from sqlalchemy.types import NullType

from edi_gateway import crashpoints
from edi_gateway.errors import ErrorCode, GatewayError
from edi_gateway.store import archive, search
from edi_gateway.store import schema as s
from edi_gateway.store.bulk import insert_many
from edi_gateway.store.db import Store
from edi_gateway.store.leases import (
    SAME_NUMBER,
    hold,
    read,
    release,
    skip_locked,
    xact_locks,
)

FINISHED = ("Closed", "Cancelled", "Fully invoiced")
OUTBOX_DONE = ("sent", "withdrawn")
FORWARD_DONE = ("delivered", "withdrawn")
MESSAGE_DONE = ("processed", "orphan", "duplicate", "dismissed")
LEASE = "purge"
LEASE_SECONDS = 300.0
BATCH = 200
"""Orders (or dismissed messages) per batch: one transaction, one archive line."""
MAX_LINES = 50_000
"""Order lines per batch, at most (one order may hold more: it is a batch of its own)."""
CHUNK = 500
RUNNING, DONE, FAILED, INTERRUPTED = "running", "done", "failed", "interrupted"

ORDER_TABLES = (
    s.order_keys,
    s.order_lines,
    s.order_delivery,
    s.order_contacts,
    s.order_attachments,
    s.discrepancies,
    s.shipments,
    s.forwards,
    s.bulk_issued,
)
"""Tables whose rows belong to one order through ``order_id`` alone."""
PURGED = (
    s.orders,
    s.messages,
    s.message_payloads,
    s.documents,
    s.document_lines,
    s.history,
    s.outbox,
    s.outbox_payloads,
    s.findings,
    *ORDER_TABLES,
)
ORDER = {t.name: i for i, t in enumerate(s.metadata.sorted_tables)}
"""Tables in dependency order: parents first (inserts), reversed for deletes."""


@dataclass(slots=True)
class Summary:
    """What a purge removed (or, dry, would remove)."""

    run_id: int | None
    before: datetime
    dry_run: bool
    counts: Counter[str] = field(default_factory=Counter)
    oldest: datetime | None = None
    newest: datetime | None = None
    archive: str | None = None
    archive_sha256: str | None = None
    complete: bool = True
    """False when ``keep_going`` said stop before everything finished had gone."""

    def seen(self, moments: Iterable[datetime]) -> None:
        """Widen oldest/newest to ``moments`` (the last activity of what went)."""
        for moment in moments:
            self.oldest = moment if self.oldest is None else min(self.oldest, moment)
            self.newest = moment if self.newest is None else max(self.newest, moment)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready (times as everywhere in the CLI: store/queries.py ``utc_text``)."""
        from edi_gateway.store.queries import utc_text

        return {
            "run": self.run_id,
            "before": utc_text(self.before),
            "dry_run": self.dry_run,
            "counts": {name: self.counts[name] for name in sorted(self.counts)},
            "oldest": utc_text(self.oldest),
            "newest": utc_text(self.newest),
            "archive": self.archive,
            "archive_sha256": self.archive_sha256,
            "complete": self.complete,
        }


@dataclass(slots=True)
class _Batch:
    """The rows one batch removes, per table, as the driver gave them (so they go back
    exactly: store/archive.py), and the last activity of each thing in it."""

    dialect: Dialect | None = None
    rows: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    moments: list[datetime] = field(default_factory=list)

    def when(self, table: str, row: dict[str, Any], column: str) -> datetime:
        """The time ``row`` of ``table`` holds in ``column``, as the column's type reads it."""
        assert self.dialect is not None
        moment = _moment(self.dialect, table, column, row[column])
        assert isinstance(moment, datetime)
        return moment

    def ids(self, table: Table, column: str = "id") -> list[int]:
        return sorted({r[column] for r in self.rows.get(table.name, []) if r[column] is not None})

    def add(self, table: Table, rows: Iterable[dict[str, Any]]) -> None:
        found = self.rows.setdefault(table.name, [])
        have = {_key(table, r) for r in found}
        found.extend(r for r in rows if _key(table, r) not in have)


def _key(table: Table, row: dict[str, Any]) -> tuple[Any, ...]:
    return tuple(row[c.name] for c in table.primary_key.columns)


_READERS: dict[tuple[str, str, str], Callable[[Any], Any] | None] = {}


def _moment(dialect: Dialect, table: str, column: str, raw: Any) -> Any:
    """A raw driver value of ``table.column`` as the column's type reads it."""
    key = (dialect.name, table, column)
    if key not in _READERS:
        kind = s.metadata.tables[table].c[column].type
        _READERS[key] = kind.dialect_impl(dialect).result_processor(dialect, None)
    reader = _READERS[key]
    return reader(raw) if reader is not None and raw is not None else raw


def _raw(table: Table) -> Any:
    """``SELECT`` every column of ``table`` as the driver returns it: no type's processing, so
    what is archived is what the store held, and goes back as it was."""
    return select(*(type_coerce(c, NullType()).label(c.name) for c in table.columns))


def purge(
    store: Store,
    before: datetime,
    *,
    actor: str,
    archive_dir: Path | None,
    dry_run: bool = False,
    batch: int = BATCH,
    keep_going: Callable[[], bool] | None = None,
) -> Summary:
    """Purge what finished before ``before`` (archived into ``archive_dir``; None: no archive);
    ``dry_run``: only count it. ``keep_going`` is asked after each batch (the daemon's time
    budget): False ends the run there, ``complete`` False. PURGE_RUNNING when another purge
    holds the lease."""
    before = _checked(before, batch)
    if dry_run:
        summary = Summary(None, before, True)
        with store.reading() as session:
            _walk(session.connection(), summary, batch)
        return summary
    holder = _holder(actor)
    with store.connect() as conn:
        _take_lease(conn, holder, f"purge before {before.isoformat()}")
        _close_interrupted(conn)
        run_id = _start(conn, actor, before)
    summary = Summary(run_id, before, False)
    writer: archive.Writer | None = None
    try:
        if archive_dir is not None:
            writer = _open_archive(store, summary, archive_dir)

        def each(conn: Connection, number: int, found: _Batch) -> None:
            if hold(conn, LEASE, holder, LEASE_SECONDS) is None:  # ran out: another took it
                raise GatewayError(
                    ErrorCode.PURGE_RUNNING,
                    f"this purge lost its lease to another after {number - 1} batches; "
                    f"nothing of batch {number} was purged",
                )
            if writer is not None:
                writer.batch(number, found.rows)
                crashpoints.reach("purge-after-archive")
            _delete(conn, found)
            _remember(conn, run_id, found)
            conn.execute(_run(run_id).values(counts=json.dumps(dict(summary.counts))))
            crashpoints.reach("purge-before-commit")

        _batches(store, summary, batch, each, keep_going or (lambda: True))
        if writer is not None:
            summary.archive_sha256 = writer.close()
            if not writer.batches:  # nothing went: no file to keep (the run says so)
                writer.path.unlink()
                summary.archive = summary.archive_sha256 = None
            writer = None
        with store.connect() as conn:
            conn.execute(
                _run(run_id).values(
                    state=DONE,
                    finished_at=datetime.now(UTC),
                    archive=summary.archive,
                    archive_sha256=summary.archive_sha256,
                    oldest=summary.oldest,
                    newest=summary.newest,
                )
            )
            release(conn, [LEASE], holder)
    except BaseException as exc:
        if writer is not None:
            summary.archive_sha256 = writer.close()
        _failed(store, run_id, summary, exc)
        with store.connect() as conn:
            release(conn, [LEASE], holder)
        raise
    return summary


def _holder(actor: str) -> str:
    """Who takes the lease: the run's own name (two runs in one process are two holders)."""
    run = secrets.token_hex(3)
    return f"{actor[:40]} pid {os.getpid()} on {socket.gethostname()[:32]} run {run}"


def _take_lease(conn: Connection, holder: str, doing: str) -> None:
    """The ``purge`` lease for ``holder``; PURGE_RUNNING, saying who holds it until when, if
    somebody else does (a purge or restore, or one that died and whose lease runs on)."""
    if hold(conn, LEASE, holder, LEASE_SECONDS, info=doing) is not None:
        return
    held = next((lease for lease in read(conn, LEASE) if lease.name == LEASE), None)
    who = f"{held.holder} ({held.info}) until {held.until.isoformat()}" if held else "another"
    raise GatewayError(
        ErrorCode.PURGE_RUNNING,
        f"the purge lease is held by {who}: one purge or restore at a time (a process that "
        "died holds it until then); see `edi-gateway purge history`",
    )


def _checked(before: datetime, batch: int) -> datetime:
    """``before`` in UTC; USAGE for a date in the future or a batch below 1."""
    before = before.astimezone(UTC)
    if before > datetime.now(UTC):
        raise GatewayError(
            ErrorCode.USAGE,
            f"the purge date {before.isoformat()} is in the future: only what finished before "
            "now can go",
        )
    if batch < 1:
        raise GatewayError(ErrorCode.USAGE, f"a batch holds at least 1 order, found {batch}")
    return before


def _open_archive(store: Store, summary: Summary, folder: Path) -> archive.Writer:
    """The run's archive, created (with its header) and named in the run."""
    assert summary.run_id is not None
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = folder.absolute() / f"purge-{summary.run_id:06d}-{stamp}.jsonl"
    writer = archive.Writer(path, {"run": summary.run_id, "before": summary.before.isoformat()})
    summary.archive = str(path)
    with store.connect() as conn:
        conn.execute(_run(summary.run_id).values(archive=summary.archive))
    return writer


def _run(run_id: int) -> Any:
    return update(s.purge_runs).where(s.purge_runs.c.id == run_id)


def _start(conn: Connection, actor: str, before: datetime) -> int:
    return int(
        conn.execute(
            insert(s.purge_runs)
            .values(
                started_at=datetime.now(UTC),
                actor=actor[:100],
                purged_before=before,
                state=RUNNING,
                counts="{}",
            )
            .returning(s.purge_runs.c.id)
        ).scalar_one()
    )


def _failed(store: Store, run_id: int, summary: Summary, exc: BaseException) -> None:
    with store.connect() as conn:
        conn.execute(
            _run(run_id).values(
                state=FAILED,
                finished_at=datetime.now(UTC),
                error=f"{type(exc).__name__}: {exc}"[:2000],
                archive_sha256=summary.archive_sha256,
                oldest=summary.oldest,
                newest=summary.newest,
            )
        )


def _close_interrupted(conn: Connection) -> None:
    """Runs left ``running`` (their process died: whoever runs now holds the lease) become
    ``interrupted``, with the sha256 of the archive as the crash left it."""
    r = s.purge_runs.c
    for run_id, path in conn.execute(select(r.id, r.archive).where(r.state == RUNNING)).all():
        digest = archive.file_sha256(Path(path)) if path and Path(path).is_file() else None
        conn.execute(_run(run_id).values(state=INTERRUPTED, archive_sha256=digest))


Each = Callable[[Connection, int, _Batch], None]


def _batches(
    store: Store, summary: Summary, size: int, each: Each, keep_going: Callable[[], bool]
) -> None:
    """Find and purge batch after batch, each in its own transaction, until none is left (or
    ``keep_going`` says stop: ``summary.complete`` False)."""
    number = 0
    for kind in ("orders", "messages"):
        after = 0
        while True:
            with store.connect() as conn:
                found, after = _next(conn, kind, summary.before, after, size, lock=True)
                if found is None:
                    break
                if not found.rows:
                    continue
                number += 1
                _count(summary, found)
                each(conn, number, found)
            if not keep_going():
                summary.complete = False
                return


def _walk(conn: Connection, summary: Summary, size: int) -> None:
    """The dry run: the same batches, counted, nothing written."""
    for kind in ("orders", "messages"):
        after = 0
        while True:
            found, after = _next(conn, kind, summary.before, after, size, lock=False)
            if found is None:
                break
            _count(summary, found)


def _count(summary: Summary, found: _Batch) -> None:
    for name, rows in found.rows.items():
        if rows:
            summary.counts[name] += len(rows)
    summary.seen(found.moments)


def _next(
    conn: Connection, kind: str, before: datetime, after: int, size: int, *, lock: bool
) -> tuple[_Batch | None, int]:
    """The next batch of orders (or dismissed messages) with ids above ``after``: None when
    there are no more candidates; an empty batch when every candidate had to stay."""
    if kind == "orders":
        ids = _candidate_orders(conn, before, after, size, lock=lock)
        if not ids:
            return None, after
        return _order_batch(conn, before, ids), ids[-1]
    ids = _candidate_messages(conn, before, after, size, lock=lock)
    if not ids:
        return None, after
    return _message_batch(conn, before, ids), ids[-1]


def _finished_order(before: datetime) -> ColumnElement[bool]:
    """An order finished, last touched before ``before`` and with nothing open hanging off it
    (messages, outbox rows and forwards of it are checked here; what links orders together,
    in :func:`_order_batch`)."""
    o = s.orders.c
    m, x, f, h, d = s.messages.c, s.outbox.c, s.forwards.c, s.history.c, s.documents.c
    clock_running = and_(o.response_due_at.is_not(None), o.response_code.is_(None))
    same = s.forwards.alias("same_supplier")
    return and_(
        o.status.in_(FINISHED),
        o.updated_at < before,
        o.attention.is_(False),
        or_(o.cancelled.is_(True), ~clock_running),
        ~exists().where(h.order_id == o.id, h.at >= before),
        ~exists().where(d.order_id == o.id, d.created_at >= before),
        ~exists().where(
            m.order_id == o.id, or_(m.state.not_in(MESSAGE_DONE), m.updated_at >= before)
        ),
        ~exists().where(
            x.order_id == o.id,
            or_(x.state.not_in(OUTBOX_DONE), x.created_at >= before, x.sent_at >= before),
        ),
        ~exists().where(
            f.order_id == o.id, or_(f.state.not_in(FORWARD_DONE), f.updated_at >= before)
        ),
        # the latest bundle of a supplier stays: the next bundle's number counts up from it
        ~exists().where(
            f.order_id == o.id,
            f.seq.is_not(None),
            f.seq
            >= select(func.max(same.c.seq)).where(same.c.partner == f.partner).scalar_subquery(),
        ),
    )


def _candidate_orders(
    conn: Connection, before: datetime, after: int, size: int, *, lock: bool
) -> list[int]:
    o = s.orders.c
    query = select(o.id).where(o.id > after, _finished_order(before)).order_by(o.id).limit(size)
    ids = _within_lines(conn, list(conn.scalars(skip_locked(query) if lock else query)))
    if ids and lock:
        numbers = conn.scalars(select(o.order_number).where(o.id.in_(ids)))
        xact_locks(conn, SAME_NUMBER, numbers)  # what processing locks before it correlates
    return ids


def _within_lines(conn: Connection, ids: list[int]) -> list[int]:
    """The first of ``ids`` whose lines add up to at most :data:`MAX_LINES` (at least one): a
    batch of large orders stays small enough to hold in memory and in one transaction."""
    if not ids:
        return ids
    ol = s.order_lines.c
    counts: dict[int, int] = dict(
        conn.execute(
            select(ol.order_id, func.count()).where(ol.order_id.in_(ids)).group_by(ol.order_id)
        ).all()
    )
    total = 0
    for n, order_id in enumerate(ids):
        total += counts.get(order_id, 0)
        if total > MAX_LINES and n:
            return ids[:n]
    return ids


def _candidate_messages(
    conn: Connection, before: datetime, after: int, size: int, *, lock: bool
) -> list[int]:
    m, h, d = s.messages.c, s.history.c, s.documents.c
    query = (
        select(m.id)
        .where(
            m.id > after,
            m.state == "dismissed",
            m.updated_at < before,
            m.order_id.is_(None),
            ~exists().where(h.message_id == m.id, or_(h.at >= before, h.order_id.is_not(None))),
            ~exists().where(d.message_id == m.id, d.order_id.is_not(None)),
            ~exists().where(s.messages.alias("copy").c.duplicate_of == m.id),
        )
        .order_by(m.id)
        .limit(size)
    )
    return list(conn.scalars(skip_locked(query) if lock else query))


def _rows(conn: Connection, table: Table, column: Column[Any], ids: Sequence[Any]) -> list[Any]:
    """Every row of ``table`` whose ``column`` is one of ``ids``, as dicts, by primary key."""
    found: list[dict[str, Any]] = []
    for start in range(0, len(ids), CHUNK):
        chunk = ids[start : start + CHUNK]
        found += [dict(r._mapping) for r in conn.execute(_raw(table).where(column.in_(chunk)))]
    found.sort(key=lambda r: _key(table, r))
    return found


def _order_batch(conn: Connection, before: datetime, candidates: list[int]) -> _Batch:
    """The rows of ``candidates`` and all that hangs off them, less the orders tied (through a
    shared message, its duplicates or its history) to something that stays."""
    keep = set(candidates)
    while True:
        found = _gather(conn, sorted(keep))
        tied = _tied(before, found, keep)
        if not tied:
            return found
        keep -= tied
        if not keep:
            return _Batch()


def _gather(conn: Connection, order_ids: list[int]) -> _Batch:
    found = _Batch(conn.dialect)
    m, d = s.messages.c, s.documents.c
    found.add(s.orders, _rows(conn, s.orders, s.orders.c.id, order_ids))
    for table in ORDER_TABLES:
        found.add(table, _rows(conn, table, table.c.order_id, order_ids))
    docs = _rows(conn, s.documents, d.order_id, order_ids)
    found.add(s.documents, docs)
    message_ids = {r["message_id"] for r in docs if r["message_id"] is not None}
    message_ids |= set(conn.scalars(select(m.id).where(m.order_id.in_(order_ids))))
    _add_messages(conn, found, sorted(message_ids))
    found.add(s.outbox, _rows(conn, s.outbox, s.outbox.c.order_id, order_ids))
    found.add(s.outbox, _rows(conn, s.outbox, s.outbox.c.document_id, found.ids(s.documents)))
    found.add(s.outbox, _bundles(conn, found))
    _add_dependents(conn, found)
    found.add(s.history, _rows(conn, s.history, s.history.c.order_id, order_ids))
    found.moments += _last_activity(found)
    return found


def _add_messages(conn: Connection, found: _Batch, message_ids: list[int]) -> None:
    """The messages, their byte-identical duplicates, and what hangs off them."""
    m = s.messages.c
    copies = list(conn.scalars(select(m.id).where(m.duplicate_of.in_(message_ids))))
    every = sorted(set(message_ids) | set(copies))
    found.add(s.messages, _rows(conn, s.messages, m.id, every))
    found.add(s.documents, _rows(conn, s.documents, s.documents.c.message_id, every))
    found.add(s.history, _rows(conn, s.history, s.history.c.message_id, every))


def _add_dependents(conn: Connection, found: _Batch) -> None:
    ids = found.ids
    payloads = s.message_payloads
    found.add(payloads, _rows(conn, payloads, payloads.c.message_id, ids(s.messages)))
    lines = s.document_lines
    found.add(lines, _rows(conn, lines, lines.c.document_id, ids(s.documents)))
    sent = s.outbox_payloads
    found.add(sent, _rows(conn, sent, sent.c.outbox_id, ids(s.outbox)))
    f = s.findings
    found.add(f, _rows(conn, f, f.c.message_id, ids(s.messages)))
    found.add(f, _rows(conn, f, f.c.outbox_id, ids(s.outbox)))


def _bundles(conn: Connection, found: _Batch) -> list[dict[str, Any]]:
    """The files of the bundles every order of which goes in this batch (a bundle's outbox rows
    name no order: they go with the last of its orders)."""
    named = {(r["partner"], r["bundle"]) for r in found.rows.get("forwards", []) if r["bundle"]}
    if not named:
        return []
    f, x = s.forwards.c, s.outbox.c
    going = set(found.ids(s.forwards))
    rows: list[dict[str, Any]] = []
    for partner, bundle in sorted(named):
        members = set(conn.scalars(select(f.id).where(f.partner == partner, f.bundle == bundle)))
        if members <= going:
            rows += [
                dict(r._mapping)
                for r in conn.execute(
                    _raw(s.outbox).where(
                        x.partner == partner,
                        x.doc_number == bundle,
                        x.order_id.is_(None),
                        x.document_id.is_(None),
                        x.state.in_(OUTBOX_DONE),
                    )
                )
            ]
    return rows


def _tied(before: datetime, found: _Batch, keep: set[int]) -> set[int]:
    """The orders of ``keep`` that must stay after all: read again under the locks, one is
    no longer finished or old; or a message of theirs (with its duplicates) also belongs to an
    order that stays, or is still open; or an outbox row of theirs is not delivered."""
    tied = {
        r["id"]
        for r in found.rows.get("orders", [])
        if r["status"] not in FINISHED
        or found.when("orders", r, "updated_at") >= before
        or r["attention"]
    }
    for table, column in (("history", "at"), ("documents", "created_at")):
        tied |= {
            r["order_id"]
            for r in found.rows.get(table, [])
            if found.when(table, r, column) >= before
        }
    messages = {r["id"]: r for r in found.rows.get("messages", [])}
    originals = {mid: r["duplicate_of"] for mid, r in messages.items()}
    owners: dict[int, set[int | None]] = {}
    still_open: set[int] = set()

    def owned(message_id: int | None, order_id: int | None) -> None:
        if message_id is not None:
            owners.setdefault(_root(message_id, originals), set()).add(order_id)

    for row in found.rows.get("documents", []):
        owned(row["message_id"], row["order_id"])
        if row["message_id"] is not None and row["order_id"] is None:  # an orphan waits
            still_open.add(_root(row["message_id"], originals))
    for row in found.rows.get("history", []):
        owned(row["message_id"], row["order_id"])
    for mid, row in messages.items():
        owned(mid, row["order_id"])
        if row["state"] not in MESSAGE_DONE or found.when("messages", row, "updated_at") >= before:
            still_open.add(_root(mid, originals))
    for root, who in owners.items():
        orders = {o for o in who if o is not None}
        if root in still_open or not orders <= keep:
            tied |= orders
    for row in found.rows.get("outbox", []):
        if row["state"] not in OUTBOX_DONE or found.when("outbox", row, "created_at") >= before:
            tied |= _outbox_orders(row, found)
    return (tied - {None}) & keep


def _root(message_id: int, originals: dict[int, int | None]) -> int:
    seen = message_id
    while (earlier := originals.get(seen)) is not None:
        seen = earlier
    return seen


def _outbox_orders(row: dict[str, Any], found: _Batch) -> set[int]:
    if row["order_id"] is not None:
        return {row["order_id"]}
    docs = {d["id"]: d["order_id"] for d in found.rows.get("documents", [])}
    return {docs[row["document_id"]]} if row["document_id"] in docs else set()


def _last_activity(found: _Batch) -> list[datetime]:
    """The last activity of each order in the batch."""
    last: dict[int, datetime] = {}

    def seen(order_id: int | None, moment: datetime | None) -> None:
        if order_id is not None and moment is not None:
            last[order_id] = max(last.get(order_id, moment), moment)

    for row in found.rows.get("orders", []):
        seen(row["id"], found.when("orders", row, "updated_at"))
    for row in found.rows.get("history", []):
        seen(row["order_id"], found.when("history", row, "at"))
    return list(last.values())


def _message_batch(conn: Connection, before: datetime, ids: list[int]) -> _Batch:
    """Dismissed messages with their payload, history, findings and refused documents."""
    del before  # the candidates' query checked it
    found = _Batch(conn.dialect)
    _add_messages(conn, found, ids)
    _add_dependents(conn, found)
    found.moments += [found.when("messages", r, "updated_at") for r in found.rows["messages"]]
    return found


def _delete(conn: Connection, found: _Batch) -> None:
    """Delete the batch's rows, children first."""
    for name in sorted(found.rows, key=lambda n: ORDER[n], reverse=True):
        table = s.metadata.tables[name]
        rows = found.rows[name]
        if name == "messages":  # duplicates before their originals
            rows = sorted(rows, key=lambda r: -r["id"])
        [pk] = table.primary_key.columns
        keys = [r[pk.name] for r in rows]
        for start in range(0, len(keys), CHUNK):
            conn.execute(delete(table).where(pk.in_(keys[start : start + CHUNK])))


def _remember(conn: Connection, run_id: int, found: _Batch) -> None:
    """The dedup keys the batch's messages and documents leave behind."""
    insert_many(
        conn,
        s.purged_messages,
        [
            {"message_id": r["id"], "sha256": r["sha256"], "state": r["state"], "run_id": run_id}
            for r in found.rows.get("messages", [])
        ],
    )
    insert_many(
        conn,
        s.purged_documents,
        [
            {
                "message_id": r["message_id"],
                "direction": r["direction"],
                "kind": r["kind"],
                "sender_key": r["sender_key"],
                "doc_number": r["doc_number"],
                "run_id": run_id,
            }
            for r in found.rows.get("documents", [])
            if r["state"] != "refused"  # a refused number is free (pipeline/process.py)
        ],
    )


def restore(store: Store, path: Path) -> dict[str, Any]:
    """Put back every row the archive at ``path`` holds, as it was, in one transaction.

    A batch whose rows are all still in the store (the crash came before its delete committed)
    is skipped; one whose rows are partly there, or whose ids other rows now use, is a
    RESTORE_CONFLICT and nothing is restored. The archive's sha256 must be the one its run
    recorded (PURGE_ARCHIVE_INVALID otherwise)."""
    found = archive.read(path)
    run_id = found.header.get("run")
    if not isinstance(run_id, int):
        raise GatewayError(ErrorCode.PURGE_ARCHIVE_INVALID, f"{path} names no purge run")
    counts: Counter[str] = Counter()
    holder = _holder("restore")
    with store.connect() as conn:  # committed: a purge or restore started meanwhile sees it
        _take_lease(conn, holder, f"restore {path.name}")
    try:
        crashpoints.reach("restore-leased")
        with store.connect() as conn:
            skipped = _restore(conn, path, found, run_id, counts)
            # still ours, or run out with nobody taking it: renewed (and its row locked until
            # this commits); taken by another meanwhile: everything is rolled back
            if hold(conn, LEASE, holder, LEASE_SECONDS) is None:
                raise GatewayError(
                    ErrorCode.PURGE_RUNNING,
                    f"this restore outlived its purge lease ({LEASE_SECONDS:.0f} s) and "
                    "another purge or restore took it; nothing was restored",
                )
    finally:
        with store.connect() as conn:
            release(conn, [LEASE], holder)
    return {
        "archive": str(path),
        "run": run_id,
        "restored": {name: counts[name] for name in sorted(counts)},
        "skipped_batches": skipped,
        "incomplete_last_batch": found.cut_off,
    }


def _restore(
    conn: Connection, path: Path, found: archive.Archive, run_id: int, counts: Counter[str]
) -> int:
    """Put the archive's rows back in ``conn``'s transaction, counting them per table; how many
    batches were skipped (never deleted)."""
    skipped = 0
    r = s.purge_runs.c
    run = conn.execute(
        select(r.archive_sha256, r.restored_at, r.state).where(r.id == run_id)
    ).first()
    if run is not None and run.archive_sha256 is not None:
        digest = archive.file_sha256(path)
        if digest != run.archive_sha256:
            raise GatewayError(
                ErrorCode.PURGE_ARCHIVE_INVALID,
                f"{path} has sha256 {digest}, but purge run {run_id} recorded "
                f"{run.archive_sha256}: the file changed since",
            )
    for number, archived in enumerate(found.batches, start=1):
        rows = _as_stored_now(archived)
        present, total = _present(conn, rows)
        if present == total:
            skipped += 1  # never deleted: the crash came before the batch committed
            continue
        if present:
            raise GatewayError(
                ErrorCode.RESTORE_CONFLICT,
                f"batch {number} of {path}: {present} of its {total} rows have ids the store "
                "uses now (restored before, or ids taken again since); nothing was restored",
            )
        _insert(conn, rows)
        for name, table_rows in rows.items():
            counts[name] += len(table_rows)
    if run is not None:
        c = s.purged_messages.c
        conn.execute(delete(s.purged_messages).where(c.run_id == run_id))
        conn.execute(delete(s.purged_documents).where(s.purged_documents.c.run_id == run_id))
        conn.execute(_run(run_id).values(restored_at=datetime.now(UTC)))
    return skipped


def _as_stored_now(rows: dict[str, list[dict[str, Any]]]) -> dict[str, list[dict[str, Any]]]:
    """Rows archived by earlier releases, as the migrations since would have changed them:
    outbox rows' bytes go to ``outbox_payloads`` (0024), their ``error_code`` is read from
    their ``last_error`` (0025); messages get ``cut_off`` 0 (0026: an archived message was
    finished, so its processing was not cut off); order lines get ``unbilled``, their exact
    despatched > invoiced, as 0029 flagged the lines it found (a Python bool: PostgreSQL
    takes no integer for a boolean); documents get no ``preceding_ref``, as 0030 left the rows
    it found (the preceding invoice is in the payload only)."""
    for row in rows.get("messages", []):
        row.setdefault("cut_off", 0)
    for row in rows.get("documents", []):
        row.setdefault("preceding_ref", None)
    for row in rows.get("order_lines", []):
        if "unbilled" not in row:
            row["unbilled"] = Decimal(row["qty_despatched"]) > Decimal(row["qty_invoiced"])
    moved = []
    for row in rows.get("outbox", []):
        if "payload" in row:
            moved.append({"outbox_id": row["id"], "payload": row.pop("payload")})
        if "error_code" not in row:
            row["error_code"] = s.error_code_of(row.get("last_error"))
    if moved:
        rows.setdefault("outbox_payloads", []).extend(moved)
    return rows


def _present(conn: Connection, rows: dict[str, list[dict[str, Any]]]) -> tuple[int, int]:
    """How many of ``rows`` have a primary key the store holds, of how many."""
    present = total = 0
    for name, table_rows in rows.items():
        table = _table(name)
        [pk] = table.primary_key.columns
        keys = [r[pk.name] for r in table_rows]
        total += len(keys)
        for start in range(0, len(keys), CHUNK):
            present += len(
                conn.execute(select(pk).where(pk.in_(keys[start : start + CHUNK]))).all()
            )
    return present, total


def _table(name: str) -> Table:
    if name not in {t.name for t in PURGED}:
        raise GatewayError(ErrorCode.PURGE_ARCHIVE_INVALID, f"the archive names table {name!r}")
    return s.metadata.tables[name]


def _insert(conn: Connection, rows: dict[str, list[dict[str, Any]]]) -> None:
    """Insert a batch's rows, parents first (originals before their duplicates), and index
    the orders and lines for the search again (SQLite)."""
    for name in sorted(rows, key=lambda n: ORDER[n]):
        table = _table(name)
        table_rows = sorted(rows[name], key=lambda r: _key(table, r))
        names = [c.name for c in table.columns]
        for row in table_rows:
            if sorted(row) != sorted(names):
                raise GatewayError(
                    ErrorCode.PURGE_ARCHIVE_INVALID,
                    f"a row of {name} in the archive has columns {sorted(row)}, expected "
                    f"{sorted(names)} (an archive of another schema version)",
                )
        _insert_raw(conn, table, names, table_rows)
    search.index_rows(conn, "orders", [r["id"] for r in rows.get("orders", [])])
    search.index_rows(conn, "order_lines", [r["id"] for r in rows.get("order_lines", [])])


def _insert_raw(
    conn: Connection, table: Table, names: list[str], rows: list[dict[str, Any]]
) -> None:
    """INSERT rows of driver values as they were read (:func:`_raw`), no type's processing."""
    mark = "?" if conn.dialect.paramstyle == "qmark" else "%s"
    quote = conn.dialect.identifier_preparer.quote
    # names from the schema only; every value a bound parameter
    sql = (
        f"INSERT INTO {quote(table.name)} ({', '.join(quote(n) for n in names)}) "  # noqa: S608
        f"VALUES ({', '.join([mark] * len(names))})"
    )
    for start in range(0, len(rows), CHUNK):
        chunk = rows[start : start + CHUNK]
        conn.exec_driver_sql(sql, [tuple(row[n] for n in names) for row in chunk])


def runs(store: Store, limit: int = 50) -> list[dict[str, Any]]:
    """The latest purges, newest first."""
    from edi_gateway.store.queries import utc_text
    from edi_gateway.store.tables import PurgeRun

    with store.reading() as session:  # read inside: the session's rollback expires them
        rows = session.scalars(select(PurgeRun).order_by(PurgeRun.id.desc()).limit(limit)).all()
        return [
            {
                "id": row.id,
                "started_at": utc_text(row.started_at),
                "finished_at": utc_text(row.finished_at),
                "actor": row.actor,
                "before": utc_text(row.purged_before),
                "state": row.state,
                "counts": json.loads(row.counts),
                "oldest": utc_text(row.oldest),
                "newest": utc_text(row.newest),
                "archive": row.archive,
                "archive_sha256": row.archive_sha256,
                "restored_at": utc_text(row.restored_at),
                "error": row.error,
            }
            for row in rows
        ]
