"""One daemon per store: the lock `edi-gateway run` holds for as long as it runs.

SQLite is the embedded store of one gateway: its daemon takes an exclusive ``flock`` on
``<database>.run.lock`` beside the database file, and writes who it is (pid, host, since) into
it. The kernel drops the lock when the process ends, however it ends (kill -9 included), so a
stale lock file never blocks a restart. A second ``run`` finds the lock taken and refuses to
start, naming the holder (:class:`StoreBusy`, exit code 2).

PostgreSQL: until work is claimed with leases (docs/adr/0016), a second daemon on one store is
refused the same way, through a session-level advisory lock held on a connection of its own
whose ``application_name`` names the holder (read back from ``pg_stat_activity``).

CLI commands (``ingest``, ``orders``, ``respond``, ...) take no such lock: they share the store
with a running daemon, each transaction waiting for the daemon's current one (SQLite's
``busy_timeout``; ``BEGIN IMMEDIATE`` so a writer waits instead of failing half-way).
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from edi_gateway.errors import ErrorCode, GatewayError

if TYPE_CHECKING:
    from sqlalchemy import Connection, Engine
    from sqlalchemy.engine import URL

LOCK_SUFFIX, SCHEMA_SUFFIX = ".run.lock", ".schema.lock"
# PostgreSQL advisory locks take two int4 keys: classid "EDIG" names the product, objid the lock.
PG_CLASS, PG_RUN, PG_SCHEMA = 0x45444947, 1, 2


class StoreBusy(GatewayError):
    """Another daemon holds this store."""

    def __init__(self, holder: str, url: str) -> None:
        super().__init__(
            ErrorCode.STORE_BUSY,
            f"another `edi-gateway run` holds this store ({holder}); one daemon per store: "
            f"stop it first (store: {url})",
        )


@dataclass(slots=True)
class InstanceLock:
    """A held lock; :meth:`release` (or the end of the process) lets the next daemon in."""

    fd: int | None = None
    conn: Connection | None = None
    engine: Engine | None = None

    def release(self) -> None:
        """Give the store up."""
        if self.fd is not None:
            os.close(self.fd)  # closing the descriptor drops the flock
            self.fd = None
        if self.conn is not None:
            self.conn.close()
            self.conn = None
        if self.engine is not None:
            self.engine.dispose()
            self.engine = None


def whoami() -> dict[str, Any]:
    """What a holder writes about itself."""
    return {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "since": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def describe(holder: dict[str, Any]) -> str:
    """``pid 123 on host gw1 since 2026-12-04T20:00:00+00:00`` (what is known of it)."""
    parts = [f"pid {holder['pid']}" if holder.get("pid") else "pid unknown"]
    if holder.get("host"):
        parts.append(f"on host {holder['host']}")
    if holder.get("since"):
        parts.append(f"since {holder['since']}")
    return " ".join(parts)


def hold_store(url: str) -> InstanceLock:
    """Take the store at ``url`` for this daemon, or raise :class:`StoreBusy`."""
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    if parsed.get_backend_name() == "postgresql":
        return _hold_advisory(url)
    database = _sqlite_file(parsed)
    return _hold_file(database + LOCK_SUFFIX, url) if database else InstanceLock()


@contextmanager
def schema_lock(engine: Engine) -> Iterator[None]:
    """Held (waiting for it) while the schema is created or migrated, so that processes opening
    a new store at once create it once."""
    if engine.dialect.name == "postgresql":
        # A connection of its own: a migration disposes of the engine's pool when it is done.
        locker = create_engine(engine.url, poolclass=NullPool)
        try:
            with locker.connect() as conn:
                conn.execute(text("SELECT pg_advisory_lock(:c, :o)"), _key(PG_SCHEMA))
                conn.commit()
                yield  # the lock ends with the connection
        finally:
            locker.dispose()
        return
    database = _sqlite_file(engine.url)
    if not database:
        yield
        return
    fd = os.open(database + SCHEMA_SUFFIX, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _sqlite_file(url: URL) -> str | None:
    """The database file of a SQLite URL; None for another backend or a private in-memory one
    (nobody else can reach it)."""
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
        return None
    return url.database


def _key(lock: int) -> dict[str, int]:
    return {"c": PG_CLASS, "o": lock}


def _hold_file(path: str, url: str) -> InstanceLock:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = _read_holder(fd)
        os.close(fd)
        raise StoreBusy(describe(holder), _safe(url)) from None
    except BaseException:
        os.close(fd)
        raise
    os.ftruncate(fd, 0)
    os.pwrite(fd, json.dumps(whoami()).encode(), 0)
    return InstanceLock(fd=fd)


def _read_holder(fd: int) -> dict[str, Any]:
    try:
        found = json.loads(os.pread(fd, 4096, 0) or b"{}")
    except ValueError:  # being written at this very moment
        return {}
    return found if isinstance(found, dict) else {}


def _hold_advisory(url: str) -> InstanceLock:
    me = whoami()
    name = f"edi-gateway run pid={me['pid']} host={me['host']} since={me['since']}"[:63]
    engine = create_engine(url, connect_args={"application_name": name}, poolclass=NullPool)
    conn = engine.connect()
    try:
        taken = conn.scalar(text("SELECT pg_try_advisory_lock(:c, :o)"), _key(PG_RUN))
        conn.commit()
        if not taken:
            raise StoreBusy(_pg_holder(conn), _safe(url))
    except BaseException:
        conn.close()
        engine.dispose()
        raise
    return InstanceLock(conn=conn, engine=engine)


def _pg_holder(conn: Connection) -> str:
    row = conn.execute(
        text(
            "SELECT a.application_name, a.pid FROM pg_locks l "
            "JOIN pg_stat_activity a ON a.pid = l.pid "
            "WHERE l.locktype = 'advisory' AND l.classid = :c AND l.objid = :o AND l.granted"
        ),
        _key(PG_RUN),
    ).first()
    if row is None:
        return "a holder that just left"
    fields = dict(part.split("=", 1) for part in str(row.application_name).split() if "=" in part)
    return describe(fields) + f", database backend {row.pid}"


def _safe(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)
