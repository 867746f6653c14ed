"""ledger discrepancies, the attention flag, backorders and shipments

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-05 04:00:00

``orders.attention``: a discrepancy was found and no operator has cleared it yet;
``discrepancies``: one row per document line that took an order line beyond what was ordered,
confirmed, despatched or invoiced (docs/adr/0024); ``document_lines.backorder``: the quantity a
despatch line says is outstanding (to follow in a later shipment); ``shipments``: the carrier,
tracking ID and tracking URL of each despatch advice.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("attention", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch_op.create_index(batch_op.f("ix_orders_attention"), ["attention"])
    with op.batch_alter_table("document_lines", schema=None) as batch_op:
        batch_op.add_column(sa.Column("backorder", sa.String(length=48), nullable=True))
    op.create_table(
        "discrepancies",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("order_id", sa.Integer(), nullable=False),
        sa.Column("document_id", sa.Integer(), nullable=False),
        sa.Column("order_line_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=30), nullable=False),
        sa.Column("quantity", sa.String(length=48), nullable=False),
        sa.Column("bound", sa.String(length=48), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("found_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["order_id"], ["orders.id"], name=op.f("fk_discrepancies_order_id_orders")
        ),
        sa.ForeignKeyConstraint(
            ["document_id"], ["documents.id"], name=op.f("fk_discrepancies_document_id_documents")
        ),
        sa.ForeignKeyConstraint(
            ["order_line_id"],
            ["order_lines.id"],
            name=op.f("fk_discrepancies_order_line_id_order_lines"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_discrepancies")),
        sa.UniqueConstraint(
            "document_id",
            "order_line_id",
            "kind",
            name=op.f("uq_discrepancies_document_id_order_line_id_kind"),
        ),
    )
    op.create_index(op.f("ix_discrepancies_order_id"), "discrepancies", ["order_id"])
    op.create_table(
        "shipments",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("document_id", sa.Integer(), nullable=False),
        sa.Column("order_id", sa.Integer(), nullable=False),
        sa.Column("carrier", sa.String(length=300), nullable=True),
        sa.Column("tracking_id", sa.String(length=200), nullable=True),
        sa.Column("tracking_url", sa.String(length=1000), nullable=True),
        sa.ForeignKeyConstraint(
            ["document_id"], ["documents.id"], name=op.f("fk_shipments_document_id_documents")
        ),
        sa.ForeignKeyConstraint(
            ["order_id"], ["orders.id"], name=op.f("fk_shipments_order_id_orders")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_shipments")),
        sa.UniqueConstraint("document_id", name=op.f("uq_shipments_document_id")),
    )
    op.create_index(op.f("ix_shipments_order_id"), "shipments", ["order_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_shipments_order_id"), table_name="shipments")
    op.drop_table("shipments")
    op.drop_index(op.f("ix_discrepancies_order_id"), table_name="discrepancies")
    op.drop_table("discrepancies")
    with op.batch_alter_table("document_lines", schema=None) as batch_op:
        batch_op.drop_column("backorder")
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_orders_attention"))
        batch_op.drop_column("attention")
