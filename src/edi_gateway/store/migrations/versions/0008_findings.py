"""findings: what the XSD and the official rule sets found in a document

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-05 01:00:00

One row per finding of the latest check of a received message (``message_id``) or of an outgoing
document in the outbox (``outbox_id``): rule set, rule ID, flag, location, line and text
(docs/adr/0023).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "findings",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("message_id", sa.Integer(), nullable=True),
        sa.Column("outbox_id", sa.Integer(), nullable=True),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("rule_set", sa.String(64), nullable=False),
        sa.Column("rule_id", sa.String(64), nullable=False),
        sa.Column("flag", sa.String(16), nullable=False),
        sa.Column("location", sa.Text(), nullable=True),
        sa.Column("line", sa.Integer(), nullable=True),
        sa.Column("text", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["message_id"], ["messages.id"], name=op.f("fk_findings_message_id_messages")
        ),
        sa.ForeignKeyConstraint(
            ["outbox_id"], ["outbox.id"], name=op.f("fk_findings_outbox_id_outbox")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_findings")),
    )
    op.create_index(op.f("ix_findings_message_id"), "findings", ["message_id"])
    op.create_index(op.f("ix_findings_outbox_id"), "findings", ["outbox_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_findings_outbox_id"), table_name="findings")
    op.drop_index(op.f("ix_findings_message_id"), table_name="findings")
    op.drop_table("findings")
