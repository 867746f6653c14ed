"""order data: type, buyer reference, notes, delivery, contacts, attachments, line places

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-05 03:30:00

What an order says besides parties and lines is kept (docs/adr/0029): ``orders`` gains the
order type code as sent, the buyer reference and the notes (a JSON list); ``order_delivery``
holds the header delivery (location, address, requested period, party, priority);
``order_contacts`` the buyer's, seller's and delivery party's contacts; ``order_attachments``
the attached documents, with their decoded bytes when kept; ``order_lines.delivery_place`` a
line's own delivery location. Orders stored before keep none of
it (their bytes still have it: nothing is back-filled).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.add_column(sa.Column("order_type", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("buyer_reference", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("notes", sa.Text(), nullable=True))
        batch_op.create_index(batch_op.f("ix_orders_order_type"), ["order_type"])
    with op.batch_alter_table("order_lines", schema=None) as batch_op:
        batch_op.add_column(sa.Column("delivery_place", sa.Text(), nullable=True))
    op.create_table(
        "order_delivery",
        sa.Column("order_id", sa.Integer(), autoincrement=False, nullable=False),
        *(
            sa.Column(name, sa.Text(), nullable=True)
            for name in (
                "location_id",
                "location_scheme",
                "location_name",
                "street",
                "additional_street",
                "city",
                "postal_zone",
                "subentity",
                "address_line",
                "country",
            )
        ),
        sa.Column("start_date", sa.Date(), nullable=True),
        sa.Column("start_time", sa.Text(), nullable=True),
        sa.Column("end_date", sa.Date(), nullable=True),
        sa.Column("end_time", sa.Text(), nullable=True),
        sa.Column("party_name", sa.Text(), nullable=True),
        sa.Column("party_id", sa.Text(), nullable=True),
        sa.Column("priority", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["order_id"], ["orders.id"], name=op.f("fk_order_delivery_order_id_orders")
        ),
        sa.PrimaryKeyConstraint("order_id", name=op.f("pk_order_delivery")),
    )
    op.create_table(
        "order_contacts",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("order_id", sa.Integer(), nullable=False),
        sa.Column("role", sa.String(20), nullable=False),
        sa.Column("name", sa.Text(), nullable=True),
        sa.Column("telephone", sa.Text(), nullable=True),
        sa.Column("email", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["order_id"], ["orders.id"], name=op.f("fk_order_contacts_order_id_orders")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_order_contacts")),
    )
    op.create_index(op.f("ix_order_contacts_order_id"), "order_contacts", ["order_id"])
    op.create_table(
        "order_attachments",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("order_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("ref", sa.Text(), nullable=False),
        sa.Column("document_type", sa.Text(), nullable=True),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("filename", sa.Text(), nullable=True),
        sa.Column("mime_code", sa.Text(), nullable=True),
        sa.Column("uri", sa.Text(), nullable=True),
        sa.Column("size", sa.Integer(), nullable=True),
        sa.Column("sha256", sa.String(64), nullable=True),
        sa.Column("problem", sa.Text(), nullable=True),
        sa.Column("content", sa.LargeBinary(), nullable=True),
        sa.ForeignKeyConstraint(
            ["order_id"], ["orders.id"], name=op.f("fk_order_attachments_order_id_orders")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_order_attachments")),
    )
    op.create_index(op.f("ix_order_attachments_order_id"), "order_attachments", ["order_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_order_attachments_order_id"), table_name="order_attachments")
    op.drop_table("order_attachments")
    op.drop_index(op.f("ix_order_contacts_order_id"), table_name="order_contacts")
    op.drop_table("order_contacts")
    op.drop_table("order_delivery")
    with op.batch_alter_table("order_lines", schema=None) as batch_op:
        batch_op.drop_column("delivery_place")
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_orders_order_type"))
        batch_op.drop_column("notes")
        batch_op.drop_column("buyer_reference")
        batch_op.drop_column("order_type")
