"""documents.preceding_ref: the preceding invoice an orphan bill also waits for, indexed

Revision ID: 0030
Revises: 0029
Create Date: 2026-12-06 09:00:00

A bill naming an order number (EN 16931 BT-13) and a preceding invoice (BT-25) attaches
through that invoice's order when the number finds none (``correlate._with_preceding``). Its
orphan held only the order number (``order_ref``), so the invoice attaching later (its own
order's arrival, ``messages attach``) never found it: it stayed an orphan until redriven. The
invoice's number is kept beside it, indexed as ``order_ref`` is, and looked for by
``correlate.attach_waiting`` (docs/adr/0005, amendment of session 12).

Rows stored before are left NULL: the preceding invoice is in the message's payload only (no
column holds it), and a migration does not parse payloads. Such an orphan attaches as before,
by its order number, or by ``messages redrive`` / ``messages attach``. Only a column is added:
SQLite rebuilds no table (``documents`` has no trigger to lose either way).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0030"
down_revision = "0029"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("documents", sa.Column("preceding_ref", sa.String(length=200), nullable=True))
    op.create_index("ix_documents_preceding_ref", "documents", ["preceding_ref"])


def downgrade() -> None:
    op.drop_index("ix_documents_preceding_ref", table_name="documents")
    # SQLite's own DROP COLUMN (3.35+), as 0029: no batch rebuild of a referenced table
    op.drop_column("documents", "preceding_ref")
