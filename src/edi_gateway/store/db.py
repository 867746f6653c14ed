"""Opening the store: engine, sessions, SQLite pragmas and schema migration on open."""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import Connection, Engine, create_engine, event, inspect, text
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError, ProgrammingError

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from edi_gateway.config import Settings
    from edi_gateway.errors import GatewayError

# The newest migration. Opening a store at this revision skips Alembic (a start-up cost);
# tests/unit/test_store.py checks it equals the head of the migration scripts.
HEAD_REVISION = "0030"
MIGRATIONS = Path(__file__).with_name("migrations")
DEADLOCK_TRIES = 5
"""How many times in all a transaction PostgreSQL keeps rolling back to break circles of lock
waits is run (:func:`again_after_deadlocks`)."""

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Store:
    """An open store: its engine, with Core transactions and (imported on demand) ORM sessions.

    A store :meth:`joined` to a connection already in a transaction runs every ``connect`` and
    ``session`` inside that transaction, each as a savepoint: what a message's processing and
    the reactions it causes write (history, outbox rows) then commits, or is undone, as one.
    """

    engine: Engine
    bound: Connection | None = None

    def joined(self, conn: Connection) -> Store:
        """This store, with every transaction a savepoint of ``conn``'s current one."""
        return Store(self.engine, conn)

    @contextmanager
    def connect(self) -> Iterator[Connection]:
        """A Core connection in a transaction that commits on success, rolls back on error."""
        if self.bound is not None:
            with self.bound.begin_nested():
                yield self.bound
            return
        with self.engine.begin() as conn:
            yield conn

    @contextmanager
    def session(self) -> Iterator[Session]:
        """An ORM session that commits on success and rolls back on error."""
        from sqlalchemy.orm import Session

        if self.bound is not None:
            with (
                Session(
                    bind=self.bound,
                    join_transaction_mode="create_savepoint",
                    expire_on_commit=False,
                ) as session,
                session.begin(),
            ):
                yield session
            return
        with Session(self.engine, expire_on_commit=False) as session, session.begin():
            yield session

    @contextmanager
    def reading(self) -> Iterator[Session]:
        """An ORM session that only reads: on SQLite a deferred transaction, which never
        waits for a writer (it reads the last commit); nothing it does is committed."""
        from sqlalchemy.orm import Session

        if self.bound is not None:
            with self.session() as session:
                yield session
            return
        with self.looking() as conn, Session(bind=conn, expire_on_commit=False) as session:
            yield session

    @contextmanager
    def looking(self) -> Iterator[Connection]:
        """A Core connection that only reads (the read-only commands): on SQLite a deferred
        transaction, which never waits for a writer (it reads the last commit); nothing it
        does is committed."""
        if self.bound is not None:
            with self.bound.begin_nested() as nested:
                yield self.bound
                nested.rollback()
            return
        with self.engine.connect() as conn:
            conn.execution_options(sqlite_deferred=True)
            with conn.begin() as transaction:
                try:
                    yield conn
                finally:
                    transaction.rollback()

    def close(self) -> None:
        """Release every connection."""
        self.engine.dispose()


def transient(exc: BaseException) -> bool:
    """Whether ``exc`` says the store could not be reached or stayed busy (try again later;
    nothing is anybody's fault) rather than that what was written is wrong."""
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    return isinstance(exc, OperationalError | InterfaceError)


def deadlocked(exc: BaseException) -> bool:
    """Whether PostgreSQL rolled this transaction back to break a circle of transactions
    waiting for each other's locks (SQLSTATE 40P01): nothing is wrong with the work, which can
    be done again at once (the other transaction has gone on). Also :func:`transient`."""
    return isinstance(exc, DBAPIError) and getattr(exc.orig, "sqlstate", None) == "40P01"


