"""The store's tables. Alembic migrations in ``migrations/`` create exactly these.

messages        every payload received, raw bytes first, then its processing outcome
documents       one business document per processed message (and, later, per generated one)
document_lines  the quantities each document states per order line (the ledger)
orders          one row per buyer party + order ID, with the derived status
order_keys      every party key an order can be found by (buyer and seller identifiers)
order_lines     per line: ordered, confirmed, despatched, received, invoiced, credited
history         every event: when, what, by whom
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import (
    Boolean,
    Date,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, deferred, mapped_column

from edi_gateway.store.types import ExactDecimal, UTCDateTime

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    """Declarative base with stable constraint names (needed for migrations)."""

    metadata = MetaData(naming_convention=NAMING)


def table(model: type[Base]) -> Table:
    """The Core table of a mapped class, for bulk statements on the hot path."""
    found = model.__table__
    assert isinstance(found, Table)
    return found


class Message(Base):
    """A payload as it arrived, and what became of it."""

    __tablename__ = "messages"
    __table_args__ = (UniqueConstraint("source", "source_ref"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime())
    source: Mapped[str] = mapped_column(String(200))
    source_ref: Mapped[str] = mapped_column(String(500))
    filename: Mapped[str] = mapped_column(String(500))
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    size: Mapped[int] = mapped_column(Integer)
    payload: Mapped[bytes] = deferred(mapped_column(LargeBinary, nullable=False))
    state: Mapped[str] = mapped_column(String(20), index=True)
    error_code: Mapped[str | None] = mapped_column(String(40))
    error_detail: Mapped[str | None] = mapped_column(Text)
    error_line: Mapped[int | None] = mapped_column(Integer)
    doc_kind: Mapped[str | None] = mapped_column(String(40))
    doc_id: Mapped[str | None] = mapped_column(String(200))
    sender_key: Mapped[str | None] = mapped_column(String(200))
    partner: Mapped[str | None] = mapped_column(String(100))
    duplicate_of: Mapped[int | None] = mapped_column(ForeignKey("messages.id"))
    order_id: Mapped[int | None] = mapped_column(ForeignKey("orders.id"), index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Order(Base):
    """An order, identified by its buyer party key and order ID."""

    __tablename__ = "orders"
    __table_args__ = (UniqueConstraint("buyer_key", "order_number"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    buyer_key: Mapped[str] = mapped_column(String(200))
    order_number: Mapped[str] = mapped_column(String(200), index=True)
    buyer_name: Mapped[str | None] = mapped_column(String(300))
    seller_key: Mapped[str | None] = mapped_column(String(200))
    seller_name: Mapped[str | None] = mapped_column(String(300))
    buyer_partner: Mapped[str | None] = mapped_column(String(100), index=True)
    seller_partner: Mapped[str | None] = mapped_column(String(100), index=True)
    issue_date: Mapped[date | None] = mapped_column(Date)
    currency: Mapped[str | None] = mapped_column(String(3))
    total_amount: Mapped[Decimal | None] = mapped_column(ExactDecimal())
    status: Mapped[str] = mapped_column(String(30), index=True)
    response_code: Mapped[str | None] = mapped_column(String(4))
    cancelled: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class OrderKey(Base):
    """A party key (buyer or seller identifier) under which an order can be found."""

    __tablename__ = "order_keys"
    __table_args__ = (UniqueConstraint("order_id", "role", "party_key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id"))  # uq above serves lookups
    role: Mapped[str] = mapped_column(String(10))
    party_key: Mapped[str] = mapped_column(String(200), index=True)


class OrderLine(Base):
    """One order line with the quantities every later document moved."""

    __tablename__ = "order_lines"
    __table_args__ = (UniqueConstraint("order_id", "line_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # no index of its own: uq(order_id, line_id) serves lookups by order
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id"))
    position: Mapped[int] = mapped_column(Integer)
    line_id: Mapped[str] = mapped_column(String(100))
    item_name: Mapped[str | None] = mapped_column(String(500))
    seller_item_id: Mapped[str | None] = mapped_column(String(200))
    buyer_item_id: Mapped[str | None] = mapped_column(String(200))
    standard_item_id: Mapped[str | None] = mapped_column(String(200))
    unit: Mapped[str | None] = mapped_column(String(10))
    price: Mapped[Decimal | None] = mapped_column(ExactDecimal())
    delivery_date: Mapped[date | None] = mapped_column(Date)
    status_code: Mapped[str | None] = mapped_column(String(4))
    qty_ordered: Mapped[Decimal] = mapped_column(ExactDecimal())
    qty_confirmed: Mapped[Decimal | None] = mapped_column(ExactDecimal())
    qty_despatched: Mapped[Decimal] = mapped_column(ExactDecimal())
    qty_received: Mapped[Decimal] = mapped_column(ExactDecimal())
    qty_invoiced: Mapped[Decimal] = mapped_column(ExactDecimal())
    qty_credited: Mapped[Decimal] = mapped_column(ExactDecimal())


class DocumentRow(Base):
    """A business document, attached to an order or waiting as an orphan."""

    __tablename__ = "documents"
    __table_args__ = (Index(None, "sender_key", "kind", "doc_number"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    message_id: Mapped[int | None] = mapped_column(ForeignKey("messages.id"), unique=True)
    direction: Mapped[str] = mapped_column(String(3))
    kind: Mapped[str] = mapped_column(String(40))
    doc_number: Mapped[str] = mapped_column(String(200))
    sender_key: Mapped[str | None] = mapped_column(String(200))
    order_id: Mapped[int | None] = mapped_column(ForeignKey("orders.id"), index=True)
    order_ref: Mapped[str | None] = mapped_column(String(200), index=True)
    issue_date: Mapped[date | None] = mapped_column(Date)
    code: Mapped[str | None] = mapped_column(String(10))
    state: Mapped[str] = mapped_column(String(20), index=True)
    amount: Mapped[Decimal | None] = mapped_column(ExactDecimal())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class DocumentLine(Base):
    """What one document says about one order line (the quantity ledger)."""

    __tablename__ = "document_lines"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    document_id: Mapped[int] = mapped_column(ForeignKey("documents.id"), index=True)
    order_line_id: Mapped[int | None] = mapped_column(ForeignKey("order_lines.id"), index=True)
    line_ref: Mapped[str] = mapped_column(String(100))
    quantity: Mapped[Decimal | None] = mapped_column(ExactDecimal())
    unit: Mapped[str | None] = mapped_column(String(10))
    status_code: Mapped[str | None] = mapped_column(String(4))
    price: Mapped[Decimal | None] = mapped_column(ExactDecimal())
    amount: Mapped[Decimal | None] = mapped_column(ExactDecimal())


class HistoryEvent(Base):
    """One thing that happened: when, what, by whom."""

    __tablename__ = "history"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    order_id: Mapped[int | None] = mapped_column(ForeignKey("orders.id"), index=True)
    message_id: Mapped[int | None] = mapped_column(ForeignKey("messages.id"), index=True)
    event: Mapped[str] = mapped_column(String(60))
    detail: Mapped[str | None] = mapped_column(Text)
    actor: Mapped[str] = mapped_column(String(100))
