"""The schema: migrations match the tables, and the fast path knows the head revision."""

import warnings
from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, text

from edi_gateway.store.db import (
    HEAD_REVISION,
    Store,
    alembic_config,
    current_revision,
    open_store,
    upgrade,
)
from edi_gateway.store.search import is_search_object
from edi_gateway.store.tables import Base


def test_head_revision_constant_matches_the_scripts(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'g.db'}")
    try:
        script = ScriptDirectory.from_config(alembic_config(store.engine))
        assert script.get_current_head() == HEAD_REVISION
        assert current_revision(store.engine) == HEAD_REVISION
    finally:
        store.close()


RELEASED = [
    "0001",
    "0002",
    "0003",
    "0004",
    "0005",
    "0006",
    "0007",
    "0008",
    "0009",
    "0010",
    "0011",
    "0017",
    "0018",
    "0019",
    "0020",
    "0022",
    "0023",
    "0024",
    "0025",
    "0026",
    "0027",
    "0028",
]
"""The revisions, in order, of the last release (stop 20): stores in the field are at one of
them, so a migration may only come after the last (one slotted in before 0022 was never run
on a store already at 0022)."""


def test_released_revisions_keep_their_order_and_new_ones_come_after(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'g.db'}")
    try:
        script = ScriptDirectory.from_config(alembic_config(store.engine))
        chain = [r.revision for r in reversed(list(script.walk_revisions()))]
        assert chain[: len(RELEASED)] == RELEASED
    finally:
        store.close()


def test_a_store_at_the_last_release_upgrades_to_the_schema(database_url: str) -> None:
    """Down to the released head and up again: every later migration runs, the schema is the
    one schema.py declares."""
    from alembic import command

    fresh = open_store(database_url)
    engine = create_engine(database_url)
    try:
        fresh.close()
        command.downgrade(alembic_config(engine), RELEASED[-1])
        upgraded = open_store(database_url)
        try:
            assert current_revision(upgraded.engine) == HEAD_REVISION
            assert _schema_diff(upgraded.engine) == []
        finally:
            upgraded.close()
    finally:
        engine.dispose()


def keep(name: str | None, type_: str, _parents: object) -> bool:
    return not is_search_object(name, type_)  # the search's own tables and indexes (ADR 0035)


def _schema_diff(engine: Engine) -> list[object]:
    with warnings.catch_warnings():
        # SQLAlchemy reflects no expression index on SQLite, so Alembic compares none there:
        # the sha256 key's index is checked by its own test below
        warnings.filterwarnings("ignore", r".*expression-based index '?ix_messages_sha256_key")
        with engine.connect() as conn:
            opts = {"compare_type": True, "include_name": keep}
            context = MigrationContext.configure(conn, opts=opts)
            return list(compare_metadata(context, Base.metadata))


def test_migrations_create_exactly_the_declared_tables(database_url: str) -> None:
    """Alembic's migrations, on SQLite and on PostgreSQL alike, give the declared schema."""
    engine = create_engine(database_url)
    try:
        upgrade(engine)
        assert _schema_diff(engine) == []
        assert current_revision(engine) == HEAD_REVISION
    finally:
        engine.dispose()


def test_a_fresh_store_gets_the_same_schema_without_alembic(store: Store) -> None:
    """open_store's fast path for an empty database equals running the migrations."""
    assert _schema_diff(store.engine) == []
    assert current_revision(store.engine) == HEAD_REVISION


def _index_sql(engine: Engine, name: str) -> str | None:
    query = {
        "sqlite": "SELECT sql FROM sqlite_master WHERE name = :name",
        "postgresql": "SELECT indexdef FROM pg_indexes WHERE indexname = :name",
    }[engine.dialect.name]
    with engine.connect() as conn:
        found = conn.execute(text(query), {"name": name}).scalar()
        return None if found is None else str(found)


def _unbilled_index_sql(engine: Engine) -> str:
    return str(_index_sql(engine, "ix_order_lines_unbilled"))


