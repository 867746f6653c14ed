"""sscc_counters: the next SSCC serial reference per extension digit + GS1 company prefix

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-05 03:40:00

One row per extension digit + company prefix; ``despatch --boxes`` adds the number of boxes
to ``next_serial`` in its own transaction, so every gateway on the store hands out each
serial once (docs/adr/0028).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sscc_counters",
        sa.Column("prefix", sa.String(13), nullable=False),
        sa.Column("next_serial", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("prefix", name=op.f("pk_sscc_counters")),
    )


def downgrade() -> None:
    op.drop_table("sscc_counters")
