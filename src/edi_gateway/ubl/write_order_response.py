"""Write a domain :class:`OrderResponse` as a Peppol BIS 3 Order Response (T76) or Order
Response Advanced (T116), UBL 2.1.

T116 (advanced ordering, docs/adr/0025-advanced-ordering.md) has the same data model and
code lists as T76 here (OrderResponseCode AB/AP/RE/CA, LineStatusCode 1/3/5/7/42, lines on CA
only: PEPPOL-T116-R007..R010); it differs in its CustomizationID and ProfileID, which the
response carries (:func:`advanced_ids`). Its ``cac:OrderChangeDocumentReference`` is UBL 2.2
only and is never written: a response answering an Order Change names it in a note.

Element order follows ``UBL-OrderResponse-2.1.xsd`` and the common aggregate sequences; what is
written, and what is left out, follows the PEPPOLBIS-T76 Schematron, which forbids every element
outside its data model. Public entry point: :func:`edi_gateway.ubl.write.write_order_response`.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from edi_gateway.domain.documents import Line, OrderResponse, Substitute
from edi_gateway.ubl.namespaces import cac, cbc
from edi_gateway.ubl.read_values import clean
from edi_gateway.ubl.write_common import (
    Element,
    Problems,
    add,
    add_header,
    add_item,
    add_notes,
    add_party,
    add_quantity,
    check_unique_line_ids,
    date_text,
    decimal_text,
    new_root,
    serialize,
)

CUSTOMIZATION_ID = "urn:fdc:peppol.eu:poacc:trns:order_response:3"
PROFILE_ID = "urn:fdc:peppol.eu:poacc:bis:ordering:3"
ADVANCED_CUSTOMIZATION_ID = "urn:fdc:peppol.eu:poacc:trns:order_response_advanced:3"
ADVANCED_PROFILE_ID = "urn:fdc:peppol.eu:poacc:bis:advanced_ordering:3"
"""Peppol BIS Advanced Ordering 3: T116 answers orders, changes and cancellations of it."""


def is_advanced(profile_id: str | None) -> bool:
    """Whether a document's ProfileID is Peppol advanced ordering (answered with T116)."""
    return clean(profile_id) == ADVANCED_PROFILE_ID


def advanced_ids() -> tuple[str, str]:
    """The (CustomizationID, ProfileID) of a T116 Order Response Advanced."""
    return ADVANCED_CUSTOMIZATION_ID, ADVANCED_PROFILE_ID


RESPONSE_CODES = MappingProxyType(
    {
        "AB": "received, not yet processed",
        "AP": "accepted without change",
        "RE": "rejected",
        "CA": "accepted with changes",
    }
)
"""The UNCL 4343 subset of T76 and its meaning; only CA carries lines (T76-R007..R010)."""

LINE_STATUS_CODES = MappingProxyType(
    {"1": "added", "3": "changed", "5": "accepted", "7": "not accepted", "42": "already delivered"}
)
"""The UNCL 1229 subset of T76 for ``cbc:LineStatusCode``."""

SUBSTITUTED = "3"
"""The status of a line with a ``cac:SellerSubstitutedLineItem``: changed (the T76 examples)."""


def write_order_response(response: OrderResponse) -> bytes:
    """Serialize ``response`` as a Peppol T76 Order Response (UTF-8 bytes, XML declaration).

    Header: CustomizationID / ProfileID (the Peppol T76 values unless the response has its own),
    ID, IssueDate, OrderResponseCode, the reason and notes as ``cbc:Note`` (reason first),
    DocumentCurrencyCode, ``OrderReference/ID`` (the one order answered, ``order_refs[0]``),
    SellerSupplierParty and BuyerCustomerParty (EndpointID, PartyIdentification,
    PartyLegalEntity/RegistrationName).

    Lines only for ``CA``, one ``cac:OrderLine`` each: ``LineItem`` with ID, the line note,
    LineStatusCode, the (new) Quantity, the new delivery date as ``PromisedDeliveryPeriod``
    (start = end = that date), the (new) Price in the document currency (with BaseQuantity when
    the line's ``base_quantity`` is not 1) and the Item; then
    ``OrderLineReference/LineID`` (the order line; the line ID when ``order_line_ref`` is unset).
    A line with an entry in ``response.substitutes`` (keyed by that order line ID) also gets a
    ``SellerSubstitutedLineItem`` between the two: ID (the line ID) and an Item with the
    substitute's Name and ``SellersItemIdentification/ID``; such a line must have status ``3``
    (changed), as in the Peppol T76 examples.

    A line the seller adds (status ``1``: a charge such as freight, or an amount discount with a
    negative price; see :mod:`edi_gateway.outbound.charges`) is written like any other, its
    ``OrderLineReference/LineID`` being its own line ID: T76 has no document-level allowances or
    charges (PEPPOL-T76-B00111).

    Raises:
        WriteError: listing everything that keeps the response from being valid T76: no issue
            date, currency or endpoint, not exactly one order reference, a response code outside
            AB/AP/RE/CA, lines on AB/AP/RE or none on CA, a line without status, item name or
            unit code, a substitute without item ID or name, for a line that is not ``3`` or
            for no line of the response.
    """
    problems = Problems("order response")
    root = new_root("OrderResponse")
    add_header(
        root, response, customization=CUSTOMIZATION_ID, profile=PROFILE_ID, problems=problems
    )
    code = clean(response.response_code)
    if code not in RESPONSE_CODES:
        problems.add(f"response code {code!r} is not one of {', '.join(RESPONSE_CODES)}")
    add(root, cbc("OrderResponseCode"), code or "")
    add_notes(root, [response.reason, *response.notes])
    currency = clean(response.currency)
    if currency is None:
        problems.add("the document currency is missing (T76 requires DocumentCurrencyCode)")
    add(root, cbc("DocumentCurrencyCode"), currency or "")
    _add_order_reference(root, response.order_refs, problems)
    add_party(
        root,
        "SellerSupplierParty",
        response.seller,
        with_address=False,
        name_required=False,
        problems=problems,
    )
    add_party(
        root,
        "BuyerCustomerParty",
        response.buyer,
        with_address=False,
        name_required=False,
        problems=problems,
    )
    _check_line_count(code, len(response.lines), problems)
    check_unique_line_ids(response.lines, problems)
    _check_substitutes(response, problems)
    for line in response.lines:
        _add_line(root, line, currency or "", problems, response.substitutes)
    problems.raise_any()
    return serialize(root)


