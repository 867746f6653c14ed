"""The schema: migrations match the tables, and the fast path knows the head revision."""

from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory

from edi_gateway.store.db import (
    HEAD_REVISION,
    Store,
    alembic_config,
    current_revision,
    open_store,
)
from edi_gateway.store.tables import Base


def test_head_revision_constant_matches_the_scripts(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'g.db'}")
    try:
        script = ScriptDirectory.from_config(alembic_config(store.engine))
        assert script.get_current_head() == HEAD_REVISION
        assert current_revision(store.engine) == HEAD_REVISION
    finally:
        store.close()


def test_migrations_create_exactly_the_declared_tables(store: Store) -> None:
    """On SQLite and on PostgreSQL alike."""
    with store.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        assert compare_metadata(context, Base.metadata) == []
    assert current_revision(store.engine) == HEAD_REVISION


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
