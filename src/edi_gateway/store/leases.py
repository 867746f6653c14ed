"""Leases and transaction locks: how several gateways share one store (docs/adr/0018).

A **lease** is a row of ``leases``: a name, its holder, until when, and a fencing ``token`` that
grows each time the lease changes hands. A running gateway holds ``instance:<id>`` (renewed by
its loop: it is alive while the lease is current) and ``connector:<name>`` for each polled
inbound connector it owns. A holder renews before ``until``; once ``until`` has passed, anyone
may take the lease (the token goes up). Times are the database's clock on PostgreSQL, so the
gateways' own clocks may disagree; SQLite serves one host.

Work inside one transaction (processing a batch, one outbox delivery) is claimed with row locks
(``FOR UPDATE SKIP LOCKED``: the rows another gateway works on are skipped, not waited for) and
:func:`xact_locks` (transaction-level advisory locks on what must not be done twice at once:
the same bytes, the same document number, the same order). The transaction is the lease: a
gateway that dies loses its connection and PostgreSQL rolls the work back; one that stalls
longer than its lease is ended by ``idle_in_transaction_session_timeout`` and cannot commit
(the fence). On SQLite every writing transaction holds the database's one write lock
(``BEGIN IMMEDIATE``), so none of this is needed and all of it is a no-op.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import Connection, Select, and_, case, insert, or_, select, text, update
from sqlalchemy.exc import IntegrityError

from edi_gateway.store.schema import leases

# PostgreSQL advisory locks take two int4 keys; the first names the product and the kind of lock.
PG_CLASS = 0x45444947  # "EDIG"
# Kinds of transaction lock (xact_locks), taken in this order within one transaction.
SAME_BYTES = 1  # a payload's sha256: the duplicate check
SAME_NUMBER = 2  # a document or order number: ID conflicts, correlation with its order
SUPPLIER = 3  # a supplier id: its forwards are bundled (and numbered) by one gateway at a time
DELIVERIES = 4  # noting which bundles were delivered
TOLD = 5  # an alert's cause and subject: told once, however many gateways look at once
EVENTS = 6  # alert events: recorded (shared) / read up to a cursor (exclusive), alerts/
MAX_KEYS = 2000  # distinct keys a transaction locks per kind, at most (xact_locks)
_Q = TypeVar("_Q", bound="Select[Any]")


@dataclass(frozen=True, slots=True)
class Lease:
    """One row of ``leases`` as read."""

    name: str
    holder: str
    token: int
    acquired_at: datetime
    until: datetime
    info: str | None

    def current(self, at: datetime) -> bool:
        """Whether the lease is still held at ``at``."""
        return self.until > at


def is_postgres(conn: Connection) -> bool:
    """Whether ``conn`` is to PostgreSQL (else SQLite)."""
    return conn.dialect.name == "postgresql"


def db_now(conn: Connection) -> datetime:
    """The time every gateway agrees on: the database's clock (PostgreSQL), else this host's."""
    if is_postgres(conn):
        found = conn.scalar(text("SELECT clock_timestamp()"))
        assert isinstance(found, datetime)
        return found.astimezone(UTC)
    return datetime.now(UTC)


def hold(
    conn: Connection,
    name: str,
    holder: str,
    seconds: float,
    info: str | None = None,
    *,
    force: bool = False,
) -> int | None:
    """Take the lease ``name`` for ``holder`` or renew it, for ``seconds`` from now; return its
    fencing token, or None while somebody else holds it. ``force``: take it whoever holds it
    (a SQLite store's one daemon: whoever held it before is gone)."""
    at = db_now(conn)
    until = at + timedelta(seconds=seconds)
    c = leases.c
    mine = c.holder == holder
    free = or_(mine, c.until <= at) if not force else c.name == name
    taken = conn.execute(
        update(leases)
        .where(c.name == name, free)
        .values(
            holder=holder,
            until=until,
            info=info,
            token=case((mine, c.token), else_=c.token + 1),
            acquired_at=case((mine, c.acquired_at), else_=at),
        )
    )
    if taken.rowcount == 0:
        try:
            with conn.begin_nested():
                conn.execute(
                    insert(leases).values(
                        name=name, holder=holder, token=1, acquired_at=at, until=until, info=info
                    )
                )
        except IntegrityError:
            return None  # somebody holds it
        return 1
    token = conn.scalar(select(c.token).where(c.name == name, mine))
    return int(token) if token is not None else None


def release(conn: Connection, names: Iterable[str], holder: str) -> None:
    """Give up the leases ``names`` ``holder`` holds (they expire now: the next taker need not
    wait for them to run out)."""
    wanted = list(names)
    if wanted:
        conn.execute(
            update(leases)
            .where(leases.c.name.in_(wanted), leases.c.holder == holder)
            .values(until=db_now(conn))
        )


def read(conn: Connection, prefix: str = "", *, current: bool = False) -> list[Lease]:
    """The leases whose names start with ``prefix`` (only those still held: ``current``), by
    name."""
    c = leases.c
    query = select(c.name, c.holder, c.token, c.acquired_at, c.until, c.info).order_by(c.name)
    if prefix:
        query = query.where(c.name.startswith(prefix, autoescape=True))
    if current:
        query = query.where(c.until > db_now(conn))
    return [Lease(*row) for row in conn.execute(query)]


def alive(conn: Connection, instances: Iterable[str]) -> set[str]:
    """Those of ``instances`` whose gateway still holds its ``instance:`` lease."""
    names = [f"instance:{i}" for i in instances]
    if not names:
        return set()
    c = leases.c
    rows = conn.scalars(select(c.name).where(and_(c.name.in_(names), c.until > db_now(conn)))).all()
    return {name.split(":", 1)[1] for name in rows}


def xact_locks(conn: Connection, kind: int, keys: Iterable[str]) -> None:
    """Take (waiting for them) transaction-level locks on ``keys`` until the transaction ends.

    ``kind`` (1, 2, ...) keeps kinds of key apart; a caller that takes several kinds takes them
    in ascending ``kind``, and the keys of one kind in ascending order of their 32-bit hash, so
    two transactions that take all theirs in one call never wait for each other in a circle
    (two keys that share a hash only wait for each other). A second call later in a transaction
    (processing: the order a document reaches through other documents, ``correlate._locked``
    and ``_lock_chain``) can close one, which PostgreSQL breaks by rolling a transaction back
    (``db.deadlocked``; processing then runs the batch again). One lock per distinct key: a
    caller keeps its transactions to at most
    :data:`MAX_KEYS` keys per kind (PostgreSQL's lock table is shared and finite). No-op on
    SQLite (one writer at a time anyway).
    """
    if not is_postgres(conn):
        return
    hashes = sorted({_hash32(key) for key in keys})
    if hashes:
        conn.execute(
            text(
                "SELECT count(pg_advisory_xact_lock(:c, h)) "
                "FROM unnest(CAST(:hashes AS integer[])) AS t(h)"
            ),
            {"c": PG_CLASS + kind, "hashes": hashes},
        )


def try_xact_lock(conn: Connection, kind: int, key: str) -> bool:
    """Take the transaction lock on ``key`` if nobody holds it; False (without waiting) if
    somebody does. For work any gateway may do later (bundling, noting deliveries): the one
    that finds it taken leaves it to the holder or to its own next round. True on SQLite."""
    if not is_postgres(conn):
        return True
    taken = conn.scalar(
        text("SELECT pg_try_advisory_xact_lock(:c, :h)"), {"c": PG_CLASS + kind, "h": _hash32(key)}
    )
    return bool(taken)


def xact_lock_shared(conn: Connection, kind: int, key: str) -> None:
    """Take (waiting for it) a shared transaction-level lock on ``key``: any number of
    transactions hold it together, and :func:`xact_locks` on the same key waits until none
    does. Once per transaction is enough (taking it again is a no-op with a round trip, so a
    caller remembers it). No-op on SQLite."""
    if is_postgres(conn):
        conn.execute(
            text("SELECT pg_advisory_xact_lock_shared(:c, :h)"),
            {"c": PG_CLASS + kind, "h": _hash32(key)},
        )


def _hash32(key: str) -> int:
    """A signed 32-bit hash of ``key`` (PostgreSQL's advisory keys are int4)."""
    return int.from_bytes(hashlib.blake2b(key.encode(), digest_size=4).digest(), "big", signed=True)


def skip_locked(query: _Q) -> _Q:
    """``query`` locking the rows it returns and skipping those another transaction locked
    (PostgreSQL; SQLite has one writer and ignores it)."""
    return query.with_for_update(skip_locked=True)


def lease_timeout(conn: Connection, seconds: float) -> None:
    """End this transaction if it stays idle longer than ``seconds`` (PostgreSQL): the bound of
    a lease that spans I/O outside the database, such as one delivery."""
    if is_postgres(conn):
        conn.execute(
            text("SELECT set_config('idle_in_transaction_session_timeout', :ms, true)"),
            {"ms": str(int(seconds * 1000))},
        )
