"""The read side of order data (docs/adr/0029): ``orders show`` / ``--json`` keys, the
``orders list --type`` condition, and the attachments ``documents`` lists and hands out.

Plain dicts, like :mod:`edi_gateway.store.queries`: the keys are JSON schema (add, never
rename).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from sqlalchemy import ColumnElement, or_, select

from edi_gateway.domain.order_data import (
    DEFAULT_ORDER_TYPE,
    EXPRESS,
    EXPRESS_PRIORITY,
    NO_CODE,
    ORDER_TYPES,
    TYPE_FILTERS,
    Address,
    Delivery,
    order_type_name,
)
from edi_gateway.errors import ErrorCode, GatewayError, LookupFailed
from edi_gateway.store import schema

if TYPE_CHECKING:  # reads run on Core rows; the ORM is for attachment_content's callers
    from sqlalchemy.orm import Session

    from edi_gateway.store.queries import Reader, Record
    from edi_gateway.store.tables import Order, OrderAttachment

Json = dict[str, Any]
_MAX_CODE = 3  # UNCL1001 codes are an..3


def type_condition(wanted: str) -> ColumnElement[bool]:
    """The orders of type ``wanted``: a name (``blanket``, ``call-off``, ``express``...) or a
    code as sent (``221``). ``purchase`` / ``220`` also select orders that sent no code, which
    Peppol T01 reads as 220. A type Peppol has no code for is a ``USAGE`` error."""
    key = wanted.strip().lower().replace("_", "-").replace(" ", "-")
    o, delivery = schema.orders.c, schema.order_delivery.c
    if key == EXPRESS:
        express = select(delivery.order_id).where(delivery.priority == EXPRESS_PRIORITY)
        return o.id.in_(express)
    if key in NO_CODE:
        raise GatewayError(ErrorCode.USAGE, f"--type {wanted}: {NO_CODE[key]}")
    code = TYPE_FILTERS.get(key, key)
    if code not in ORDER_TYPES and not (code.isalnum() and len(code) <= _MAX_CODE):
        names = ", ".join([*TYPE_FILTERS, EXPRESS])
        raise GatewayError(
            ErrorCode.USAGE, f"--type {wanted}: expected a type code (221) or one of {names}"
        )
    if code == DEFAULT_ORDER_TYPE:
        return or_(o.order_type == code, o.order_type.is_(None))
    return o.order_type == code


def order_data_detail(reader: Reader, order: Order | Record) -> Json:
    """The order data keys of ``orders show --json``."""
    d, c = schema.order_delivery, schema.order_contacts
    delivery = reader.execute(select(d).where(d.c.order_id == order.id)).first()
    contacts = reader.execute(select(c).where(c.c.order_id == order.id).order_by(c.c.id))
    return {
        "order_type": order.order_type,
        "order_type_name": order_type_name(order.order_type),
        "buyer_reference": order.buyer_reference,
        "notes": json.loads(order.notes) if order.notes else [],
        "delivery": _delivery(delivery) if delivery else None,
        "contacts": [
            {"role": c.role, "name": c.name, "telephone": c.telephone, "email": c.email}
            for c in contacts
        ],
        "attachments": attachments_of(reader, order.id),
    }


def _delivery(row: Record) -> Json:
    domain = Delivery(
        location_id=row.location_id,
        location_scheme=row.location_scheme,
        location_name=row.location_name,
        address=Address(
            row.street,
            row.additional_street,
            row.city,
            row.postal_zone,
            row.subentity,
            row.address_line,
            row.country,
        ),
        start_date=row.start_date,
        start_time=row.start_time,
        end_date=row.end_date,
        end_time=row.end_time,
        party_name=row.party_name,
        party_id=row.party_id,
        priority=row.priority,
    )
    address = domain.address
    assert address is not None
    return {
        "place": domain.place() or None,
        "location_id": row.location_id,
        "location_scheme": row.location_scheme,
        "location_name": row.location_name,
        "address": address.text() or None,
        "street": row.street,
        "additional_street": row.additional_street,
        "city": row.city,
        "postal_zone": row.postal_zone,
        "region": row.subentity,
        "address_line": row.address_line,
        "country": row.country,
        "period": domain.period() or None,
        "start_date": row.start_date.isoformat() if row.start_date else None,
        "start_time": row.start_time,
        "end_date": row.end_date.isoformat() if row.end_date else None,
        "end_time": row.end_time,
        "party_name": row.party_name,
        "party_id": row.party_id,
        "priority": row.priority,
        "express": domain.express,
    }


_ATTACHMENT = [c for c in schema.order_attachments.c if c.name != "content"]
"""An attachment without its bytes (the ORM class defers them too)."""


def attachments_of(reader: Reader, order_id: int) -> list[Json]:
    """The order's attachments, without their bytes."""
    a = schema.order_attachments.c
    rows = reader.execute(select(*_ATTACHMENT).where(a.order_id == order_id).order_by(a.position))
    return [attachment_summary(row) for row in rows]


def attachment_summary(row: OrderAttachment | Record) -> Json:
    """One attachment as a listing row (``kept``: its bytes can be downloaded)."""
    return {
        "id": row.id,
        "order_id": row.order_id,
        "ref": row.ref,
        "document_type": row.document_type,
        "description": row.description,
        "filename": row.filename,
        "mime_code": row.mime_code,
        "uri": row.uri,
        "size": row.size,
        "sha256": row.sha256,
        "kept": row.sha256 is not None,
        "problem": row.problem,
    }


def attachment_content(session: Session, attachment_id: int) -> tuple[Json, bytes]:
    """Attachment ``attachment_id`` (its ID from ``orders show``) and its bytes;
    ``NOT_FOUND`` when there is none or its bytes were not kept (the reason is said)."""
    from edi_gateway.store.tables import OrderAttachment

    row = session.get(OrderAttachment, attachment_id)
    if row is None:
        raise LookupFailed(ErrorCode.NOT_FOUND, f"there is no attachment {attachment_id}")
    if row.content is None:
        why = row.problem or (f"it is a link: {row.uri}" if row.uri else "nothing was embedded")
        raise LookupFailed(
            ErrorCode.NOT_FOUND, f"attachment {attachment_id} has no stored bytes ({why})"
        )
    return attachment_summary(row), row.content
