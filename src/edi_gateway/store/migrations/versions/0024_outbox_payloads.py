"""outbox payloads in their own table

Revision ID: 0024
Revises: 0023
Create Date: 2026-12-05 09:40:00

An outbox row is updated on every delivery attempt (sent, failed, retried, receipt awaited);
SQLite rewrites the whole record, blob included, on every UPDATE: a 35 MB bundle was read and
written out again each time its state changed. The bytes move to ``outbox_payloads``, written
once with the row by ``enqueue``, as message payloads did in 0005 (docs/adr/0010).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0024"
down_revision = "0023"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "outbox_payloads",
        sa.Column("outbox_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("payload", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(
            ["outbox_id"], ["outbox.id"], name=op.f("fk_outbox_payloads_outbox_id_outbox")
        ),
        sa.PrimaryKeyConstraint("outbox_id", name=op.f("pk_outbox_payloads")),
    )
    op.execute("INSERT INTO outbox_payloads (outbox_id, payload) SELECT id, payload FROM outbox")
    if op.get_bind().dialect.name == "postgresql":
        # DROP COLUMN only hides a column there: each row's old bytes would stay until the row
        # is next updated, and a sent row never is. Emptied first, autovacuum takes them back.
        op.alter_column("outbox", "payload", existing_type=sa.LargeBinary(), nullable=True)
        op.execute("UPDATE outbox SET payload = NULL")
    # In batch mode, as every earlier migration: SQLite before 3.35 has no DROP COLUMN (the
    # table is copied without it; env.py turns foreign keys off while migrating)
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_column("payload")


def downgrade() -> None:
    op.add_column("outbox", sa.Column("payload", sa.LargeBinary(), nullable=True))
    op.execute(
        "UPDATE outbox SET payload = (SELECT p.payload FROM outbox_payloads p "
        "WHERE p.outbox_id = outbox.id)"
    )
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.alter_column("payload", existing_type=sa.LargeBinary(), nullable=False)
    op.drop_table("outbox_payloads")
