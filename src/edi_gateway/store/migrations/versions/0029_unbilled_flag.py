"""order_lines.unbilled: the ledger's exact "despatched > invoiced", indexed

Revision ID: 0029
Revises: 0028
Create Date: 2026-12-06 07:00:00

``orders list --needs invoice`` compared ``CAST(qty_despatched AS NUMERIC) >
CAST(qty_invoiced AS NUMERIC)``, and 0025's partial index held the lines that condition
selects. On SQLite that cast is a float's 15 to 17 digits (PostgreSQL's NUMERIC is exact), so
40 despatched and 40.00000000000000000000000000001 invoiced were equal on one backend and not
on the other. Now the ledger's recompute sets the flag with the quantities, in Python's exact
Decimal, and the partial index holds the lines flagged (docs/adr/0024, amendment F6).

The lines already stored are flagged here, compared as Decimals: only a line whose two texts
differ can be unbilled (equal text is an equal number), so only those are read. ``orders`` and
``order_lines`` are not rebuilt on SQLite, either way (an added column with a default needs
none, SQLite drops one in place), so the search triggers of 0020 stay as they are.
"""

from __future__ import annotations

from decimal import Decimal

import sqlalchemy as sa
from alembic import op

revision = "0029"
down_revision = "0028"
branch_labels = None
depends_on = None

# as store/schema.py: fixed at this revision
UNBILLED = {"sqlite": "unbilled = 1", "postgresql": "unbilled"}
CAST = "CAST(qty_despatched AS NUMERIC) > CAST(qty_invoiced AS NUMERIC)"  # 0025's
CHUNK = 1000


def upgrade() -> None:
    op.add_column(
        "order_lines",
        sa.Column("unbilled", sa.Boolean(), nullable=False, server_default=sa.false()),
    )
    _flag_stored_lines()
    op.drop_index("ix_order_lines_unbilled", table_name="order_lines")
    _unbilled_index(UNBILLED["sqlite"], UNBILLED["postgresql"])


def _flag_stored_lines() -> None:
    """``unbilled`` of the lines stored before it existed, from their exact quantities."""
    conn = op.get_bind()
    rows = conn.execute(
        sa.text(
            "SELECT id, qty_despatched, qty_invoiced FROM order_lines "
            "WHERE qty_despatched <> qty_invoiced"
        )
    )
    wanted = [
        {"id": i} for i, despatched, invoiced in rows if Decimal(despatched) > Decimal(invoiced)
    ]
    for start in range(0, len(wanted), CHUNK):
        conn.execute(
            sa.text("UPDATE order_lines SET unbilled = :yes WHERE id = :id").bindparams(
                sa.bindparam("yes", True, type_=sa.Boolean())
            ),
            wanted[start : start + CHUNK],
        )


def _unbilled_index(sqlite_where: str, postgresql_where: str) -> None:
    op.create_index(
        "ix_order_lines_unbilled",
        "order_lines",
        ["order_id"],
        sqlite_where=sa.text(sqlite_where),
        postgresql_where=sa.text(postgresql_where),
    )


def downgrade() -> None:
    op.drop_index("ix_order_lines_unbilled", table_name="order_lines")
    _unbilled_index(CAST, CAST)
    # SQLite's own DROP COLUMN (3.35+), not batch mode: a rebuild would drop the search triggers
    op.drop_column("order_lines", "unbilled")
