"""order search indexes: FTS5 trigram tables on SQLite, pg_trgm GIN indexes on PostgreSQL

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-05 04:15:00

``orders list --search`` and the console's search read every order and line with
``ILIKE '%text%'``; these trigram indexes answer the same condition (docs/adr/0035). On SQLite
two external-content FTS5 tables with triggers, filled from the rows already stored; on
PostgreSQL the ``pg_trgm`` extension and a GIN index on each table's searched columns.
"""

from __future__ import annotations

from alembic import op

from edi_gateway.store import search

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None


def upgrade() -> None:
    search.install(op.get_bind())


def downgrade() -> None:
    search.uninstall(op.get_bind())
