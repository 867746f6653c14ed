"""leases: running gateways and connector owners

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-04 22:00:00

Several ``edi-gateway run`` may share one PostgreSQL store (docs/adr/0018). Each running gateway
renews a lease ``instance:<id>`` and holds ``connector:<name>`` for each polled connector it
owns; ``token`` grows each time a lease changes hands (the fencing token).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "leases",
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("holder", sa.String(100), nullable=False),
        sa.Column("token", sa.Integer(), nullable=False),
        sa.Column("acquired_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("until", sa.DateTime(timezone=True), nullable=False),
        sa.Column("info", sa.String(300), nullable=True),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_leases")),
    )


def downgrade() -> None:
    op.drop_table("leases")
