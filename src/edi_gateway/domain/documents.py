"""Business documents of the order-to-invoice chain as plain dataclasses.

One base class carries what every document shares (identity, parties, references, lines);
subclasses add what is particular to their type. Amounts and quantities are ``Decimal``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, fields
from datetime import date
from decimal import Decimal
from functools import cache
from operator import attrgetter
from typing import TYPE_CHECKING, Any, TypeVar

from edi_gateway.domain.kinds import DocumentKind as DocumentKind  # noqa: PLC0414 (re-exported)
from edi_gateway.domain.order_data import Attachment, Contact, Delivery

_T = TypeVar("_T")

if TYPE_CHECKING:  # billing builds on this module; the annotation only needs the name
    from edi_gateway.domain.billing import AllowanceCharge


SELF_BILLING = "urn:cen.eu:en16931:2017#compliant#urn:fdc:peppol.eu:2017:poacc:selfbilling:3.0"
"""CustomizationID of Peppol BIS Self-Billing 3.0 (the buyer issues the seller's invoice)."""


def self_billed(customization_id: str | None) -> bool:
    """Whether a billing document with this CustomizationID is a self-billed one (issued by
    the buyer for the seller); a CIUS built on Self-Billing 3.0 (``...selfbilling:3.0#...``)
    counts too."""
    return (customization_id or "").strip().startswith(SELF_BILLING)


# Which side sends each kind: the buyer's documents are keyed to the buyer party, the rest to the
# seller (supplier) party. ApplicationResponse names its own sender party.
BUYER_SENT = frozenset(
    {
        DocumentKind.ORDER,
        DocumentKind.ORDER_CHANGE,
        DocumentKind.ORDER_CANCELLATION,
        DocumentKind.RECEIPT_ADVICE,
    }
)


@dataclass(frozen=True, slots=True)
class PartyId:
    """An identifier with its scheme (ISO 6523 ICD such as ``0088``), e.g. a GLN."""

    value: str
    scheme: str | None = None

    def key(self) -> str:
        """Canonical text form ``scheme:value`` (or the bare value without a scheme)."""
        return f"{self.scheme}:{self.value}" if self.scheme else self.value

    def __reduce__(self) -> tuple[type[PartyId], tuple[str, str | None]]:
        """Pickle as a constructor call (read-ahead sends documents between processes)."""
        return (PartyId, (self.value, self.scheme))


@dataclass(slots=True)
class Party:
    """A trading party: its electronic endpoint, its identifiers and its name."""

    endpoint: PartyId | None = None
    ids: list[PartyId] = field(default_factory=list)
    name: str | None = None
    vat_id: str | None = None
    country: str | None = None
    street: str | None = None
    city: str | None = None
    postal_zone: str | None = None
    company_id: PartyId | None = None
    """The legal registration (EN 16931 BT-30), e.g. a KVK number with scheme ``0106``."""

    def keys(self) -> list[str]:
        """Every key this party can be recognised by, most specific first."""
        out: list[str] = []
        if self.endpoint:
            out.append(self.endpoint.key())
        out.extend(pid.key() for pid in self.ids)
        if self.vat_id:
            out.append(self.vat_id)
        if not out and self.name:
            out.append(f"name:{self.name}")
        return list(dict.fromkeys(out))

    def key(self) -> str | None:
        """The primary key of this party (endpoint, else first identifier, else name)."""
        keys = self.keys()
        return keys[0] if keys else None

    def __reduce__(self) -> tuple[type[Party], tuple[Any, ...]]:
        """Pickle as one constructor call (see :func:`by_constructor`)."""
        return by_constructor(self)


@dataclass(frozen=True, slots=True)
class Quantity:
    """A quantity with its UN/ECE Rec 20 unit code."""

    value: Decimal
    unit: str | None = None

    def __reduce__(self) -> tuple[type[Quantity], tuple[Decimal, str | None]]:
        """Pickle as a constructor call, much faster than the frozen-slots default."""
        return (Quantity, (self.value, self.unit))


@dataclass(slots=True)
class Line:
    """A document line. Which fields are set depends on the document type.

    ``order_line_ref`` is the ``OrderLineReference/LineID`` that ties a response, despatch or
    invoice line to a line of the order; on an order line it is ``None`` and ``line_id`` is the
    order line number.
    """

    line_id: str
    quantity: Quantity | None = None
    order_line_ref: str | None = None
    item_name: str | None = None
    seller_item_id: str | None = None
    buyer_item_id: str | None = None
    standard_item_id: str | None = None
    price: Decimal | None = None
    line_amount: Decimal | None = None
    status_code: str | None = None
    backorder_quantity: Quantity | None = None
    delivery_date: date | None = None
    note: str | None = None
    delivery_place: str | None = None
    """Where an order line is to be delivered when it says so itself (its ``cac:Delivery``
    location: name, ID and address on one line; docs/adr/0029)."""
    handling_unit: str | None = None
    """On a despatch line: the SSCC of the box (transport handling unit) it is packed in."""
    base_quantity: Decimal | None = None
    """The number of units ``price`` is for (``cac:Price/cbc:BaseQuantity``, BT-149) when the
    Order gave one; set on the lines the gateway answers and bills with (readers leave it)."""

    def __reduce__(self) -> tuple[type[Line], tuple[Any, ...]]:
        """Pickle as one constructor call (read-ahead sends thousands of lines between
        processes; see :func:`by_constructor`)."""
        return by_constructor(self)


def by_constructor(obj: _T) -> tuple[type[_T], tuple[Any, ...]]:
    """``obj`` (a dataclass without ``init=False`` fields) pickled as one call of its class
    with every field in order: a third faster to load than the default slot by slot, and the
    values are read by one C-level getter per class, not a ``fields()`` walk. Read-ahead
    (``pipeline/readahead.py``) sends every document it examined between processes."""
    cls = type(obj)
    kind: type = cls  # the class object is hashable (its instances need not be)
    return (cls, _field_values(kind)(obj))


@cache
def _field_values(cls: type) -> Callable[[Any], tuple[Any, ...]]:
    """A dataclass's field values in constructor order, as one tuple."""
    names = [f.name for f in fields(cls)]
    get = attrgetter(*names)
    return get if len(names) > 1 else lambda obj: (get(obj),)


@dataclass(slots=True)
class Document:
    """What every interpreted document has."""

    kind: DocumentKind
    document_id: str
    issue_date: date | None = None
    customization_id: str | None = None
    profile_id: str | None = None
    currency: str | None = None
    buyer: Party | None = None
    seller: Party | None = None
    order_refs: list[str] = field(default_factory=list)
    billing_refs: list[str] = field(default_factory=list)
    despatch_refs: list[str] = field(default_factory=list)
    lines: list[Line] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def sender(self) -> Party | None:
        """The party that sent this document (buyer for orders, seller for replies)."""
        return self.buyer if self._buyer_sends() else self.seller

    def receiver(self) -> Party | None:
        """The party this document is addressed to."""
        return self.seller if self._buyer_sends() else self.buyer

    def _buyer_sends(self) -> bool:
        """Buyer documents, and self-billed invoices and credit notes (the buyer issues them
        for the seller, who receives them)."""
        return self.kind in BUYER_SENT or self_billed(self.customization_id)

    def referenced_documents(self) -> list[str]:
        """The numbers of the documents this one answers or corrects (a credit note's
        invoices, a receipt advice's despatch advices), by which it finds its order when it
        names none (``pipeline/correlate.py``)."""
        return self.billing_refs + self.despatch_refs

    def __reduce__(self) -> tuple[type[Document], tuple[Any, ...]]:
        """Pickle as one constructor call of its kind's class (see :func:`by_constructor`)."""
        return by_constructor(self)

    def waits_for(self) -> str | None:
        """The number an orphan of this document waits for: its order's, else the first
        document it references (``documents.order_ref``)."""
        refs = self.order_refs or self.referenced_documents()
        return refs[0] if refs else None

    def preceding_ref(self) -> str | None:
        """The number an orphan of this document also waits for, besides its order's: a
        bill's (:class:`Invoice`) preceding invoice (``documents.preceding_ref``)."""
        return None


@dataclass(slots=True)
class Order(Document):
    """UBL Order (Peppol T01), with what it says besides parties and lines (all optional;
    see :mod:`edi_gateway.domain.order_data`)."""

    total_amount: Decimal | None = None
    order_type: str | None = None
    """``cbc:OrderTypeCode`` as sent (None: not sent, which Peppol reads as 220)."""
    buyer_reference: str | None = None
    """``cbc:CustomerReference``: the buyer's own reference for the order."""
    delivery: Delivery | None = None
    buyer_contact: Contact | None = None
    seller_contact: Contact | None = None
    attachments: list[Attachment] = field(default_factory=list)
    billed: Party | None = None
    """``cac:AccountingCustomerParty``: who the buyer asks to be invoiced, when it says so. An
    invoice names it as its buyer, so its keys find the order too (ADR 0005)."""


@dataclass(slots=True)
class OrderChange(Document):
    """UBL OrderChange (Peppol T114): line actions by ``LineStatusCode`` (domain/order_change.py).

    ``sequence_id`` is ``cbc:SequenceNumberID`` as written; ``sequence`` its value when it is a
    whole number.
    """

    sequence: int | None = None
    sequence_id: str | None = None
    billed: Party | None = None
    """The invoicee (``cac:AccountingCustomerParty``) when the change names one: it replaces
    the order's (``pipeline/order_change.set_invoicee``)."""


@dataclass(slots=True)
class OrderCancellation(Document):
    """UBL OrderCancellation (Peppol T115)."""

    reason: str | None = None


@dataclass(slots=True)
class OrderResponse(Document):
    """UBL OrderResponse (Peppol T76) or OrderResponseSimple.

    ``response_code`` is the UNCL 4343 subset ``AB`` / ``AP`` / ``RE`` / ``CA``; for
    OrderResponseSimple it is derived from ``AcceptedIndicator`` (``AP`` or ``RE``).
    """

    response_code: str | None = None
    reason: str | None = None
    substitutes: dict[str, Substitute] = field(default_factory=dict)
    """Seller substitutions on a CA response, keyed by order line ID (T76
    ``cac:SellerSubstitutedLineItem``); the substituted line itself has status ``3``."""


@dataclass(frozen=True, slots=True)
class Substitute:
    """The item a seller delivers instead of the one ordered on a line."""

    seller_item_id: str
    name: str


@dataclass(slots=True)
class DespatchAdvice(Document):
    """UBL DespatchAdvice (Peppol T16)."""

    carrier: str | None = None
    tracking_id: str | None = None
    tracking_url: str | None = None
    despatch_date: date | None = None
    estimated_delivery_date: date | None = None
    shipment_id: str | None = None
    """``cac:Shipment/cbc:ID`` (e.g. an SSCC); writers send ``NA`` when unknown, as Peppol does."""


@dataclass(slots=True)
class ReceiptAdvice(Document):
    """UBL ReceiptAdvice: what the buyer actually received."""


@dataclass(slots=True)
class Invoice(Document):
    """UBL Invoice (380, or 383 as a Peppol debit note), CreditNote (381) or DebitNote.

    Quantities on a credit note are positive and count as credited. An Invoice with type code
    383 or a UBL DebitNote corrects amounts (a debit adds to what is owed) and moves no
    quantities: see docs/adr/0003-order-status-derived-from-a-ledger.md.
    """

    type_code: str | None = None
    tax_exclusive_amount: Decimal | None = None
    tax_amount: Decimal | None = None
    payable_amount: Decimal | None = None
    due_date: date | None = None
    allowances_charges: list[AllowanceCharge] = field(default_factory=list)
    """Document-level allowances and charges (EN 16931 BG-20 / BG-21)."""
    prepaid_amount: Decimal | None = None
    payment_terms: str | None = None
    iban: str | None = None
    """The payee's account (``PayeeFinancialAccount/ID``): an IBAN, a Bankgiro number ..."""
    bic: str | None = None
    """The account's institution (``FinancialInstitutionBranch/ID``): a BIC, ``SE:BANKGIRO`` ..."""
    payment_means_code: str | None = None
    """UNCL 4461; None: 30 (credit transfer), for the invoices the gateway issues."""
    payment_id: str | None = None
    """The payment reference (BT-83); None: the invoice number, for those the gateway issues."""
    reason: str | None = None
    """Why a credit or debit note was issued (written as its note)."""

    def preceding_ref(self) -> str | None:
        """The first preceding invoice (EN 16931 BT-25) of a bill that also names an order
        number (BT-13): when that number finds no order, the invoice's order decides
        (``correlate._with_preceding``), so an orphan of it waits for the invoice to attach as
        well as for the order (ADR 0005). None when it names no order: it then waits for that
        invoice by :meth:`waits_for` alone."""
        return self.billing_refs[0] if self.order_refs and self.billing_refs else None


@dataclass(slots=True)
class ApplicationResponse(Document):
    """UBL ApplicationResponse (Peppol MLR T71 / Invoice Response T111)."""

    response_code: str | None = None
    referenced_document_ids: list[str] = field(default_factory=list)

    def referenced_documents(self) -> list[str]:
        """The documents this response is about (``DocumentReference``)."""
        return self.referenced_document_ids
