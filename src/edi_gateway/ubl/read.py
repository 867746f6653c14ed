"""Interpret an XSD-valid UBL 2.1 document (an lxml root element) as a domain document.

:func:`interpret` is the only entry point; it does no I/O. The header is read with precomputed
Clark-notation paths and ``find``/``findtext`` (never XPath); parties are read in
:mod:`edi_gateway.ubl.read_parties`, lines (the hot path) in :mod:`edi_gateway.ubl.read_lines`.

Kind-specific choices worth knowing:

* ApplicationResponse has no buyer or seller: ``SenderParty`` is stored as ``seller`` and
  ``ReceiverParty`` as ``buyer``, so ``Document.sender()`` (the seller for this kind) returns
  the party that sent the response.
* CreditNote and DebitNote are :class:`Invoice` objects with kind CREDIT_NOTE / DEBIT_NOTE; a
  DebitNote has no type code and keeps its totals in ``cac:RequestedMonetaryTotal``.
* OrderResponseSimple is an :class:`OrderResponse` with kind ORDER_RESPONSE_SIMPLE; its
  ``AcceptedIndicator`` becomes ``AP`` (true) or ``RE`` (false), its RejectionNotes the reason.
* DespatchAdvice (Peppol T16): carrier from ``Shipment/Consignment/CarrierParty/PartyName/Name``,
  tracking ID from ``Shipment/Delivery/TrackingID`` (``Consignment/CarrierAssignedID`` as a
  fallback; T16 forbids it but plain UBL allows it); ``Consignment/ID`` is the consignment's own
  identifier, not a tracking number, and is not used. ``tracking_url`` is the
  ``Attachment/ExternalReference/URI`` of the first ``AdditionalDocumentReference`` whose
  ``DocumentType`` mentions tracking or whose ID is the tracking ID (T16 has no other place for
  a tracking link). ``despatch_date`` is
  ``Shipment/Delivery/Despatch/ActualDespatchDate``, else the IssueDate;
  ``estimated_delivery_date`` is ``Shipment/Delivery/EstimatedDeliveryPeriod`` EndDate, else
  StartDate (Peppol use case 4 sends only a StartDate). A line's box is the first
  ``DespatchLine/Shipment/TransportHandlingUnit/ID`` (an SSCC in Peppol use case 4).
* Invoice kinds: ``tax_amount`` is the first ``TaxTotal/TaxAmount`` in the document currency;
  ``due_date`` is ``cbc:DueDate``, else ``PaymentMeans/PaymentDueDate`` (where a CreditNote,
  which has no DueDate, carries it); the document-level ``cac:AllowanceCharge`` (freight,
  discounts) are read by :mod:`edi_gateway.ubl.read_charges`.
* Order: type, buyer reference, delivery, contacts and attachments are read by
  :mod:`edi_gateway.ubl.read_order_data`.
* Multi-valued reasons (CancellationNote, RejectionNote) are joined with newlines.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from types import MappingProxyType
from typing import TypeVar

from edi_gateway.domain.documents import (
    ApplicationResponse,
    DespatchAdvice,
    Document,
    DocumentKind,
    Invoice,
    Order,
    OrderCancellation,
    OrderChange,
    OrderResponse,
    Party,
    ReceiptAdvice,
)
from edi_gateway.errors import DocumentError, ErrorCode, GatewayError
from edi_gateway.ubl.namespaces import cac, cbc, path, root_tag, split_clark
from edi_gateway.ubl.read_charges import read_allowances_charges
from edi_gateway.ubl.read_lines import read_lines
from edi_gateway.ubl.read_order_data import read_order_data
from edi_gateway.ubl.read_parties import read_billed, read_buyer_seller
from edi_gateway.ubl.read_values import (
    Element,
    Kids,
    clean,
    date_at,
    date_of,
    decimal,
    decimal_of,
    find_in,
    first_date,
    first_date_in,
    first_text,
    group_children,
    missing,
    source_line,
    steps,
    text,
    text_in,
    texts,
    texts_in,
    unique,
)

__all__ = ["interpret"]

D = TypeVar("D", bound=Document)

_ROOT_KINDS = MappingProxyType({root_tag(kind.value): kind for kind in DocumentKind})

# Paths below the root are tuples of Clark tags, read from the root's children grouped by tag in
# one pass (group_children), which is much cheaper than one ElementPath ``find`` per field.
_ID = steps("cbc:ID")
_ISSUE_DATE = steps("cbc:IssueDate")
_CUSTOMIZATION = steps("cbc:CustomizationID")
_PROFILE = steps("cbc:ProfileID")
_CURRENCY = steps("cbc:DocumentCurrencyCode")
_NOTE = steps("cbc:Note")
_ORDER_REF = steps("cac:OrderReference", "cbc:ID")
_DESPATCH_REF = steps("cac:DespatchDocumentReference", "cbc:ID")
_BILLING_REFERENCE = cac("BillingReference")
_BILLING_DOC_IDS = tuple(
    path(f"cac:{name}DocumentReference", "cbc:ID")
    for name in ("Invoice", "CreditNote", "DebitNote", "SelfBilledInvoice", "SelfBilledCreditNote")
)


def _start(cls: type[D], root: Element, kids: Kids, kind: DocumentKind) -> D:
    """A ``cls`` with everything every kind shares: header, parties, references, lines."""
    found = find_in(kids, _ID)
    document_id = None if found is None else clean(found.text)
    if document_id is None:
        raise missing(root, "document cbc:ID", found)
    doc = cls(kind=kind, document_id=document_id)
    doc.issue_date = date_of(find_in(kids, _ISSUE_DATE))
    doc.customization_id = text_in(kids, _CUSTOMIZATION)
    doc.profile_id = text_in(kids, _PROFILE)
    doc.currency = text_in(kids, _CURRENCY)
    doc.notes = texts_in(kids, _NOTE)
    doc.buyer, doc.seller = read_buyer_seller(kids, kind)
    lines = read_lines(kids, kind)
    doc.lines = lines.lines
    doc.order_refs = unique([*texts_in(kids, _ORDER_REF), *lines.order_refs])
    doc.despatch_refs = unique([*texts_in(kids, _DESPATCH_REF), *lines.despatch_refs])
    doc.billing_refs = unique(
        ref
        for billing in kids.get(_BILLING_REFERENCE, ())
        for doc_id in _BILLING_DOC_IDS
        for ref in texts(billing, doc_id)
    )
    return doc


_ANTICIPATED_PAYABLE = steps("cac:AnticipatedMonetaryTotal", "cbc:PayableAmount")


def _order(root: Element, kids: Kids, kind: DocumentKind) -> Document:
    doc = _start(Order, root, kids, kind)
    _unique_line_ids(doc)
    doc.total_amount = decimal_of(find_in(kids, _ANTICIPATED_PAYABLE))
    doc.billed = read_billed(kids)
    read_order_data(doc, kids)
    return doc


_UNIQUE_LINES_RULE = {
    DocumentKind.ORDER: "PEPPOL-T01-R001",
    DocumentKind.ORDER_CHANGE: "PEPPOL-T114-R001",
}


def _unique_line_ids(doc: Document) -> None:
    """Every line of an order (or order change) is known by its ID, which responses, despatches
    and invoices refer to: a repeated one is refused, as Peppol's fatal rules PEPPOL-T01-R001
    and PEPPOL-T114-R001 require."""
    seen: set[str] = set()
    for position, line in enumerate(doc.lines, start=1):
        if line.line_id in seen:
            first = next(n for n, other in enumerate(doc.lines, 1) if other.line_id == line.line_id)
            raise DocumentError(
                ErrorCode.DUPLICATE_LINE_ID,
                f"{doc.kind.value} {doc.document_id}: line {position} repeats the line ID "
                f"{line.line_id!r} of line {first}; every line needs its own ID "
                f"({_UNIQUE_LINES_RULE[doc.kind]})",
            )
        seen.add(line.line_id)


_SEQUENCE = steps("cbc:SequenceNumberID")


def _order_change(root: Element, kids: Kids, kind: DocumentKind) -> Document:
    doc = _start(OrderChange, root, kids, kind)
    _unique_line_ids(doc)
    sequence = doc.sequence_id = text_in(kids, _SEQUENCE)
    if sequence is not None and sequence.isascii() and sequence.isdigit():
        doc.sequence = int(sequence)
    doc.billed = read_billed(kids)
    return doc


def _joined(values: list[str]) -> str | None:
    return "\n".join(values) or None


_CANCELLATION_NOTE = steps("cbc:CancellationNote")


def _order_cancellation(root: Element, kids: Kids, kind: DocumentKind) -> Document:
    doc = _start(OrderCancellation, root, kids, kind)
    doc.reason = _joined(texts_in(kids, _CANCELLATION_NOTE))
    return doc


_RESPONSE_CODE = steps("cbc:OrderResponseCode")


def _order_response(root: Element, kids: Kids, kind: DocumentKind) -> Document:
    doc = _start(OrderResponse, root, kids, kind)
    doc.response_code = text_in(kids, _RESPONSE_CODE)
    doc.reason = doc.notes[0] if doc.notes else None
    return doc


_ACCEPTED = steps("cbc:AcceptedIndicator")
_REJECTION_NOTE = steps("cbc:RejectionNote")
_ACCEPTED_CODES = MappingProxyType({"true": "AP", "1": "AP", "false": "RE", "0": "RE"})


def _order_response_simple(root: Element, kids: Kids, kind: DocumentKind) -> Document:
    doc = _start(OrderResponse, root, kids, kind)
    doc.response_code = _ACCEPTED_CODES.get(text_in(kids, _ACCEPTED) or "")
    doc.reason = _joined(texts_in(kids, _REJECTION_NOTE))
    return doc


_SHIPMENT = cac("Shipment")
_CARRIER_NAMES = (
    path("cac:Consignment", "cac:CarrierParty", "cac:PartyName", "cbc:Name"),
    path("cac:Delivery", "cac:CarrierParty", "cac:PartyName", "cbc:Name"),
)
_TRACKING_IDS = (
    path("cac:Delivery", "cbc:TrackingID"),
    path("cac:Consignment", "cbc:CarrierAssignedID"),
)
_ADDITIONAL = cac("AdditionalDocumentReference")
_EXTERNAL_URI = path("cac:Attachment", "cac:ExternalReference", "cbc:URI")
_ACTUAL_DESPATCH = path("cac:Delivery", "cac:Despatch", "cbc:ActualDespatchDate")
_ESTIMATED_DELIVERY = (
    path("cac:Delivery", "cac:EstimatedDeliveryPeriod", "cbc:EndDate"),
    path("cac:Delivery", "cac:EstimatedDeliveryPeriod", "cbc:StartDate"),
)


def _despatch_advice(root: Element, kids: Kids, kind: DocumentKind) -> Document:
    doc = _start(DespatchAdvice, root, kids, kind)
    shipment = find_in(kids, (_SHIPMENT,))
    if shipment is not None:
        doc.carrier = first_text(shipment, _CARRIER_NAMES)
        doc.tracking_id = first_text(shipment, _TRACKING_IDS)
        doc.despatch_date = date_at(shipment, _ACTUAL_DESPATCH)
        doc.estimated_delivery_date = first_date(shipment, _ESTIMATED_DELIVERY)
    if doc.despatch_date is None:
        doc.despatch_date = doc.issue_date
    _read_handling_units(kids, doc)
    doc.tracking_url = _tracking_url(kids.get(_ADDITIONAL, []), doc.tracking_id)
    return doc


_DESPATCH_LINE = cac("DespatchLine")
_LINE_ID = path("cbc:ID")
_HANDLING_UNIT = path("cac:Shipment", "cac:TransportHandlingUnit", "cbc:ID")


def _read_handling_units(kids: Kids, doc: DespatchAdvice) -> None:
    boxes: dict[str, str] = {}
    for el in kids.get(_DESPATCH_LINE, ()):
        line_id, unit = el.findtext(_LINE_ID), el.findtext(_HANDLING_UNIT)
        if line_id is not None and unit is not None and unit.strip():
            boxes.setdefault(line_id.strip(), unit.strip())
    for line in doc.lines:
        line.handling_unit = boxes.get(line.line_id)


def _tracking_url(references: list[Element], tracking_id: str | None) -> str | None:
    for reference in references:
        kind = (reference.findtext(cbc("DocumentType")) or "").lower()
        if "track" in kind or (tracking_id and clean(reference.findtext(cbc("ID"))) == tracking_id):
            url = clean(reference.findtext(_EXTERNAL_URI))
            if url is not None:
                return url
    return None


def _receipt_advice(root: Element, kids: Kids, kind: DocumentKind) -> Document:
    return _start(ReceiptAdvice, root, kids, kind)


_TYPE_CODES = MappingProxyType(
    {
        DocumentKind.INVOICE: cbc("InvoiceTypeCode"),
        DocumentKind.CREDIT_NOTE: cbc("CreditNoteTypeCode"),
    }
)
_LEGAL_TOTAL = cac("LegalMonetaryTotal")
_REQUESTED_TOTAL = cac("RequestedMonetaryTotal")  # DebitNote's name for the same block
_TAX_EXCLUSIVE = cbc("TaxExclusiveAmount")
_PAYABLE = cbc("PayableAmount")
_TAX_TOTAL = cac("TaxTotal")
_TAX_AMOUNT = cbc("TaxAmount")
_DUE_DATES = (steps("cbc:DueDate"), steps("cac:PaymentMeans", "cbc:PaymentDueDate"))


def _invoice(root: Element, kids: Kids, kind: DocumentKind) -> Document:
    doc = _start(Invoice, root, kids, kind)
    type_tag = _TYPE_CODES.get(kind)
    doc.type_code = text_in(kids, (type_tag,)) if type_tag else None
    total = find_in(kids, (_REQUESTED_TOTAL if kind is DocumentKind.DEBIT_NOTE else _LEGAL_TOTAL,))
    if total is not None:
        doc.tax_exclusive_amount = decimal(total, _TAX_EXCLUSIVE)
        doc.payable_amount = decimal(total, _PAYABLE)
    doc.tax_amount = _tax_in_currency(kids, doc.currency)
    doc.due_date = first_date_in(kids, _DUE_DATES)
    doc.allowances_charges = read_allowances_charges(kids)
    return doc


def _tax_in_currency(kids: Kids, currency: str | None) -> Decimal | None:
    """The first ``TaxTotal/TaxAmount`` in the document currency.

    A second TaxTotal may carry the tax in the tax currency. When the document currency or the
    amount's ``@currencyID`` is absent, the first TaxAmount is taken.
    """
    for tax_total in kids.get(_TAX_TOTAL, ()):
        amount = tax_total.find(_TAX_AMOUNT)
        if amount is None:
            continue
        amount_currency = clean(amount.get("currencyID"))
        if currency is None or amount_currency is None or amount_currency == currency:
            return decimal(tax_total, _TAX_AMOUNT)
    return None


_DOCUMENT_RESPONSE = cac("DocumentResponse")
_RESPONSE_CODE_IN_RESPONSE = path("cac:Response", "cbc:ResponseCode")
_REFERENCED_ID = path("cac:DocumentReference", "cbc:ID")


def _application_response(root: Element, kids: Kids, kind: DocumentKind) -> Document:
    doc = _start(ApplicationResponse, root, kids, kind)
    for response in kids.get(_DOCUMENT_RESPONSE, ()):
        if doc.response_code is None:
            doc.response_code = text(response, _RESPONSE_CODE_IN_RESPONSE)
        doc.referenced_document_ids.extend(texts(response, _REFERENCED_ID))
    doc.referenced_document_ids = unique(doc.referenced_document_ids)
    return doc


_READERS: MappingProxyType[DocumentKind, Callable[[Element, Kids, DocumentKind], Document]] = (
    MappingProxyType(
        {
            DocumentKind.ORDER: _order,
            DocumentKind.ORDER_CHANGE: _order_change,
            DocumentKind.ORDER_CANCELLATION: _order_cancellation,
            DocumentKind.ORDER_RESPONSE: _order_response,
            DocumentKind.ORDER_RESPONSE_SIMPLE: _order_response_simple,
            DocumentKind.DESPATCH_ADVICE: _despatch_advice,
            DocumentKind.RECEIPT_ADVICE: _receipt_advice,
            DocumentKind.INVOICE: _invoice,
            DocumentKind.CREDIT_NOTE: _invoice,
            DocumentKind.DEBIT_NOTE: _invoice,
            DocumentKind.APPLICATION_RESPONSE: _application_response,
        }
    )
)


def interpret(root: Element) -> Document:
    """Turn the parsed, XSD-valid root element of a UBL 2.1 document into a domain document.

    Supported roots are the eleven :class:`DocumentKind` document types; the result is the
    matching :class:`Document` subclass (CreditNote and DebitNote give :class:`Invoice`,
    OrderResponseSimple gives :class:`OrderResponse`).

    Raises:
        DocumentError: ``UNSUPPORTED_DOCUMENT`` for any other root element;
            ``INTERPRETATION_FAILED`` when the document ``cbc:ID`` or a line ``cbc:ID`` is
            missing or empty (``line`` is the source line of the element lacking it) or a
            value cannot be read as a decimal or date.
    """
    tag = root.tag
    kind = _ROOT_KINDS.get(tag) if isinstance(tag, str) else None
    if kind is None:
        namespace, local = split_clark(tag) if isinstance(tag, str) else (None, repr(tag))
        raise DocumentError(
            ErrorCode.UNSUPPORTED_DOCUMENT,
            f"root element {local!r} in namespace {namespace!r} is not one of the UBL 2.1 "
            f"documents the gateway processes ({', '.join(k.value for k in DocumentKind)})",
            line=source_line(root),
        )
    return _READERS[kind](root, group_children(root), kind)


def read_stored(payload: bytes) -> Document:
    """The document in bytes the gateway already holds (checked when they arrived): the
    hardened parse, without a size limit, then :func:`interpret`."""
    from edi_gateway.ubl.parse import parse

    return interpret(parse(payload, max_size=len(payload) + 1))


@dataclass(frozen=True, slots=True)
class OrderParties:
    """What a document the gateway issues on an order takes from the stored Order: its
    profile (T01 or advanced ordering) and its buyer and seller parties."""

    profile_id: str | None
    buyer: Party | None
    seller: Party | None
    billed: Party | None = None
    """The invoicee (``cac:AccountingCustomerParty``), when the Order names one."""


def read_stored_parties(payload: bytes) -> OrderParties:
    """:class:`OrderParties` of an Order the gateway already holds, read exactly as
    :func:`read_stored` reads them, without reading its lines (a third of the time)."""
    from edi_gateway.ubl.parse import parse

    root = parse(payload, max_size=len(payload) + 1)
    if _ROOT_KINDS.get(root.tag) is not DocumentKind.ORDER:
        document = interpret(root)  # refused as read_stored refuses it, or not an Order
        raise GatewayError(
            ErrorCode.INTERNAL_ERROR, f"the stored order is a {document.kind.value}, not an Order"
        )
    kids = group_children(root)
    buyer, seller = read_buyer_seller(kids, DocumentKind.ORDER)
    return OrderParties(text_in(kids, _PROFILE), buyer, seller, read_billed(kids))
