"""bulk_issued: what a bulk respond / despatch / invoice has issued, by idempotency key

Revision ID: 0023
Revises: 0022
Create Date: 2026-12-05 06:30:00

One row per document a bulk command issued, committed in the same transaction as the document:
the SHA-256 of the command, the order and its canonical request. Re-running the same bulk
command (after a crash, or by mistake) finds the key and issues nothing twice (docs/adr/0038).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0023"
down_revision = "0022"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "bulk_issued",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("key", sa.String(64), nullable=False),
        sa.Column("command", sa.String(20), nullable=False),
        sa.Column("order_id", sa.Integer(), nullable=False),
        sa.Column("document_id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["order_id"],
            ["orders.id"],
            name=op.f("fk_bulk_issued_order_id_orders"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["document_id"],
            ["documents.id"],
            name=op.f("fk_bulk_issued_document_id_documents"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_bulk_issued")),
        sa.UniqueConstraint("key", name=op.f("uq_bulk_issued_key")),
    )
    op.create_index(op.f("ix_bulk_issued_order_id"), "bulk_issued", ["order_id"])
    op.create_index(op.f("ix_bulk_issued_document_id"), "bulk_issued", ["document_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_bulk_issued_document_id"), table_name="bulk_issued")
    op.drop_index(op.f("ix_bulk_issued_order_id"), table_name="bulk_issued")
    op.drop_table("bulk_issued")
