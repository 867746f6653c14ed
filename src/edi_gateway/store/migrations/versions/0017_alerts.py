"""alerts: events operators are told about, and how far each channel was told

Revision ID: 0017
Revises: 0011
Create Date: 2026-12-05 03:30:00

``alert_events``: one row per thing worth an alert (cause, partner, subject, text);
``alert_cursors``: per channel (an smtp connector or a webhook) and cause, the newest event it
was told and when: the throttle of docs/adr/0033.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "alert_events",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("cause", sa.String(40), nullable=False),
        sa.Column("partner", sa.String(100), nullable=True),
        sa.Column("subject", sa.String(300), nullable=True),
        sa.Column("text", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alert_events")),
    )
    op.create_index(op.f("ix_alert_events_cause_id"), "alert_events", ["cause", "id"])
    op.create_table(
        "alert_cursors",
        sa.Column("channel", sa.String(100), nullable=False),
        sa.Column("cause", sa.String(40), nullable=False),
        sa.Column("last_event_id", sa.Integer(), nullable=False),
        sa.Column("last_sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("channel", "cause", name=op.f("pk_alert_cursors")),
    )


def downgrade() -> None:
    op.drop_table("alert_cursors")
    op.drop_index(op.f("ix_alert_events_cause_id"), table_name="alert_events")
    op.drop_table("alert_events")
