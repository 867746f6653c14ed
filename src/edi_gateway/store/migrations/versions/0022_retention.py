"""purge_runs, purged_messages, purged_documents: retention

Revision ID: 0022
Revises: 0020
Create Date: 2026-12-05 06:30:00

Every purge (``edi-gateway purge``, the daemon's ``retention:``) is a row of ``purge_runs``:
when, who, up to when, the rows removed per table, the archive file and its sha256. Purged
messages and documents leave their dedup keys (bytes' sha256; sender, kind and number) so the
same file or the same number received again is a duplicate or an ID conflict, never new
(docs/adr/0037).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0022"
down_revision = "0020"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "purge_runs",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("actor", sa.String(100), nullable=False),
        sa.Column("purged_before", sa.DateTime(timezone=True), nullable=False),
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("counts", sa.Text(), nullable=False),
        sa.Column("oldest", sa.DateTime(timezone=True), nullable=True),
        sa.Column("newest", sa.DateTime(timezone=True), nullable=True),
        sa.Column("archive", sa.Text(), nullable=True),
        sa.Column("archive_sha256", sa.String(64), nullable=True),
        sa.Column("restored_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_purge_runs")),
    )
    op.create_table(
        "purged_messages",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("message_id", sa.Integer(), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["run_id"], ["purge_runs.id"], name=op.f("fk_purged_messages_run_id_purge_runs")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_purged_messages")),
    )
    op.create_index(op.f("ix_purged_messages_sha256"), "purged_messages", ["sha256"])
    op.create_index(op.f("ix_purged_messages_run_id"), "purged_messages", ["run_id"])
    op.create_table(
        "purged_documents",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("message_id", sa.Integer(), nullable=True),
        sa.Column("direction", sa.String(3), nullable=False),
        sa.Column("kind", sa.String(40), nullable=False),
        sa.Column("sender_key", sa.String(200), nullable=True),
        sa.Column("doc_number", sa.String(200), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["run_id"], ["purge_runs.id"], name=op.f("fk_purged_documents_run_id_purge_runs")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_purged_documents")),
    )
    op.create_index(op.f("ix_purged_documents_doc_number"), "purged_documents", ["doc_number"])
    op.create_index(op.f("ix_purged_documents_run_id"), "purged_documents", ["run_id"])


def downgrade() -> None:
    op.drop_table("purged_documents")
    op.drop_table("purged_messages")
    op.drop_table("purge_runs")
