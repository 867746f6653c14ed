"""message payloads in their own table

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-22 18:10:00

A message's row is updated several times (processed, redriven, ...); SQLite rewrites the whole
record, blob included, on every UPDATE. The raw bytes move to ``message_payloads`` (written
once, with the message, by intake) so message rows stay small (docs/adr/0010).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "message_payloads",
        sa.Column("message_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("payload", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(
            ["message_id"],
            ["messages.id"],
            name=op.f("fk_message_payloads_message_id_messages"),
        ),
        sa.PrimaryKeyConstraint("message_id", name=op.f("pk_message_payloads")),
    )
    op.execute(
        "INSERT INTO message_payloads (message_id, payload) SELECT id, payload FROM messages"
    )
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.drop_column("payload")


def downgrade() -> None:
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.add_column(sa.Column("payload", sa.LargeBinary(), nullable=True))
    op.execute(
        "UPDATE messages SET payload = (SELECT p.payload FROM message_payloads p "
        "WHERE p.message_id = messages.id)"
    )
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.alter_column("payload", existing_type=sa.LargeBinary(), nullable=False)
    op.drop_table("message_payloads")
