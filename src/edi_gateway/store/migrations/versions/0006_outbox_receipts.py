"""outbox rows awaiting a partner's receipt

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-05 10:00:00

An AS2 delivery with an asynchronous MDN is no longer waited for inside the daemon's loop: the
row becomes ``awaiting_receipt`` and ``receipt`` (JSON text) keeps what the receipt must say,
the AS2 Message-ID and the MIC we computed; ``sent_at`` is when it went, ``next_attempt_at``
the deadline (docs/adr/0017). Downgrading makes awaiting rows ``pending`` again: the older code
re-sends them with the same Message-ID and the partner de-duplicates.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.add_column(sa.Column("receipt", sa.Text(), nullable=True))


def downgrade() -> None:
    op.execute("UPDATE outbox SET state = 'pending' WHERE state = 'awaiting_receipt'")
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_column("receipt")
