"""sla: when an order's response and despatch are due, and when each was found overdue

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-05 03:40:00

``orders.response_due_at`` / ``despatch_due_at`` are set by the SLA clock from the buyer
partner's ``sla:`` terms; ``response_overdue_at`` / ``despatch_overdue_at`` when the timer fired
(docs/adr/0034-sla-timers.md). Orders stored before get their due times at the clock's first
look.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None

COLUMNS = ("response_due_at", "despatch_due_at", "response_overdue_at", "despatch_overdue_at")


def upgrade() -> None:
    with op.batch_alter_table("orders", schema=None) as batch_op:
        for name in COLUMNS:
            batch_op.add_column(sa.Column(name, sa.DateTime(timezone=True), nullable=True))
        batch_op.create_index(batch_op.f("ix_orders_response_due_at"), ["response_due_at"])
        batch_op.create_index(batch_op.f("ix_orders_despatch_due_at"), ["despatch_due_at"])


def downgrade() -> None:
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_orders_despatch_due_at"))
        batch_op.drop_index(batch_op.f("ix_orders_response_due_at"))
        for name in reversed(COLUMNS):
            batch_op.drop_column(name)
