"""forwarding

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22 16:47:31.129712
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:

    op.create_table(
        "forwards",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("order_id", sa.Integer(), nullable=False),
        sa.Column("partner", sa.String(length=100), nullable=False),
        sa.Column("state", sa.String(length=20), nullable=False),
        sa.Column("waiting_since", sa.DateTime(timezone=True), nullable=True),
        sa.Column("seq", sa.Integer(), nullable=True),
        sa.Column("bundle", sa.String(length=200), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["order_id"], ["orders.id"], name=op.f("fk_forwards_order_id_orders")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_forwards")),
        sa.UniqueConstraint("order_id", "partner", name=op.f("uq_forwards_order_id_partner")),
    )
    with op.batch_alter_table("forwards", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_forwards_partner_state"), ["partner", "state"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_forwards_state_bundle"), ["state", "bundle"], unique=False
        )


def downgrade() -> None:

    with op.batch_alter_table("forwards", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_forwards_state_bundle"))
        batch_op.drop_index(batch_op.f("ix_forwards_partner_state"))

    op.drop_table("forwards")