def _add_order_reference(root: Element, order_refs: list[str], problems: Problems) -> None:
    refs = [ref for ref in (clean(r) for r in order_refs) if ref is not None]
    if len(refs) != 1:
        problems.add(f"an order response answers exactly one order; got references {refs}")
    if refs:
        add(add(root, cac("OrderReference")), cbc("ID"), refs[0])


def _check_line_count(code: str | None, count: int, problems: Problems) -> None:
    if code == "CA" and count == 0:
        problems.add("a CA (accepted with changes) response must list every order line")
    elif code in RESPONSE_CODES and code != "CA" and count:
        problems.add(f"a {code} response must not have lines; got {count}")


def _check_substitutes(response: OrderResponse, problems: Problems) -> None:
    refs = {clean(line.order_line_ref) or clean(line.line_id) for line in response.lines}
    stray = sorted(set(response.substitutes) - refs)
    if stray:
        problems.add(f"substitutes for lines the response does not have: {', '.join(stray)}")


def _add_line(
    root: Element,
    line: Line,
    currency: str,
    problems: Problems,
    substitutes: Mapping[str, Substitute],
) -> None:
    line_id = clean(line.line_id) or ""
    where = f"line {line_id}"
    order_line = add(root, cac("OrderLine"))
    item_line = add(order_line, cac("LineItem"))
    add(item_line, cbc("ID"), line_id)
    note = clean(line.note)
    if note is not None:  # T76 allows the note on the LineItem only, not on the OrderLine
        add(item_line, cbc("Note"), note)
    status = clean(line.status_code)
    if status not in LINE_STATUS_CODES:
        problems.add(
            f"{where}: line status {status!r} is not one of {', '.join(LINE_STATUS_CODES)}"
        )
    add(item_line, cbc("LineStatusCode"), status or "")
    if line.quantity is not None:
        add_quantity(item_line, cbc("Quantity"), line.quantity, where, problems)
    if line.delivery_date is not None:
        period = add(add(item_line, cac("Delivery")), cac("PromisedDeliveryPeriod"))
        add(period, cbc("StartDate"), date_text(line.delivery_date))
        add(period, cbc("EndDate"), date_text(line.delivery_date))
    if line.price is not None:
        if line.price.is_finite():
            price = add(item_line, cac("Price"))
            add(price, cbc("PriceAmount"), decimal_text(line.price), currencyID=currency)
            base = line.base_quantity  # the price is for this many units (the Order's)
            if base is not None and base != 1 and line.quantity is not None:
                unit = clean(line.quantity.unit) or ""
                add(price, cbc("BaseQuantity"), decimal_text(base), unitCode=unit)
        else:
            problems.add(f"{where}: price {line.price} is not a number")
    add_item(item_line, line, where, problems)
    ref = clean(line.order_line_ref) or line_id
    substitute = substitutes.get(ref)
    if substitute is not None:
        if status != SUBSTITUTED:
            problems.add(f"{where}: a substituted line has status {SUBSTITUTED}, not {status!r}")
        _add_substitute(order_line, line_id, substitute, where, problems)
    reference = add(order_line, cac("OrderLineReference"))
    add(reference, cbc("LineID"), ref)


def _add_substitute(
    order_line: Element, line_id: str, substitute: Substitute, where: str, problems: Problems
) -> None:
    """``cac:SellerSubstitutedLineItem``: ID and Item (Name, SellersItemIdentification/ID)."""
    item_id, name = clean(substitute.seller_item_id), clean(substitute.name)
    if item_id is None or name is None:
        problems.add(f"{where}: the substitute needs a seller item ID and a name")
        return
    substituted = add(order_line, cac("SellerSubstitutedLineItem"))
    add(substituted, cbc("ID"), line_id)
    item = add(substituted, cac("Item"))
    add(item, cbc("Name"), name)
    add(add(item, cac("SellersItemIdentification")), cbc("ID"), item_id)
