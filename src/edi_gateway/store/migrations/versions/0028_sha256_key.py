"""The duplicate check's index on the sha256's first 8 hex digits, not on the whole digest

Revision ID: 0028
Revises: 0027
Create Date: 2026-12-05 18:00:00

Every message's entry in the sha256 index lands on a random page; with the whole 64-digit text
as its key the index had ~1,000 leaf pages at 50,000 messages, and each batch of 200 messages
taken in wrote ~250 of them: the largest part of what ingest wrote more into a full store than
into an empty one. An entry keyed by 8 digits is a quarter the size (docs/adr/0036). The check
compares the whole sha256 on the rows the key finds (pipeline/process.py), so it stays exact.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0028"
down_revision = "0027"
branch_labels = None
depends_on = None

KEY = sa.text("substr(sha256, 1, 8)")  # schema.sha256_key


def upgrade() -> None:
    op.create_index("ix_messages_sha256_key", "messages", [KEY])
    op.drop_index("ix_messages_sha256", table_name="messages")


def downgrade() -> None:
    op.create_index("ix_messages_sha256", "messages", ["sha256"])
    op.drop_index("ix_messages_sha256_key", table_name="messages")
