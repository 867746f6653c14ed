"""growth indexes: every query of the hot paths and the lists runs on an index

Revision ID: 0025
Revises: 0024
Create Date: 2026-12-05 07:00:00

Issue 12 point 2 (docs/adr/0036-flat-with-growth.md): the filters of ``orders list`` /
``messages list`` / ``outbox list``, the console's today and KPI pages, the SLA clock and the
outbox's bundle bookkeeping read whole tables without these. Plain indexes; one partial index
on the order lines despatched beyond what was invoiced (``orders list --needs invoice``); and
``outbox.error_code``, the code its ``last_error`` starts with, filled from the rows already
stored (``outbox list --code`` matched a prefix of a long text: no index serves that). Only
``outbox`` gains a column (no rebuild of ``orders`` / ``order_lines`` on SQLite, so the search
triggers of 0020 stay as they are).

Written as 0021 before 0022, then moved last: 0022 (retention) had been released after 0020,
and a store already at 0022 would never have run a migration slotted in before it.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0025"
down_revision = "0024"
branch_labels = None
depends_on = None

INDEXES = (
    ("orders", "seller_key"),
    ("orders", "response_code"),
    ("orders", "created_at"),
    ("messages", "received_at"),
    ("messages", "error_code"),
    ("messages", "partner"),
    ("order_lines", "delivery_date"),
    ("outbox", "created_at"),
    ("outbox", "doc_number"),
)
# as store/schema.py: fixed at this revision
UNBILLED = "CAST(qty_despatched AS NUMERIC) > CAST(qty_invoiced AS NUMERIC)"


def upgrade() -> None:
    op.add_column("outbox", sa.Column("error_code", sa.String(40), nullable=True))
    _fill_error_codes()
    op.create_index("ix_outbox_error_code", "outbox", ["error_code"])
    for table, column in INDEXES:
        op.create_index(f"ix_{table}_{column}", table, [column])
    op.create_index(
        "ix_order_lines_unbilled",
        "order_lines",
        ["order_id"],
        sqlite_where=sa.text(UNBILLED),
        postgresql_where=sa.text(UNBILLED),
    )


def _fill_error_codes() -> None:
    """``outbox.error_code`` of the rows already stored, from their ``last_error``."""
    from edi_gateway.store.schema import error_code_of

    conn = op.get_bind()
    rows = conn.execute(sa.text("SELECT id, last_error FROM outbox WHERE last_error IS NOT NULL"))
    codes = [{"id": i, "code": error_code_of(e)} for i, e in rows]
    wanted = [c for c in codes if c["code"] is not None]
    if wanted:
        conn.execute(sa.text("UPDATE outbox SET error_code = :code WHERE id = :id"), wanted)


def downgrade() -> None:
    op.drop_index("ix_order_lines_unbilled", table_name="order_lines")
    for table, column in reversed(INDEXES):
        op.drop_index(f"ix_{table}_{column}", table_name=table)
    op.drop_index("ix_outbox_error_code", table_name="outbox")
    with op.batch_alter_table("outbox") as batch_op:
        batch_op.drop_column("error_code")