def test_the_unbilled_index_is_partial_on_every_backend(database_url: str) -> None:
    """``ix_order_lines_unbilled`` keeps its WHERE both from a fresh store (its PostgreSQL
    condition is added just before the tables are created) and from the migrations (Alembic
    compares no index conditions, so _schema_diff would not see one missing)."""
    from alembic import command

    fresh = open_store(database_url)
    try:
        made = _unbilled_index_sql(fresh.engine)
        assert "WHERE" in made.upper() and "unbilled" in made.split("WHERE")[1], made
        command.downgrade(alembic_config(fresh.engine), "0020")
    finally:
        fresh.close()
    migrated = open_store(database_url)  # 0025 creates the index again, 0029 on the flag
    try:
        again = _unbilled_index_sql(migrated.engine)
        assert "WHERE" in again.upper() and "unbilled" in again.split("WHERE")[1], again
    finally:
        migrated.close()


def test_the_duplicate_check_indexes_a_prefix_of_the_sha256_on_every_backend(
    database_url: str,
) -> None:
    """``ix_messages_sha256_key`` is on ``substr(sha256, 1, 8)`` both in a fresh store and
    after 0028, which replaces the whole-digest index (Alembic compares no expression index on
    SQLite, so _schema_diff would not see it missing there)."""
    from alembic import command

    def key_index(engine: Engine) -> str:
        made = str(_index_sql(engine, "ix_messages_sha256_key")).replace("(sha256)::text", "sha256")
        assert "substr(sha256, 1, 8)" in made, made
        assert _index_sql(engine, "ix_messages_sha256") is None
        return made

    fresh = open_store(database_url)
    try:
        key_index(fresh.engine)
        command.downgrade(alembic_config(fresh.engine), "0027")
        assert _index_sql(fresh.engine, "ix_messages_sha256_key") is None
        assert _index_sql(fresh.engine, "ix_messages_sha256") is not None
    finally:
        fresh.close()
    migrated = open_store(database_url)  # 0028
    try:
        key_index(migrated.engine)
    finally:
        migrated.close()


def test_a_shared_database_is_migrated_not_recreated(tmp_path: Path) -> None:
    """A database that already holds someone else's table goes through Alembic."""
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE keep_me (x INTEGER)"))
        conn.execute(text("INSERT INTO keep_me VALUES (7)"))
    engine.dispose()
    store = open_store(url)
    try:
        assert current_revision(store.engine) == HEAD_REVISION
        with store.engine.connect() as conn:
            assert conn.execute(text("SELECT x FROM keep_me")).scalar() == 7
            assert conn.execute(text("SELECT count(*) FROM messages")).scalar() == 0
    finally:
        store.close()


def test_reopening_a_migrated_store_keeps_data(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'g.db'}"
    from edi_gateway.envelope import Envelope
    from edi_gateway.pipeline.intake import intake

    first = open_store(url)
    intake(first, [Envelope(payload=b"x", source="s", source_ref="r", filename="f")])
    first.close()
    second = open_store(url)
    try:
        assert intake(
            second, [Envelope(payload=b"x", source="s", source_ref="r", filename="f")]
        ) == [1]
    finally:
        second.close()


def test_a_savepoint_after_reads_does_not_commit_on_its_own(tmp_path: Path) -> None:
    """With pysqlite's own transaction handling, RELEASE of a SAVEPOINT opened after plain
    SELECTs commits; a crash before the real COMMIT then left half a batch stored."""
    store = open_store(f"sqlite:///{tmp_path / 'g.db'}")
    try:
        try:
            with store.connect() as conn:
                conn.execute(text("SELECT count(*) FROM messages")).scalar()
                with conn.begin_nested():
                    conn.execute(
                        text(
                            "INSERT INTO history (at, event, actor) "
                            "VALUES ('2026-11-22 00:00:00', 'probe', 'test')"
                        )
                    )
                raise RuntimeError("crash before the batch commits")
        except RuntimeError:
            pass
        with store.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM history")).scalar() == 0
    finally:
        store.close()


