"""Read what a Peppol T01 order says besides parties and lines (docs/adr/0029).

``cbc:OrderTypeCode``, ``cbc:CustomerReference``, the header ``cac:Delivery`` (location ID and
address, requested period, delivery party and its contact, shipping priority), the buyer's and
seller's ``cac:Contact`` and every ``cac:AdditionalDocumentReference`` with its embedded file.

An embedded file that is not valid base64, or larger than :data:`MAX_ATTACHMENT_BYTES`, does
not stop the order: the attachment is kept without bytes, its ``problem`` names the error code
(``ATTACHMENT_INVALID`` / ``ATTACHMENT_TOO_LARGE``) and the message gets a finding.
"""

from __future__ import annotations

import binascii

from edi_gateway.domain.documents import Order
from edi_gateway.domain.order_data import Address, Attachment, Contact, Delivery
from edi_gateway.errors import ErrorCode
from edi_gateway.ubl.namespaces import cac, cbc, path
from edi_gateway.ubl.read_values import (
    Element,
    Kids,
    child,
    date_of,
    find_in,
    steps,
    text,
    text_in,
    text_of,
)

__all__ = ["MAX_ATTACHMENT_BYTES", "line_place", "read_order_data"]

MAX_ATTACHMENT_BYTES = 5 * 1024 * 1024
"""The largest embedded attachment kept (decoded); a larger one is listed, not kept."""

_TYPE = steps("cbc:OrderTypeCode")
_CUSTOMER_REF = steps("cbc:CustomerReference")
_DELIVERY = cac("Delivery")
_BUYER_CONTACT = steps("cac:BuyerCustomerParty", "cac:Party", "cac:Contact")
_SELLER_CONTACT = steps("cac:SellerSupplierParty", "cac:Party", "cac:Contact")
_ADDITIONAL = cac("AdditionalDocumentReference")


def read_order_data(order: Order, kids: Kids) -> None:
    """Fill ``order``'s type, buyer reference, delivery, contacts and attachments from the
    root's grouped children ``kids``."""
    order.order_type = text_in(kids, _TYPE)
    order.buyer_reference = text_in(kids, _CUSTOMER_REF)
    deliveries = kids.get(_DELIVERY)
    if deliveries:
        order.delivery = read_delivery(deliveries[0])
    order.buyer_contact = read_contact(find_in(kids, _BUYER_CONTACT))
    order.seller_contact = read_contact(find_in(kids, _SELLER_CONTACT))
    order.attachments = [_attachment(el) for el in kids.get(_ADDITIONAL, ())]


_NAME, _PHONE, _MAIL = cbc("Name"), cbc("Telephone"), cbc("ElectronicMail")


def read_contact(el: Element | None) -> Contact | None:
    """A ``cac:Contact`` (None when absent or empty)."""
    if el is None:
        return None
    found = Contact(text(el, _NAME), text(el, _PHONE), text(el, _MAIL))
    return found if found.text() else None


_ADDRESS_FIELDS = (
    ("street", cbc("StreetName")),
    ("additional_street", cbc("AdditionalStreetName")),
    ("city", cbc("CityName")),
    ("postal_zone", cbc("PostalZone")),
    ("subentity", cbc("CountrySubentity")),
    ("line", path("cac:AddressLine", "cbc:Line")),
    ("country", path("cac:Country", "cbc:IdentificationCode")),
)


def read_address(el: Element | None) -> Address | None:
    """A ``cac:Address`` (None when absent or empty)."""
    if el is None:
        return None
    found = Address(**{name: text(el, where) for name, where in _ADDRESS_FIELDS})
    return found if found.parts() else None


_LOCATION, _LOCATION_ID = cac("DeliveryLocation"), cbc("ID")
_PERIOD = cac("RequestedDeliveryPeriod")
_PARTY = cac("DeliveryParty")
_PARTY_NAME = path("cac:PartyName", "cbc:Name")
_PARTY_ID = path("cac:PartyIdentification", "cbc:ID")
_PRIORITY = path("cac:Shipment", "cbc:ShippingPriorityLevelCode")


