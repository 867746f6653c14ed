"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-22 15:48:57.954633
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:

    op.create_table(
        "orders",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("buyer_key", sa.String(length=200), nullable=False),
        sa.Column("order_number", sa.String(length=200), nullable=False),
        sa.Column("buyer_name", sa.String(length=300), nullable=True),
        sa.Column("seller_key", sa.String(length=200), nullable=True),
        sa.Column("seller_name", sa.String(length=300), nullable=True),
        sa.Column("buyer_partner", sa.String(length=100), nullable=True),
        sa.Column("seller_partner", sa.String(length=100), nullable=True),
        sa.Column("issue_date", sa.Date(), nullable=True),
        sa.Column("currency", sa.String(length=3), nullable=True),
        sa.Column("total_amount", sa.String(length=48), nullable=True),
        sa.Column("status", sa.String(length=30), nullable=False),
        sa.Column("response_code", sa.String(length=4), nullable=True),
        sa.Column("cancelled", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_orders")),
        sa.UniqueConstraint(
            "buyer_key", "order_number", name=op.f("uq_orders_buyer_key_order_number")
        ),
    )
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_orders_buyer_partner"), ["buyer_partner"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_orders_order_number"), ["order_number"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_orders_seller_partner"), ["seller_partner"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_orders_status"), ["status"], unique=False)

    op.create_table(
        "messages",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("source", sa.String(length=200), nullable=False),
        sa.Column("source_ref", sa.String(length=500), nullable=False),
        sa.Column("filename", sa.String(length=500), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("payload", sa.LargeBinary(), nullable=False),
        sa.Column("state", sa.String(length=20), nullable=False),
        sa.Column("error_code", sa.String(length=40), nullable=True),
        sa.Column("error_detail", sa.Text(), nullable=True),
        sa.Column("error_line", sa.Integer(), nullable=True),
        sa.Column("doc_kind", sa.String(length=40), nullable=True),
        sa.Column("doc_id", sa.String(length=200), nullable=True),
        sa.Column("sender_key", sa.String(length=200), nullable=True),
        sa.Column("partner", sa.String(length=100), nullable=True),
        sa.Column("duplicate_of", sa.Integer(), nullable=True),
        sa.Column("order_id", sa.Integer(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["duplicate_of"], ["messages.id"], name=op.f("fk_messages_duplicate_of_messages")
        ),
        sa.ForeignKeyConstraint(
            ["order_id"], ["orders.id"], name=op.f("fk_messages_order_id_orders")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_messages")),
        sa.UniqueConstraint("source", "source_ref", name=op.f("uq_messages_source_source_ref")),
    )
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_messages_order_id"), ["order_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_messages_sha256"), ["sha256"], unique=False)
        batch_op.create_index(batch_op.f("ix_messages_state"), ["state"], unique=False)

    op.create_table(
        "order_keys",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("order_id", sa.Integer(), nullable=False),
        sa.Column("role", sa.String(length=10), nullable=False),
        sa.Column("party_key", sa.String(length=200), nullable=False),
        sa.ForeignKeyConstraint(
            ["order_id"], ["orders.id"], name=op.f("fk_order_keys_order_id_orders")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_order_keys")),
        sa.UniqueConstraint(
            "order_id", "role", "party_key", name=op.f("uq_order_keys_order_id_role_party_key")
        ),
    )
    with op.batch_alter_table("order_keys", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_order_keys_party_key"), ["party_key"], unique=False)

    op.create_table(
        "order_lines",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("order_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("line_id", sa.String(length=100), nullable=False),
        sa.Column("item_name", sa.String(length=500), nullable=True),
        sa.Column("seller_item_id", sa.String(length=200), nullable=True),
        sa.Column("buyer_item_id", sa.String(length=200), nullable=True),
        sa.Column("standard_item_id", sa.String(length=200), nullable=True),
        sa.Column("unit", sa.String(length=10), nullable=True),
        sa.Column("price", sa.String(length=48), nullable=True),
        sa.Column("delivery_date", sa.Date(), nullable=True),
        sa.Column("status_code", sa.String(length=4), nullable=True),
        sa.Column("qty_ordered", sa.String(length=48), nullable=False),
        sa.Column("qty_confirmed", sa.String(length=48), nullable=True),
        sa.Column("qty_despatched", sa.String(length=48), nullable=False),
        sa.Column("qty_received", sa.String(length=48), nullable=False),
        sa.Column("qty_invoiced", sa.String(length=48), nullable=False),
        sa.Column("qty_credited", sa.String(length=48), nullable=False),
        sa.ForeignKeyConstraint(
            ["order_id"], ["orders.id"], name=op.f("fk_order_lines_order_id_orders")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_order_lines")),
        sa.UniqueConstraint("order_id", "line_id", name=op.f("uq_order_lines_order_id_line_id")),
    )

    op.create_table(
        "documents",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("message_id", sa.Integer(), nullable=True),
        sa.Column("direction", sa.String(length=3), nullable=False),
        sa.Column("kind", sa.String(length=40), nullable=False),
        sa.Column("doc_number", sa.String(length=200), nullable=False),
        sa.Column("sender_key", sa.String(length=200), nullable=True),
        sa.Column("order_id", sa.Integer(), nullable=True),
        sa.Column("order_ref", sa.String(length=200), nullable=True),
        sa.Column("issue_date", sa.Date(), nullable=True),
        sa.Column("code", sa.String(length=10), nullable=True),
        sa.Column("state", sa.String(length=20), nullable=False),
        sa.Column("amount", sa.String(length=48), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["message_id"], ["messages.id"], name=op.f("fk_documents_message_id_messages")
        ),
        sa.ForeignKeyConstraint(
            ["order_id"], ["orders.id"], name=op.f("fk_documents_order_id_orders")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_documents")),
        sa.UniqueConstraint("message_id", name=op.f("uq_documents_message_id")),
    )
    with op.batch_alter_table("documents", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_documents_order_id"), ["order_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_documents_order_ref"), ["order_ref"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_documents_sender_key_kind_doc_number"),
            ["sender_key", "kind", "doc_number"],
            unique=False,
        )
        batch_op.create_index(batch_op.f("ix_documents_state"), ["state"], unique=False)

    op.create_table(
        "history",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("order_id", sa.Integer(), nullable=True),
        sa.Column("message_id", sa.Integer(), nullable=True),
        sa.Column("event", sa.String(length=60), nullable=False),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.Column("actor", sa.String(length=100), nullable=False),
        sa.ForeignKeyConstraint(
            ["message_id"], ["messages.id"], name=op.f("fk_history_message_id_messages")
        ),
        sa.ForeignKeyConstraint(
            ["order_id"], ["orders.id"], name=op.f("fk_history_order_id_orders")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_history")),
    )
    with op.batch_alter_table("history", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_history_message_id"), ["message_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_history_order_id"), ["order_id"], unique=False)

    op.create_table(
        "document_lines",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("document_id", sa.Integer(), nullable=False),
        sa.Column("order_line_id", sa.Integer(), nullable=True),
        sa.Column("line_ref", sa.String(length=100), nullable=False),
        sa.Column("quantity", sa.String(length=48), nullable=True),
        sa.Column("unit", sa.String(length=10), nullable=True),
        sa.Column("status_code", sa.String(length=4), nullable=True),
        sa.Column("price", sa.String(length=48), nullable=True),
        sa.Column("amount", sa.String(length=48), nullable=True),
        sa.ForeignKeyConstraint(
            ["document_id"], ["documents.id"], name=op.f("fk_document_lines_document_id_documents")
        ),
        sa.ForeignKeyConstraint(
            ["order_line_id"],
            ["order_lines.id"],
            name=op.f("fk_document_lines_order_line_id_order_lines"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_document_lines")),
    )
    with op.batch_alter_table("document_lines", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_document_lines_document_id"), ["document_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_document_lines_order_line_id"), ["order_line_id"], unique=False
        )


def downgrade() -> None:

    with op.batch_alter_table("document_lines", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_document_lines_order_line_id"))
        batch_op.drop_index(batch_op.f("ix_document_lines_document_id"))

    op.drop_table("document_lines")
    with op.batch_alter_table("history", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_history_order_id"))
        batch_op.drop_index(batch_op.f("ix_history_message_id"))

    op.drop_table("history")
    with op.batch_alter_table("documents", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_documents_state"))
        batch_op.drop_index(batch_op.f("ix_documents_sender_key_kind_doc_number"))
        batch_op.drop_index(batch_op.f("ix_documents_order_ref"))
        batch_op.drop_index(batch_op.f("ix_documents_order_id"))

    op.drop_table("documents")

    op.drop_table("order_lines")
    with op.batch_alter_table("order_keys", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_order_keys_party_key"))

    op.drop_table("order_keys")
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_messages_state"))
        batch_op.drop_index(batch_op.f("ix_messages_sha256"))
        batch_op.drop_index(batch_op.f("ix_messages_order_id"))

    op.drop_table("messages")
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_orders_status"))
        batch_op.drop_index(batch_op.f("ix_orders_seller_partner"))
        batch_op.drop_index(batch_op.f("ix_orders_order_number"))
        batch_op.drop_index(batch_op.f("ix_orders_buyer_partner"))

    op.drop_table("orders")
