"""messages.cut_off: how many times processing of a message began and never ended

Revision ID: 0026
Revises: 0025
Create Date: 2026-12-05 12:00:00

A message whose processing kills the process (a crash in a parser, memory exhausted, a kill)
must not take the gateway down again at every start-up, nor hold up the messages batched with
it. Processing counts each start in this column, committed before it begins, and sets it back
to 0 with the outcome; a message found with a count is processed alone, and after three it is
failed without being read again (PROCESSING_CUT_OFF; docs/adr/0046).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0026"
down_revision = "0025"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "messages", sa.Column("cut_off", sa.Integer(), nullable=False, server_default="0")
    )


def downgrade() -> None:
    with op.batch_alter_table("messages") as batch:
        batch.drop_column("cut_off")
