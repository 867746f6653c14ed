"""FTS5 automerge 8 for the SQLite search tables (PostgreSQL: nothing)

Revision ID: 0027
Revises: 0026
Create Date: 2026-12-05 15:00:00

FTS5 merged a level's segments once it held 4 (its default); each merge rewrites what it
merges, so every line indexed paid for more levels as the store grew: the processing
transaction's insert into ``lines_search`` took three times as long into a store of 50,000
orders as into an empty one. With 8 it takes about as long (docs/adr/0036). The setting lives
in each FTS5 table's config table; new stores get it from ``search.install``.
"""

from __future__ import annotations

from alembic import op

from edi_gateway.store import search

revision = "0027"
down_revision = "0026"
branch_labels = None
depends_on = None


def upgrade() -> None:
    conn = op.get_bind()
    if conn.dialect.name == "sqlite":
        for fts, _ in search.SQLITE_TABLES.values():
            conn.exec_driver_sql(search.merging(fts))


def downgrade() -> None:
    conn = op.get_bind()
    if conn.dialect.name == "sqlite":
        for fts, _ in search.SQLITE_TABLES.values():
            conn.exec_driver_sql(search.merging(fts, 4))  # FTS5's default
