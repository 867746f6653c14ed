"""What an order says beyond its lines: type, where and when to deliver, who to ask, what is
attached (Peppol BIS Ordering 3, T01; docs/adr/0029-order-data-kept-and-used.md).

Order types are the UNCL1001 subset Peppol T01 allows (``PEPPOL-T01-B00801``: 105, 220, 221,
226, 227, 402). The order portals' "express" order has no type code in it: Peppol says it with
``cac:Delivery/cac:Shipment/cbc:ShippingPriorityLevelCode`` 1 (UNCL4219 "Express"); a
"standing" order has no Peppol code at all.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from types import MappingProxyType

ORDER_TYPES = MappingProxyType(
    {
        "105": "internal purchase order",
        "220": "purchase order",
        "221": "blanket order",
        "226": "call-off order",
        "227": "consignment order",
        "402": "cross-docking order",
    }
)
"""The order type codes of Peppol T01 (UNCL1001 subset) and what the field calls them."""

DEFAULT_ORDER_TYPE = "220"
"""Peppol T01: an order without ``cbc:OrderTypeCode`` is a plain (purchase) order."""

TYPE_FILTERS = MappingProxyType(
    {
        "internal": "105",
        "purchase": "220",
        "blanket": "221",
        "framework": "221",
        "call-off": "226",
        "consignment": "227",
        "cross-docking": "402",
    }
)
"""``orders list --type`` names and the code each one selects (besides the codes themselves)."""

EXPRESS = "express"
EXPRESS_PRIORITY = "1"
"""UNCL4219 code 1, Express: ``ShippingPriorityLevelCode`` of an express delivery."""

NO_CODE = MappingProxyType(
    {
        "standing": "a standing order has no code in the Peppol T01 order type list "
        "(105, 220, 221, 226, 227, 402)",
    }
)
"""Order types of the field that Peppol cannot express: asked for, they are an error."""


def order_type_name(code: str | None) -> str:
    """What an order type code means: ``blanket order (221)``; the implied default for none."""
    if code is None:
        return f"{ORDER_TYPES[DEFAULT_ORDER_TYPE]} ({DEFAULT_ORDER_TYPE}, implied)"
    name = ORDER_TYPES.get(code)
    return f"{name} ({code})" if name else f"type code {code} (not in the Peppol list)"


@dataclass(slots=True)
class Address:
    """A postal address (``cac:Address`` / ``cac:PostalAddress``)."""

    street: str | None = None
    additional_street: str | None = None
    city: str | None = None
    postal_zone: str | None = None
    subentity: str | None = None
    line: str | None = None
    """``cac:AddressLine/cbc:Line`` (Peppol allows one)."""
    country: str | None = None

    def parts(self) -> list[str]:
        """The address as printed lines: streets, extra line, postcode and city, region,
        country; empty parts left out."""
        town = " ".join(p for p in (self.postal_zone, self.city) if p)
        found = (self.street, self.additional_street, self.line, town, self.subentity)
        return [p for p in (*found, self.country) if p]

    def text(self) -> str:
        """The address on one line, parts separated by ``, ``."""
        return ", ".join(self.parts())


@dataclass(slots=True)
class Contact:
    """A contact person or desk: ``cac:Contact`` name, telephone, e-mail."""

    name: str | None = None
    telephone: str | None = None
    email: str | None = None

    def text(self) -> str:
        """``name, telephone, email`` without the empty ones."""
        return ", ".join(p for p in (self.name, self.telephone, self.email) if p)


@dataclass(slots=True)
class Delivery:
    """Where and when to deliver (header ``cac:Delivery`` of an order)."""

    location_id: str | None = None
    location_scheme: str | None = None
    location_name: str | None = None
    address: Address | None = None
    start_date: date | None = None
    start_time: str | None = None
    end_date: date | None = None
    end_time: str | None = None
    party_name: str | None = None
    party_id: str | None = None
    contact: Contact | None = None
    priority: str | None = None
    """``cac:Shipment/cbc:ShippingPriorityLevelCode`` (UNCL4219; 1 = express)."""

    def place(self) -> str:
        """The place: location name or delivery party, then the location ID
        (``Helseavdeling (0088:7300010000001)``)."""
        name = self.location_name or self.party_name
        key = (
            f"{self.location_scheme}:{self.location_id}"
            if self.location_scheme and self.location_id
            else self.location_id
        )
        if name and key:
            return f"{name} ({key})"
        return name or key or ""

    def period(self) -> str:
        """The requested period: ``2012-10-10 12:30:00 – 2012-10-20 18:00:00``, one end when
        only one is given (``from ...`` / ``by ...``)."""
        start = " ".join(p for p in (_iso(self.start_date), self.start_time) if p)
        end = " ".join(p for p in (_iso(self.end_date), self.end_time) if p)
        if start and end:
            return f"{start} – {end}"
        if start:
            return f"from {start}"
        return f"by {end}" if end else ""

    @property
    def express(self) -> bool:
        """Asked for express delivery (priority code 1)."""
        return self.priority == EXPRESS_PRIORITY


def _iso(value: date | None) -> str:
    return value.isoformat() if value else ""


@dataclass(slots=True)
class Attachment:
    """An ``cac:AdditionalDocumentReference``: an embedded file, an external URI, or both.

    ``filename`` is what the sender called it: untrusted text, never a path. ``content`` is
    ``None`` when nothing was embedded or it could not be kept; then ``problem`` says why.
    """

    ref: str
    document_type: str | None = None
    description: str | None = None
    filename: str | None = None
    mime_code: str | None = None
    uri: str | None = None
    content: bytes | None = None
    size: int | None = None
    """Bytes embedded (the decoded size; also when ``content`` was refused as too large)."""
    problem: str | None = None