def again_after_deadlocks(work: Callable[[], T], doing: str) -> T:
    """``work()``, one whole transaction; when PostgreSQL rolled it back to break a circle of
    lock waits (:func:`deadlocked`: nothing of it was kept, and the other transaction has gone
    on), run it again after a short random pause, up to :data:`DEADLOCK_TRIES` times in all.
    The last deadlock is raised (:func:`unavailable` tells it as STORE_BUSY, try again).

    Processing retries its batches so (a document reaching its order through other documents
    locks that order's number after its batch's own: ``correlate._lock_chain``), and so do
    the operator's commands that lock several numbers (bulk issuing's batches, attaching by
    hand) or issue on an order (``issuing.on_order``): any of them can be the transaction
    PostgreSQL picks, and the operator should not be told to run it again by hand.
    ``work`` must leave nothing behind outside its transaction. ``doing``: what it does, for
    the log ("processing 3 message(s)")."""
    tries = 1
    while True:
        try:
            return work()
        except Exception as exc:
            if not deadlocked(exc) or tries >= DEADLOCK_TRIES:
                raise
            log.warning(
                "%s waited in a circle with another transaction (rolled back by PostgreSQL, "
                "nothing of it kept); doing it again (%d)",
                doing,
                tries,
            )
            time.sleep(random.uniform(0, 0.2 * tries))  # noqa: S311 - not a secret
            tries += 1


def unavailable(exc: BaseException) -> GatewayError | None:
    """A store that cannot be reached, or stayed locked past the wait, as one coded error
    (STORE_BUSY, STORE_UNAVAILABLE); None for any other failure."""
    from edi_gateway.errors import ErrorCode, GatewayError, first_line

    if not transient(exc):
        return None
    first = first_line(exc)
    if deadlocked(exc):
        return GatewayError(
            ErrorCode.STORE_BUSY,
            "the store is busy: this and another transaction waited for each other's locks "
            "and this one was rolled back (nothing of it was kept); try again",
        )
    if "locked" in first or "busy" in first:
        return GatewayError(
            ErrorCode.STORE_BUSY,
            f"the store is busy ({first}): another edi-gateway kept it locked; try again",
        )
    return GatewayError(ErrorCode.STORE_UNAVAILABLE, f"the store cannot be used: {first}")


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # pysqlite's own transaction handling emits BEGIN only before DML, so a SAVEPOINT after
    # plain SELECTs would open (and its RELEASE commit) a transaction of its own: a crash
    # between that RELEASE and the real COMMIT would leave half a batch committed. Take
    # transaction control away from the driver; SQLAlchemy's "begin" event emits BEGIN
    # (the workaround SQLAlchemy documents for pysqlite and SAVEPOINT).
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    # FULL: each commit syncs the WAL. Sources are acknowledged after intake's commit (a file
    # moved, a queue message acked, an AS2 receipt sent); with NORMAL a power loss or an OS
    # crash could roll that commit back after the sender let go of the bytes (ADR 0040).
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def _sqlite_begin(conn: Connection) -> None:
    # IMMEDIATE: a transaction takes the write lock when it starts, waiting for it (busy_timeout)
    # while another process writes. A deferred one that read first and writes later cannot
    # wait: SQLite fails it at once ("database is locked") when another writer came between,
    # which is what a CLI command next to a running daemon would meet. Readers that must never
    # wait (the daemon's health check) ask for a deferred BEGIN.
    deferred = conn.get_execution_options().get("sqlite_deferred", False)
    conn.exec_driver_sql("BEGIN" if deferred else "BEGIN IMMEDIATE")


def open_configured(settings: Settings) -> Store:
    """Open the store ``settings`` configure (migrating it when needed); STORE_UNAVAILABLE in
    one line when it cannot be (a missing folder of a SQLite file, an unreadable file)."""
    return open_at(settings.store.connect_url(), settings.daemon.lease_seconds)


def open_at(url: str, lease_seconds: float) -> Store:
    """:func:`open_configured` given the store's URL and the gateway's lease (what a read-only
    command takes from the config cache, without the settings)."""
    from edi_gateway.errors import ErrorCode, GatewayError, first_line

    try:
        return open_store(url, lease_seconds=lease_seconds)
    except OSError as exc:
        raise GatewayError(
            ErrorCode.STORE_UNAVAILABLE, f"the store cannot be used: {first_line(exc)}"
        ) from exc


