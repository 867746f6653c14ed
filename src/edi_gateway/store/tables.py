"""ORM classes over the Core tables of ``schema.py``, for changing orders and correlation.

Imported only where objects are worth it (the outbound and operator commands, correlating
replies); the intake hot path writes through ``schema`` directly, and the CLI's read-only
commands read with Core (``queries.py``), so neither imports the ORM.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import Column, Table, select
from sqlalchemy.orm import (
    ColumnProperty,
    DeclarativeBase,
    Mapped,
    column_property,
    deferred,
    validates,
)

from edi_gateway.store import schema


class Base(DeclarativeBase):
    """Declarative base over the shared metadata."""

    metadata = schema.metadata


def _kept_apart(key: Column[int]) -> ColumnProperty[bytes]:
    """A row's ``payload``, read-only and deferred, from the table that keeps the bytes apart
    (``key``: its column naming the row; see schema.py's message_payloads)."""
    [parent] = key.foreign_keys
    payloads = key.table
    return column_property(
        select(payloads.c.payload).where(key == parent.column).scalar_subquery(), deferred=True
    )


def table(model: type[Base]) -> Table:
    """The Core table of a mapped class."""
    found = model.__table__
    assert isinstance(found, Table)
    return found


class Message(Base):
    """A payload as it arrived, and what became of it."""

    __table__ = schema.messages
    # Read-only: intake writes the bytes to message_payloads with Core.
    __mapper_args__ = {  # noqa: RUF012
        "properties": {"payload": _kept_apart(schema.message_payloads.c.message_id)}
    }

    id: Mapped[int]
    received_at: Mapped[datetime]
    source: Mapped[str]
    source_ref: Mapped[str]
    filename: Mapped[str]
    sha256: Mapped[str]
    size: Mapped[int]
    payload: Mapped[bytes]
    state: Mapped[str]
    error_code: Mapped[str | None]
    error_detail: Mapped[str | None]
    error_line: Mapped[int | None]
    doc_kind: Mapped[str | None]
    doc_id: Mapped[str | None]
    sender_key: Mapped[str | None]
    partner: Mapped[str | None]
    duplicate_of: Mapped[int | None]
    order_id: Mapped[int | None]
    attempts: Mapped[int]
    updated_at: Mapped[datetime]
    cut_off: Mapped[int]
    """How many times processing of this message began and never ended (the process died
    while at it): pipeline/process.py processes it alone, then gives up (docs/adr/0046)."""


class Order(Base):
    """An order, identified by its buyer party key and order ID."""

    __table__ = schema.orders

    id: Mapped[int]
    buyer_key: Mapped[str]
    order_number: Mapped[str]
    buyer_name: Mapped[str | None]
    seller_key: Mapped[str | None]
    seller_name: Mapped[str | None]
    buyer_partner: Mapped[str | None]
    seller_partner: Mapped[str | None]
    issue_date: Mapped[date | None]
    currency: Mapped[str | None]
    total_amount: Mapped[Decimal | None]
    status: Mapped[str]
    response_code: Mapped[str | None]
    cancelled: Mapped[bool]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    order_type: Mapped[str | None]
    buyer_reference: Mapped[str | None]
    notes: Mapped[str | None]
    """JSON list of the order's notes (0009)."""
    response_due_at: Mapped[datetime | None]
    despatch_due_at: Mapped[datetime | None]
    response_overdue_at: Mapped[datetime | None]
    despatch_overdue_at: Mapped[datetime | None]
    """SLA timers (0018, clocks/sla.py): when each is due, when it was found overdue."""
    attention: Mapped[bool]


class OrderDelivery(Base):
    """Where and when an order is to be delivered (its header ``cac:Delivery``)."""

    __table__ = schema.order_delivery

    order_id: Mapped[int]
    location_id: Mapped[str | None]
    location_scheme: Mapped[str | None]
    location_name: Mapped[str | None]
    street: Mapped[str | None]
    additional_street: Mapped[str | None]
    city: Mapped[str | None]
    postal_zone: Mapped[str | None]
    subentity: Mapped[str | None]
    address_line: Mapped[str | None]
    country: Mapped[str | None]
    start_date: Mapped[date | None]
    start_time: Mapped[str | None]
    end_date: Mapped[date | None]
    end_time: Mapped[str | None]
    party_name: Mapped[str | None]
    party_id: Mapped[str | None]
    priority: Mapped[str | None]


class OrderContact(Base):
    """A contact an order names, by role: buyer, seller or delivery."""

    __table__ = schema.order_contacts

    id: Mapped[int]
    order_id: Mapped[int]
    role: Mapped[str]
    name: Mapped[str | None]
    telephone: Mapped[str | None]
    email: Mapped[str | None]


class OrderAttachment(Base):
    """An order's attached document; ``content`` (deferred) holds the bytes when kept."""

    __table__ = schema.order_attachments
    __mapper_args__ = {"properties": {"content": deferred(schema.order_attachments.c.content)}}  # noqa: RUF012

    id: Mapped[int]
    order_id: Mapped[int]
    position: Mapped[int]
    ref: Mapped[str]
    document_type: Mapped[str | None]
    description: Mapped[str | None]
    filename: Mapped[str | None]
    mime_code: Mapped[str | None]
    uri: Mapped[str | None]
    size: Mapped[int | None]
    sha256: Mapped[str | None]
    problem: Mapped[str | None]
    content: Mapped[bytes | None]


class OrderKey(Base):
    """A party key (buyer or seller identifier) under which an order can be found."""

    __table__ = schema.order_keys

    id: Mapped[int]
    order_id: Mapped[int]
    role: Mapped[str]
    party_key: Mapped[str]


class OrderLine(Base):
    """One order line with the quantities every later document moved."""

    __table__ = schema.order_lines

    id: Mapped[int]
    order_id: Mapped[int]
    position: Mapped[int]
    line_id: Mapped[str]
    item_name: Mapped[str | None]
    seller_item_id: Mapped[str | None]
    buyer_item_id: Mapped[str | None]
    standard_item_id: Mapped[str | None]
    unit: Mapped[str | None]
    price: Mapped[Decimal | None]
    delivery_date: Mapped[date | None]
    status_code: Mapped[str | None]
    qty_ordered: Mapped[Decimal]
    qty_confirmed: Mapped[Decimal | None]
    qty_despatched: Mapped[Decimal]
    qty_received: Mapped[Decimal]
    qty_invoiced: Mapped[Decimal]
    qty_credited: Mapped[Decimal]
    delivery_place: Mapped[str | None]
    unbilled: Mapped[bool]


class DocumentRow(Base):
    """A business document, attached to an order or waiting as an orphan."""

    __table__ = schema.documents

    id: Mapped[int]
    message_id: Mapped[int | None]
    direction: Mapped[str]
    kind: Mapped[str]
    doc_number: Mapped[str]
    sender_key: Mapped[str | None]
    order_id: Mapped[int | None]
    order_ref: Mapped[str | None]
    preceding_ref: Mapped[str | None]
    issue_date: Mapped[date | None]
    code: Mapped[str | None]
    state: Mapped[str]
    amount: Mapped[Decimal | None]
    created_at: Mapped[datetime]


class DocumentLine(Base):
    """What one document says about one order line (the quantity ledger)."""

    __table__ = schema.document_lines

    id: Mapped[int]
    document_id: Mapped[int]
    order_line_id: Mapped[int | None]
    line_ref: Mapped[str]
    quantity: Mapped[Decimal | None]
    unit: Mapped[str | None]
    status_code: Mapped[str | None]
    price: Mapped[Decimal | None]
    amount: Mapped[Decimal | None]
    backorder: Mapped[Decimal | None]


class Discrepancy(Base):
    """A document line that took an order line beyond what the ledger allows (ADR 0024)."""

    __table__ = schema.discrepancies

    id: Mapped[int]
    order_id: Mapped[int]
    document_id: Mapped[int]
    order_line_id: Mapped[int]
    kind: Mapped[str]
    quantity: Mapped[Decimal]
    bound: Mapped[Decimal]
    detail: Mapped[str]
    found_at: Mapped[datetime]


class Shipment(Base):
    """The carrier, tracking ID and tracking URL a despatch advice gave."""

    __table__ = schema.shipments

    id: Mapped[int]
    document_id: Mapped[int]
    order_id: Mapped[int]
    carrier: Mapped[str | None]
    tracking_id: Mapped[str | None]
    tracking_url: Mapped[str | None]


class HistoryEvent(Base):
    """One thing that happened: when, what, by whom."""

    __table__ = schema.history

    id: Mapped[int]
    at: Mapped[datetime]
    order_id: Mapped[int | None]
    message_id: Mapped[int | None]
    event: Mapped[str]
    detail: Mapped[str | None]
    actor: Mapped[str]


class OutboxRow(Base):
    """An outbound document waiting for, or done with, delivery."""

    __table__ = schema.outbox
    # Read-only: outbound/outbox.py enqueue writes the bytes to outbox_payloads.
    __mapper_args__ = {  # noqa: RUF012
        "properties": {"payload": _kept_apart(schema.outbox_payloads.c.outbox_id)}
    }

    id: Mapped[int]
    created_at: Mapped[datetime]
    document_id: Mapped[int | None]
    order_id: Mapped[int | None]
    partner: Mapped[str]
    connector: Mapped[str]
    kind: Mapped[str]
    doc_number: Mapped[str]
    filename: Mapped[str]
    media_type: Mapped[str]
    payload: Mapped[bytes]
    state: Mapped[str]
    attempts: Mapped[int]
    next_attempt_at: Mapped[datetime]
    last_error: Mapped[str | None]
    error_code: Mapped[str | None]
    """The code ``last_error`` starts with, set with it (below): ``outbox list --code``."""
    delivered_to: Mapped[str | None]
    sent_at: Mapped[datetime | None]
    receipt: Mapped[str | None]
    """JSON: what an awaited receipt must say (outbound/receipts.py); None when none is."""

    @validates("last_error")
    def _with_code(self, _key: str, value: str | None) -> str | None:
        self.error_code = schema.error_code_of(value)
        return value

    @validates("payload")
    def _bytes_apart(self, _key: str, _value: bytes) -> bytes:
        # read-only: set here, the bytes would be dropped without a word and the row fail
        # delivery later (outbox_payloads holds them, written by outbound/outbox.py enqueue)
        raise AttributeError("an outbox row's bytes are queued with enqueue(), not set on it")


class Forward(Base):
    """An order forwarded to a supplier: held, waiting, queued in a bundle, delivered, failed."""

    __table__ = schema.forwards

    id: Mapped[int]
    order_id: Mapped[int]
    partner: Mapped[str]
    state: Mapped[str]
    waiting_since: Mapped[datetime | None]
    seq: Mapped[int | None]
    bundle: Mapped[str | None]
    error: Mapped[str | None]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class SsccCounter(Base):
    """The next SSCC serial reference of one extension digit + GS1 company prefix."""

    __table__ = schema.sscc_counters

    prefix: Mapped[str]
    next_serial: Mapped[int]


class PurgeRun(Base):
    """One purge: when, by whom, up to when, how much, into which archive (0022, ADR 0037)."""

    __table__ = schema.purge_runs

    id: Mapped[int]
    started_at: Mapped[datetime]
    finished_at: Mapped[datetime | None]
    actor: Mapped[str]
    purged_before: Mapped[datetime]
    state: Mapped[str]
    counts: Mapped[str]
    """JSON: rows removed per table."""
    oldest: Mapped[datetime | None]
    newest: Mapped[datetime | None]
    archive: Mapped[str | None]
    archive_sha256: Mapped[str | None]
    restored_at: Mapped[datetime | None]
    error: Mapped[str | None]