def test_a_populated_store_migrates_with_its_data(database_url: str, tmp_path: Path) -> None:
    """Batch migrations on SQLite copy and drop tables that others reference: with data and
    foreign keys in place that must still work (it once failed on DROP TABLE documents)."""
    from alembic import command

    from edi_gateway.app import Gateway
    from edi_gateway.outbound.respond import Decision, respond
    from tests import factory as f
    from tests.unit.support import make_settings, receive

    (tmp_path / "out").mkdir()
    store = open_store(database_url)
    gateway = Gateway(make_settings(tmp_path), store)
    receive(gateway, f.order("PO-1", f.items(2)))
    respond(gateway.store, gateway.settings, "PO-1", Decision("AP"), actor="ops")
    counts = _counts(store.engine)
    store.close()

    engine = create_engine(database_url)
    command.downgrade(alembic_config(engine), "0003")
    engine.dispose()
    assert current_revision(engine) == "0003"
    reopened = open_store(database_url)  # migrates to the head again
    try:
        assert current_revision(reopened.engine) == HEAD_REVISION
        assert _schema_diff(reopened.engine) == []
        assert _counts(reopened.engine) == counts
        if reopened.engine.dialect.name == "sqlite":
            with reopened.connect() as conn:
                assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1
                assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
                assert conn.execute(text("PRAGMA synchronous")).scalar() == 2  # FULL
    finally:
        reopened.close()
        engine.dispose()


def _counts(engine: Engine) -> dict[str, int]:
    tables = ("messages", "orders", "order_lines", "documents", "document_lines", "outbox")
    with engine.connect() as conn:
        return {t: conn.execute(text(f"SELECT count(*) FROM {t}")).scalar() or 0 for t in tables}


def test_rows_awaiting_a_receipt_are_pending_again_below_0006(database_url: str) -> None:
    """0006 adds ``outbox.receipt``; going back below it makes an ``awaiting_receipt`` row
    ``pending`` (the older code re-sends it with the same Message-ID; the partner de-duplicates)."""
    from alembic import command

    from edi_gateway.config import Settings
    from edi_gateway.outbound.outbox import AWAITING, Outgoing, enqueue
    from edi_gateway.store.tables import OutboxRow

    store = open_store(database_url)
    with store.session() as session:
        item = Outgoing(
            partner="p", connector="c", kind="Invoice", doc_number="I-1", payload=b"<x/>"
        )
        settings = Settings.model_validate({"path": "gateway.yaml"})
        row = session.get_one(OutboxRow, enqueue(session, item, settings))
        row.state, row.receipt = AWAITING, '{"message_id": "<m@gw>", "mic": "x, sha-256"}'
    store.close()

    engine = create_engine(database_url)
    command.downgrade(alembic_config(engine), "0005")
    with engine.connect() as conn:
        assert conn.execute(text("SELECT state FROM outbox")).scalar() == "pending"
    engine.dispose()
    reopened = open_store(database_url)  # migrates to the head again
    try:
        assert current_revision(reopened.engine) == HEAD_REVISION
        assert _schema_diff(reopened.engine) == []
        with reopened.connect() as conn:
            found = conn.execute(
                text(
                    "SELECT state, receipt, payload "
                    "FROM outbox JOIN outbox_payloads ON id = outbox_id"
                )
            ).one()
        assert tuple(found) == ("pending", None, b"<x/>")
    finally:
        reopened.close()
        engine.dispose()


def test_a_store_a_newer_gateway_migrated_is_refused_with_its_code(
    database_url: str, tmp_path: Path
) -> None:
    """Every gateway sharing a store runs one version (README, "Upgrading several"): one older
    than the store says so, coded, instead of Alembic's traceback, and changes nothing."""
    import subprocess
    import sys

    import pytest

    from edi_gateway.errors import ErrorCode, GatewayError

    store = open_store(database_url)
    with store.engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    store.close()
    with pytest.raises(GatewayError) as raised:
        open_store(database_url)
    assert raised.value.code == ErrorCode.STORE_TOO_NEW
    assert "revision 9999" in raised.value.message and HEAD_REVISION in raised.value.message
    engine = create_engine(database_url)
    try:
        assert current_revision(engine) == "9999"  # nothing was changed
    finally:
        engine.dispose()
    config = tmp_path / "gateway.yaml"
    config.write_text(f"store:\n  url: {database_url}\n", encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "-m", "edi_gateway.cli", "--config", str(config), "orders", "list"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**__import__("os").environ, "XDG_CACHE_HOME": str(tmp_path / "cache")},
    )
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stderr.startswith("error: STORE_TOO_NEW: the store is at schema revision 9999")
    assert "Traceback" not in done.stderr