def open_store(url: str, *, migrate: bool = True, lease_seconds: float | None = None) -> Store:
    """Open (and by default migrate to the newest schema) the store at ``url``.

    On PostgreSQL, ``lease_seconds`` bounds how long a transaction may stay idle: a gateway
    that stalls inside one (paused, cut off) loses its row and advisory locks to the others
    and cannot commit afterwards (store/leases.py). Pooled connections are pinged before use,
    so a restarted server costs one failed batch, not one per pooled connection."""
    options: dict[str, Any] = {}
    if url.startswith("postgresql"):
        options["pool_pre_ping"] = True
        if lease_seconds is not None:
            timeout = int(lease_seconds * 1000)
            options["connect_args"] = {
                "options": f"-c idle_in_transaction_session_timeout={timeout}"
            }
    engine = create_engine(url, **options)
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "begin", _sqlite_begin)
    if migrate and current_revision(engine) != HEAD_REVISION:
        from edi_gateway.store.instance import schema_lock

        try:
            with schema_lock(engine):  # two processes opening a new store: one creates it
                revision = current_revision(engine)
                if revision is None and _is_empty(engine):
                    create_schema(engine)
                elif revision != HEAD_REVISION:
                    upgrade(engine)
        except BaseException:
            engine.dispose()  # a store that cannot be opened keeps no connection
            raise
    return Store(engine)


def current_revision(engine: Engine) -> str | None:
    """The Alembic revision the database is at, or None for an empty database. Read in a
    deferred transaction: every command opens the store this way, and none of them waits
    here for a gateway that is writing (SQLite)."""
    try:
        with engine.connect().execution_options(sqlite_deferred=True) as conn:
            return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
    except (OperationalError, ProgrammingError) as exc:
        if "alembic_version" in str(exc.orig):  # no such table: a new database
            return None
        raise


def _is_empty(engine: Engine) -> bool:
    with engine.connect().execution_options(sqlite_deferred=True) as conn:
        return not inspect(conn).get_table_names()


def create_schema(engine: Engine) -> None:
    """Create the newest schema in an empty database and stamp it at ``HEAD_REVISION``.

    Equivalent to running every migration (a test compares the two), without importing Alembic:
    a fresh store is the common case at start-up, and Alembic costs ~0.1 s to import.
    """
    from edi_gateway.store import search
    from edi_gateway.store.schema import metadata

    with engine.begin() as conn:
        metadata.create_all(conn)
        search.install(conn)
        conn.execute(
            text(
                "CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL, "
                "CONSTRAINT alembic_version_pkc PRIMARY KEY (version_num))"
            )
        )
        conn.execute(
            text("INSERT INTO alembic_version (version_num) VALUES (:v)"), {"v": HEAD_REVISION}
        )


def alembic_config(engine: Engine) -> Any:
    """An Alembic Config pointing at the packaged migrations (imported lazily: start-up cost)."""
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["engine"] = engine
    return cfg


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Run the migrations up to ``revision``; STORE_TOO_NEW when the store is at a revision
    these migrations do not know (a newer edi-gateway migrated it)."""
    from alembic import command
    from alembic.script import ScriptDirectory

    from edi_gateway.errors import ErrorCode, GatewayError

    config = alembic_config(engine)
    found = current_revision(engine)
    known = {script.revision for script in ScriptDirectory.from_config(config).walk_revisions()}
    if found is not None and found not in known:
        raise GatewayError(ErrorCode.STORE_TOO_NEW, _too_new(found))
    command.upgrade(config, revision)
    engine.dispose()  # the migration's connection ran with foreign keys off: never reuse it


def _too_new(found: str) -> str:
    from edi_gateway import __version__

    return (
        f"the store is at schema revision {found}, which this edi-gateway ({__version__}, "
        f"schema {HEAD_REVISION}) does not know: a newer version migrated it; upgrade this one"
    )
