"""Write a domain :class:`DespatchAdvice` as a Peppol BIS 3 Despatch Advice (T16), UBL 2.1.

Element order follows ``UBL-DespatchAdvice-2.1.xsd`` and the common aggregate sequences; what is
written follows the PEPPOLBIS-T16 Schematron, which forbids every element outside its data
model. Public entry point: :func:`edi_gateway.ubl.write.write_despatch_advice`.
"""

from __future__ import annotations

from decimal import Decimal

from edi_gateway.domain.documents import DespatchAdvice, Line
from edi_gateway.domain.sscc import is_valid
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
    new_root,
    serialize,
)

CUSTOMIZATION_ID = "urn:fdc:peppol.eu:poacc:trns:despatch_advice:3"
PROFILE_ID = "urn:fdc:peppol.eu:poacc:bis:despatch_advice:3"

NOT_APPLICABLE = "NA"
"""The ID Peppol's own examples give a Shipment or Consignment that has no identifier."""

HANDLING_UNIT_TYPE = "CT"
"""``TransportHandlingUnitTypeCode`` of a box: UN/ECE Recommendation 21 ``CT``, carton."""

OUTSTANDING_REASON = "Backordered"
"""``cbc:OutstandingReason`` sent with a backorder quantity (T16-R007 wants a reason)."""


def write_despatch_advice(advice: DespatchAdvice) -> bytes:
    """Serialize ``advice`` as a Peppol T16 Despatch Advice (UTF-8 bytes, XML declaration).

    Header: CustomizationID / ProfileID (the Peppol T16 values unless the advice has its own),
    ID, IssueDate, notes, ``OrderReference/ID`` (``order_refs[0]`` when there is one),
    DespatchSupplierParty (the seller) and DeliveryCustomerParty (the buyer), each with
    EndpointID, PartyIdentification, PostalAddress/Country (when known) and
    PartyLegalEntity/RegistrationName.

    ``cac:Shipment`` when there is anything to say about it: ID (``shipment_id``, else ``NA``),
    the carrier as ``Consignment/CarrierParty/PartyName/Name`` (consignment ID ``NA``), and
    ``Delivery`` with TrackingID, EstimatedDeliveryPeriod (start = end = the estimated date)
    and ``Despatch/ActualDespatchDate``. When lines are packed in boxes (``handling_unit``,
    an SSCC), ``TotalTransportHandlingUnitQuantity`` counts the distinct boxes.

    One ``cac:DespatchLine`` per line: ID, Note, DeliveredQuantity, the backorder quantity as
    ``OutstandingQuantity`` with an ``OutstandingReason`` (T16 forbids BackorderQuantity),
    ``OrderLineReference/LineID``, the Item (name plus seller's or GTIN identifier) and, for a
    line packed in a box, ``Shipment`` (ID ``NA``, as PEPPOL-T16-B24001 wants) with
    ``TransportHandlingUnit/ID schemeID="SSCC"`` and type code ``CT``.

    Raises:
        WriteError: listing everything that keeps the advice from being valid T16: no issue
            date, lines, endpoint or party name, a line without order line reference, delivered
            quantity, unit code, item name or seller's / GTIN item identifier, a negative
            quantity, a handling unit that is not a valid SSCC.
    """
    problems = Problems("despatch advice")
    root = new_root("DespatchAdvice")
    add_header(root, advice, customization=CUSTOMIZATION_ID, profile=PROFILE_ID, problems=problems)
    add_notes(root, advice.notes)
    refs = [ref for ref in (clean(r) for r in advice.order_refs) if ref is not None]
    if len(refs) > 1:
        problems.add(f"a despatch advice refers to one order at most; got references {refs}")
    if refs:
        add(add(root, cac("OrderReference")), cbc("ID"), refs[0])
    for role, party in (
        ("DespatchSupplierParty", advice.seller),
        ("DeliveryCustomerParty", advice.buyer),
    ):
        add_party(root, role, party, with_address=True, name_required=True, problems=problems)
    _add_shipment(root, advice)
    if not advice.lines:
        problems.add("a despatch advice needs at least one line")
    check_unique_line_ids(advice.lines, problems)
    for line in advice.lines:
        _add_line(root, line, problems)
    problems.raise_any()
    return serialize(root)