def read_delivery(el: Element) -> Delivery | None:
    """A ``cac:Delivery``: location, requested period, delivery party, priority (None when
    it says none of these)."""
    out = Delivery(priority=text(el, _PRIORITY))
    location = child(el, _LOCATION)
    if location is not None:
        _location_into(out, location)
    period = child(el, _PERIOD)
    if period is not None:
        out.start_date = date_of(child(period, cbc("StartDate")))
        out.start_time = text(period, cbc("StartTime"))
        out.end_date = date_of(child(period, cbc("EndDate")))
        out.end_time = text(period, cbc("EndTime"))
    party = child(el, _PARTY)
    if party is not None:
        out.party_name = text(party, _PARTY_NAME)
        id_el = party.find(_PARTY_ID)
        scheme = None if id_el is None else text_of_attr(id_el, "schemeID")
        value = text_of(id_el)
        out.party_id = f"{scheme}:{value}" if scheme and value else value
        out.contact = read_contact(child(party, cac("Contact")))
    return out if out != Delivery() else None


def _location_into(out: Delivery, location: Element) -> None:
    id_el = child(location, _LOCATION_ID)
    out.location_id = text_of(id_el)
    out.location_scheme = None if id_el is None else text_of_attr(id_el, "schemeID")
    out.location_name = text(location, _NAME)
    out.address = read_address(child(location, cac("Address")))


def line_place(delivery: Element) -> str | None:
    """A line's own delivery location (``LineItem/cac:Delivery/cac:DeliveryLocation``) on one
    line: place, then address; None when the line names none (the common case costs one scan
    of the Delivery's children: lines are the hot path)."""
    location = child(delivery, _LOCATION)
    if location is None:
        return None
    found = Delivery()
    _location_into(found, location)
    parts = (found.place(), found.address.text() if found.address else "")
    return ", ".join(p for p in parts if p) or None


def text_of_attr(el: Element, name: str) -> str | None:
    """Stripped attribute ``name`` of ``el`` (None when absent or empty)."""
    raw = el.get(name)
    return raw.strip() or None if raw is not None else None


_DOC_TYPE, _DESCRIPTION = cbc("DocumentType"), cbc("DocumentDescription")
_ATTACHMENT = cac("Attachment")
_EMBEDDED = cbc("EmbeddedDocumentBinaryObject")
_URI = path("cac:ExternalReference", "cbc:URI")


def _attachment(el: Element) -> Attachment:
    found = Attachment(
        ref=text(el, cbc("ID")) or "",
        document_type=text(el, _DOC_TYPE),
        description=text(el, _DESCRIPTION),
    )
    attachment = child(el, _ATTACHMENT)
    if attachment is None:
        return found
    found.uri = text(attachment, _URI)
    embedded = child(attachment, _EMBEDDED)
    if embedded is not None:
        found.filename = text_of_attr(embedded, "filename")
        found.mime_code = text_of_attr(embedded, "mimeCode")
        _decode(found, embedded.text or "")
    return found


def _decode(found: Attachment, encoded: str) -> None:
    """Decode the base64 ``encoded`` into ``found`` (whitespace anywhere is allowed, as in
    XML Schema's base64Binary), or say why not in ``found.problem``. The size is known from
    the text's length (exact for valid base64), so a file over the limit is never decoded."""
    compact = "".join(encoded.split())
    estimate = len(compact) // 4 * 3 - compact[-2:].count("=")
    if estimate > MAX_ATTACHMENT_BYTES:
        _too_large(found, estimate)
        return
    try:
        content = binascii.a2b_base64(compact.encode("ascii"), strict_mode=True)
    except (binascii.Error, UnicodeEncodeError) as exc:
        found.problem = f"{ErrorCode.ATTACHMENT_INVALID.value}: not valid base64 ({exc})"
        return
    found.size, found.content = len(content), content  # the estimate was exact: it fits


def _too_large(found: Attachment, size: int) -> None:
    """Listed with its size, not kept."""
    found.size = size
    found.problem = (
        f"{ErrorCode.ATTACHMENT_TOO_LARGE.value}: {size} bytes, more than the "
        f"{MAX_ATTACHMENT_BYTES} kept"
    )
