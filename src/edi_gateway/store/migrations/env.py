"""Alembic environment: migrations run on the engine handed in by ``store.db.upgrade``.

On SQLite, Alembic's batch mode changes a table by copying it and dropping the original; with
foreign keys enforced, dropping a table that others reference fails. Foreign keys are switched
off for the migration (SQLite honours that only outside a transaction, hence on the driver
connection before anything begins) and checked with ``PRAGMA foreign_key_check`` before the
migration commits. ``store.db.upgrade`` then drops the pooled connections, so every later
connection is made afresh with foreign keys on.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from edi_gateway.store.search import is_search_object
from edi_gateway.store.tables import Base

config = context.config
engine = config.attributes.get("engine") or create_engine(
    config.get_main_option("sqlalchemy.url") or "sqlite://"
)

with engine.connect() as connection:
    sqlite = connection.dialect.name == "sqlite"
    if sqlite:
        connection.connection.driver_connection.execute("PRAGMA foreign_keys=OFF")  # type: ignore[union-attr]
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=sqlite,
        # the search's FTS5 tables / trigram indexes are not in the metadata (ADR 0035)
        include_name=lambda name, type_, _parents: not is_search_object(name, type_),
    )
    with context.begin_transaction():
        context.run_migrations()
        if sqlite:
            broken = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
            if broken:
                raise RuntimeError(f"migration left broken foreign keys: {broken[:5]}")
