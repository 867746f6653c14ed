"""Who a running gateway is, and the lock `edi-gateway run` holds on a SQLite store.

SQLite is the embedded store of one gateway: its daemon takes an exclusive ``flock`` on
``<database>.run.lock`` beside the database file, and writes who it is (pid, host, since) into
it. The kernel drops the lock when the process ends, however it ends (kill -9 included), so a
stale lock file never blocks a restart. A second ``run`` finds the lock taken and refuses to
start, naming the holder (:class:`StoreBusy`, exit code 2).

PostgreSQL takes any number of daemons: they share the work through leases and row locks
(``store/leases.py``, docs/adr/0018); each names itself with :func:`instance_id`.

CLI commands (``ingest``, ``orders``, ``respond``, ...) take no such lock: they share the store
with a running daemon, each transaction waiting for the daemon's current one (SQLite's
``busy_timeout``; ``BEGIN IMMEDIATE`` so a writer waits instead of failing half-way).
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import socket
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from edi_gateway.errors import ErrorCode, GatewayError
from edi_gateway.store.leases import PG_CLASS

if TYPE_CHECKING:
    from sqlalchemy import Engine
    from sqlalchemy.engine import URL

LOCK_SUFFIX, SCHEMA_SUFFIX = ".run.lock", ".schema.lock"
PG_SCHEMA = 2  # the objid of the advisory lock held while the schema is created or migrated


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

    def release(self) -> None:
        """Give the store up."""
        if self.fd is not None:
            os.close(self.fd)  # closing the descriptor drops the flock
            self.fd = None


def whoami() -> dict[str, Any]:
    """What a holder writes about itself."""
    return {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "since": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def instance_id() -> str:
    """A name for this running gateway, unique among those sharing a store: host, pid and a
    random part (a restarted process with the same pid is another instance). Letters, digits,
    dots and single dashes only: it is part of claimed file names."""
    host = re.sub(r"[^A-Za-z0-9]+", "-", socket.gethostname()).strip("-")[:24].strip("-") or "host"
    return f"{host}.{os.getpid()}.{uuid.uuid4().hex[:6]}"


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


def _safe(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)