def _add_shipment(root: Element, advice: DespatchAdvice) -> None:
    carrier = clean(advice.carrier)
    tracking = clean(advice.tracking_id)
    shipment_id = clean(advice.shipment_id)
    dates = (advice.despatch_date, advice.estimated_delivery_date)
    boxes = {ln.handling_unit for ln in advice.lines if ln.handling_unit}
    if not (carrier or tracking or shipment_id or any(dates) or boxes):
        return
    shipment = add(root, cac("Shipment"))
    add(shipment, cbc("ID"), shipment_id or NOT_APPLICABLE)
    if boxes:
        add(shipment, cbc("TotalTransportHandlingUnitQuantity"), str(len(boxes)))
    if carrier is not None:
        consignment = add(shipment, cac("Consignment"))
        add(consignment, cbc("ID"), NOT_APPLICABLE)
        party = add(consignment, cac("CarrierParty"))
        add(add(party, cac("PartyName")), cbc("Name"), carrier)
    if not (tracking or any(dates)):
        return
    delivery = add(shipment, cac("Delivery"))
    if tracking is not None:
        add(delivery, cbc("TrackingID"), tracking)
    if advice.estimated_delivery_date is not None:
        period = add(delivery, cac("EstimatedDeliveryPeriod"))
        add(period, cbc("StartDate"), date_text(advice.estimated_delivery_date))
        add(period, cbc("EndDate"), date_text(advice.estimated_delivery_date))
    if advice.despatch_date is not None:
        despatch = add(delivery, cac("Despatch"))
        add(despatch, cbc("ActualDespatchDate"), date_text(advice.despatch_date))


def _add_line(root: Element, line: Line, problems: Problems) -> None:
    line_id = clean(line.line_id) or ""
    where = f"line {line_id}"
    el = add(root, cac("DespatchLine"))
    add(el, cbc("ID"), line_id)
    note = clean(line.note)
    if note is not None:
        add(el, cbc("Note"), note)
    if line.quantity is None:
        problems.add(f"{where}: the delivered quantity is missing")
    else:
        _check_not_negative(line.quantity.value, where, "delivered", problems)
        add_quantity(el, cbc("DeliveredQuantity"), line.quantity, where, problems)
    backorder = line.backorder_quantity
    if backorder is not None and backorder.value != 0:
        _check_not_negative(backorder.value, where, "backorder", problems)
        add_quantity(el, cbc("OutstandingQuantity"), backorder, where, problems)
        add(el, cbc("OutstandingReason"), OUTSTANDING_REASON)
    order_line = clean(line.order_line_ref)
    if order_line is None:
        problems.add(f"{where}: the order line reference is missing")
    add(add(el, cac("OrderLineReference")), cbc("LineID"), order_line or "")
    if not add_item(el, line, where, problems):
        problems.add(f"{where}: the item needs a seller's item ID or a GTIN (PEPPOL-T16-R003)")
    if line.handling_unit is not None:
        _add_handling_unit(el, line.handling_unit, where, problems)


def _add_handling_unit(line: Element, sscc: str, where: str, problems: Problems) -> None:
    if not is_valid(sscc):
        problems.add(f"{where}: handling unit {sscc!r} is not an SSCC (18 digits, check digit)")
    shipment = add(line, cac("Shipment"))
    add(shipment, cbc("ID"), NOT_APPLICABLE)
    unit = add(shipment, cac("TransportHandlingUnit"))
    add(unit, cbc("ID"), sscc, schemeID="SSCC")
    add(unit, cbc("TransportHandlingUnitTypeCode"), HANDLING_UNIT_TYPE)


def _check_not_negative(value: Decimal, where: str, what: str, problems: Problems) -> None:
    if value.is_finite() and value < 0:
        problems.add(f"{where}: the {what} quantity {value} is negative")
