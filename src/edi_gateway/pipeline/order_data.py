"""An order's data besides parties and lines, as rows (docs/adr/0029): delivery, contacts,
attachments; and a finding for each attachment that could not be kept.

Called by :func:`edi_gateway.pipeline.orders.insert_orders` in the same transaction as the
order, with one insert per table per batch.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection

from edi_gateway.domain.documents import Order
from edi_gateway.domain.findings import Finding
from edi_gateway.domain.order_data import Attachment, Contact, Delivery
from edi_gateway.store import schema
from edi_gateway.store.bulk import insert_many

GATEWAY_RULES = "GATEWAY"


def order_columns(order: Order) -> dict[str, Any]:
    """The ``orders`` columns of the order data: type as sent, buyer reference, notes."""
    return {
        "order_type": order.order_type,
        "buyer_reference": order.buyer_reference,
        "notes": json.dumps(order.notes, ensure_ascii=False) if order.notes else None,
    }


@dataclass(slots=True)
class DataRows:
    """The order data rows of a batch, one list per table."""

    delivery: list[dict[str, Any]] = field(default_factory=list)
    contacts: list[dict[str, Any]] = field(default_factory=list)
    attachments: list[dict[str, Any]] = field(default_factory=list)

    def add(self, order_id: int, order: Order) -> list[Finding]:
        """Add the rows of ``order`` (stored as ``order_id``); the findings of its
        attachments that could not be kept."""
        if order.delivery is not None:
            self.delivery.append(delivery_row(order_id, order.delivery))
        contacts = (
            ("buyer", order.buyer_contact),
            ("seller", order.seller_contact),
            ("delivery", order.delivery.contact if order.delivery else None),
        )
        self.contacts += [_contact_row(order_id, r, c) for r, c in contacts if c is not None]
        self.attachments += [
            _attachment_row(order_id, n, a) for n, a in enumerate(order.attachments)
        ]
        return [_finding(a) for a in order.attachments if a.problem]

    def insert(self, conn: Connection) -> None:
        """Write the rows (after their orders)."""
        insert_many(conn, schema.order_delivery, self.delivery)
        insert_many(conn, schema.order_contacts, self.contacts)
        insert_many(conn, schema.order_attachments, self.attachments)


def delivery_row(order_id: int, delivery: Delivery) -> dict[str, Any]:
    """The ``order_delivery`` row of ``delivery``."""
    address = delivery.address
    return {
        "order_id": order_id,
        "location_id": delivery.location_id,
        "location_scheme": delivery.location_scheme,
        "location_name": delivery.location_name,
        "street": address.street if address else None,
        "additional_street": address.additional_street if address else None,
        "city": address.city if address else None,
        "postal_zone": address.postal_zone if address else None,
        "subentity": address.subentity if address else None,
        "address_line": address.line if address else None,
        "country": address.country if address else None,
        "start_date": delivery.start_date,
        "start_time": delivery.start_time,
        "end_date": delivery.end_date,
        "end_time": delivery.end_time,
        "party_name": delivery.party_name,
        "party_id": delivery.party_id,
        "priority": delivery.priority,
    }


def _contact_row(order_id: int, role: str, contact: Contact) -> dict[str, Any]:
    return {
        "order_id": order_id,
        "role": role,
        "name": contact.name,
        "telephone": contact.telephone,
        "email": contact.email,
    }


def _attachment_row(order_id: int, position: int, found: Attachment) -> dict[str, Any]:
    content = found.content
    return {
        "order_id": order_id,
        "position": position,
        "ref": found.ref,
        "document_type": found.document_type,
        "description": found.description,
        "filename": found.filename,
        "mime_code": found.mime_code,
        "uri": found.uri,
        "size": found.size,
        "sha256": hashlib.sha256(content).hexdigest() if content is not None else None,
        "problem": found.problem,
        "content": content,
    }


def _finding(found: Attachment) -> Finding:
    code, _, why = (found.problem or "").partition(": ")
    text = f"attachment {found.ref!r} ({found.filename or 'no file name'}) not kept: {why}"
    return Finding(GATEWAY_RULES, code, "warning", None, None, text)
