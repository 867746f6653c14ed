"""documents per message

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22 17:00:19.607668
"""

from __future__ import annotations

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:

    with op.batch_alter_table("documents", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("uq_documents_message_id"), type_="unique")
        batch_op.create_index(batch_op.f("ix_documents_message_id"), ["message_id"], unique=False)


def downgrade() -> None:

    with op.batch_alter_table("documents", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_documents_message_id"))
        batch_op.create_unique_constraint(batch_op.f("uq_documents_message_id"), ["message_id"])
