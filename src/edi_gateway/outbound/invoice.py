"""Invoices, credit notes and debit notes (Peppol BIS Billing 3.0) the gateway issues on an order.

* An **invoice** (Invoice 380) bills what was despatched and is not invoiced yet (net of
  credits), or the lines and quantities asked for, at the order lines' prices.
* A **credit note** (CreditNote 381) credits lines of one invoice of the order (``credit_of``),
  at most what that invoice billed less what earlier credit notes of it credited.
* A **debit note** (``debit_of``) bills an extra amount on lines of one invoice of the order: a
  Peppol Invoice 383 referring to it, or a UBL DebitNote for a buyer whose profile says
  ``debit_note_as: debitnote``. Debit notes correct amounts and do not move quantities.

Over-invoicing, over-crediting and billing a cancelled or rejected order are refused
(``NOT_ALLOWED``) unless forced, and a forced document is recorded in the order's history;
unknown lines and invoice numbers are always refused. The seller comes from the supplier's
``legal`` profile, VAT from the order line's ``ClassifiedTaxCategory`` else the supplier's
default. Numbers are ``INV-<order>-<n>``, ``CN-<order>-<n>``, ``DN-<order>-<n>``, unique per
supplier. Issuing goes through :mod:`edi_gateway.outbound.issuing`: written, XSD-checked,
recorded (the ledger's invoiced / credited quantities and the status move), queued.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING

from sqlalchemy import select

from edi_gateway.domain.billing import STANDARD, AllowanceCharge, InvoiceLine
from edi_gateway.domain.documents import DocumentKind, Invoice, Party, PartyId, Quantity
from edi_gateway.domain.status import OrderStatus
from edi_gateway.outbound.issuing import (
    Issued,
    NotAllowed,
    buyer_connector,
    on_order,
    original_order,
    record_and_queue,
    written,
)

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from edi_gateway.config import Settings
    from edi_gateway.config_models import LegalProfile, Partner
    from edi_gateway.domain.documents import Order
    from edi_gateway.store.db import Store
    from edi_gateway.store.tables import DocumentRow, OrderLine
    from edi_gateway.store.tables import Order as OrderRow

ZERO = Decimal(0)
NOT_BILLABLE = {OrderStatus.CANCELLED.value, OrderStatus.REJECTED.value}
DEBIT_NOTE_CODE = "383"
_BILLING_KINDS = (DocumentKind.INVOICE, DocumentKind.CREDIT_NOTE, DocumentKind.DEBIT_NOTE)


@dataclass(frozen=True, slots=True)
class LineRequest:
    """One order line to bill: its quantity (None = all there is room for) and, optionally,
    a price other than the order line's (or, for a credit, the invoiced one)."""

    line_id: str
    quantity: Decimal | None = None
    price: Decimal | None = None


@dataclass(frozen=True, slots=True)
class InvoiceRequest:
    """What to issue. No lines: every line with room (see the module docstring).

    ``credit_of`` / ``debit_of`` name an invoice of this order (at most one of them);
    ``allowances_charges`` are document-level (freight, discounts); ``reason`` is the note.
    """

    lines: tuple[LineRequest, ...] = field(default_factory=tuple)
    credit_of: str | None = None
    debit_of: str | None = None
    reason: str | None = None
    allowances_charges: tuple[AllowanceCharge, ...] = field(default_factory=tuple)


@dataclass(frozen=True, slots=True)
class _Room:
    """How much each order line may be billed now, and at which price by default."""

    quantity: dict[int, Decimal]
    price: dict[int, Decimal | None]
    what: str
    invoice: str | None = None


def invoice(
    store: Store,
    settings: Settings,
    order_ref: str,
    request: InvoiceRequest,
    *,
    actor: str,
    force: bool = False,
) -> Issued:
    """Issue an invoice, credit note or debit note for the order ``order_ref``; record, queue."""
    return on_order(
        store,
        order_ref,
        lambda s, o: issue_invoice(s, settings, o, request, actor=actor, force=force),
    )


def issue_invoice(
    session: Session,
    settings: Settings,
    order: OrderRow,
    request: InvoiceRequest,
    *,
    actor: str,
    force: bool = False,
) -> Issued:
    """``invoice`` inside the caller's transaction."""
    from edi_gateway.pipeline.history import record
    from edi_gateway.store.tables import OrderLine
    from edi_gateway.ubl.write import write_debit_note, write_invoice

    _check_request(request)
    forced: list[str] = []
    if order.status in NOT_BILLABLE:
        if not force:
            raise NotAllowed(f"order {order.order_number} is {order.status}: use --force to bill")
        forced.append(f"order is {order.status}")
    connector = buyer_connector(settings, order)
    supplier, legal = _supplier(settings, order)
    buyer = settings.partner(order.buyer_partner) if order.buyer_partner else None
    lines = list(
        session.scalars(
            select(OrderLine).where(OrderLine.order_id == order.id).order_by(OrderLine.position)
        )
    )
    room = _room(session, order, lines, request)
    chosen, over = _chosen(lines, request, room)
    if over and not force:
        raise NotAllowed(f"more than {room.what} on line(s) {'; '.join(over)}; or use --force")
    forced += over
    vat = _order_vat(session, order)
    document = _compose(session, order, request, buyer=buyer, supplier=supplier, legal=legal)
    document.lines = [
        _line(line, qty, price, vat.get(line.line_id), legal) for line, qty, price in chosen
    ]
    payload = written(
        document, write_debit_note if document.kind is DocumentKind.DEBIT_NOTE else write_invoice
    )
    issued = record_and_queue(session, order, document, payload, connector=connector, actor=actor)
    if forced:
        detail = f"{document.document_id}: " + "; ".join(forced)
        record(session, "invoice.forced", detail, actor=actor, order_id=order.id)
    return issued


def _check_request(request: InvoiceRequest) -> None:
    if request.credit_of and request.debit_of:
        raise NotAllowed("a document is either a credit note or a debit note, not both")
    ids = [line.line_id for line in request.lines]
    if len(ids) != len(set(ids)):
        raise NotAllowed("a line is given twice; give each line once")
    for line in request.lines:
        if line.quantity is not None and line.quantity <= ZERO:
            raise NotAllowed(f"line {line.line_id}: a billed quantity must be more than 0")
        if line.price is not None and line.price < ZERO:
            raise NotAllowed(f"line {line.line_id}: a price cannot be negative (BR-27)")


def _supplier(settings: Settings, order: OrderRow) -> tuple[Partner, LegalProfile]:
    partner = settings.partner(order.seller_partner) if order.seller_partner else None
    if partner is None and order.seller_key:
        partner = settings.partner_by_key([order.seller_key])
    if partner is None:
        raise NotAllowed(
            f"the supplier of order {order.order_number} ({order.seller_key}) is not a partner "
            f"in {settings.path}; add it with its legal profile (partners[].legal) first"
        )
    if partner.legal is None:
        raise NotAllowed(
            f"partner {partner.id!r} has no legal profile: set partners[].legal (name, "
            f"country, VAT number, IBAN, payment terms) in {settings.path} to invoice"
        )
    if not partner.legal.payment_terms:
        raise NotAllowed(f"set partners[].legal.payment_terms of {partner.id!r} (BR-CO-25)")
    return partner, partner.legal


def _room(
    session: Session, order: OrderRow, lines: list[OrderLine], request: InvoiceRequest
) -> _Room:
    number = request.credit_of or request.debit_of
    if number is None:
        left = {
            line.id: line.qty_despatched - line.qty_invoiced + line.qty_credited for line in lines
        }
        prices = {line.id: line.price for line in lines}
        return _Room(left, prices, "was despatched and not yet invoiced")
    found = {row.doc_number: row for row in _rows(session, order, DocumentKind.INVOICE)}
    if number not in found:
        known = ", ".join(found) or "none"
        raise NotAllowed(f"order {order.order_number} has no invoice {number}; it has: {known}")
    billed, prices = _ledger(session, found[number].id)
    if request.debit_of:
        return _Room(billed, prices, f"invoice {number} billed", number)
    for note in _rows(session, order, DocumentKind.CREDIT_NOTE):
        if number in _stored(session, note).billing_refs:
            for line_id, quantity in _ledger(session, note.id)[0].items():
                billed[line_id] = billed.get(line_id, ZERO) - quantity
    return _Room(billed, prices, f"invoice {number} billed and was not credited yet", number)


def _rows(session: Session, order: OrderRow, kind: DocumentKind) -> list[DocumentRow]:
    """The order's attached documents of ``kind``, oldest first."""
    from edi_gateway.store.tables import DocumentRow

    query = select(DocumentRow).where(
        DocumentRow.order_id == order.id,
        DocumentRow.kind == kind.value,
        DocumentRow.state == "attached",
    )
    return list(session.scalars(query.order_by(DocumentRow.id)))


def _ledger(
    session: Session, document_id: int
) -> tuple[dict[int, Decimal], dict[int, Decimal | None]]:
    """Per order line, the quantity a document moved and its price."""
    from edi_gateway.store.tables import DocumentLine

    quantities: dict[int, Decimal] = {}
    prices: dict[int, Decimal | None] = {}
    for row in session.scalars(select(DocumentLine).where(DocumentLine.document_id == document_id)):
        if row.order_line_id is not None and row.quantity is not None:
            quantities[row.order_line_id] = quantities.get(row.order_line_id, ZERO) + row.quantity
            prices[row.order_line_id] = row.price
    return quantities, prices


def _payload(session: Session, row: DocumentRow) -> bytes | None:
    """The bytes of a document: its received message, or the outbox row the gateway queued."""
    from edi_gateway.store.tables import Message, OutboxRow

    if row.message_id is not None:
        return session.scalar(select(Message.payload).where(Message.id == row.message_id))
    query = select(OutboxRow.payload).where(OutboxRow.document_id == row.id)
    return session.scalar(query.limit(1))


def _stored(session: Session, row: DocumentRow) -> Invoice:
    from edi_gateway.ubl.parse import parse
    from edi_gateway.ubl.read import interpret

    payload = _payload(session, row)
    document = interpret(parse(payload, max_size=len(payload) + 1)) if payload else None
    if not isinstance(document, Invoice):
        raise NotAllowed(f"{row.kind} {row.doc_number} has no readable stored copy")
    return document


def _chosen(
    lines: list[OrderLine], request: InvoiceRequest, room: _Room
) -> tuple[list[tuple[OrderLine, Decimal, Decimal | None]], list[str]]:
    if not request.lines:
        chosen = [
            (line, room.quantity[line.id], room.price.get(line.id))
            for line in lines
            if room.quantity.get(line.id, ZERO) > ZERO
        ]
        if not chosen:
            raise NotAllowed(f"nothing to bill: no line has more than {room.what}")
        return chosen, []
    by_id = {line.line_id: line for line in lines}
    unknown = [r.line_id for r in request.lines if r.line_id not in by_id]
    if unknown:
        raise NotAllowed(f"no order line {', '.join(unknown)}; the lines are: {', '.join(by_id)}")
    out: list[tuple[OrderLine, Decimal, Decimal | None]] = []
    over: list[str] = []
    for asked in request.lines:
        line = by_id[asked.line_id]
        if line.id not in room.quantity:
            raise NotAllowed(f"line {asked.line_id} is not on the invoice {room.invoice}")
        available = max(room.quantity[line.id], ZERO)
        quantity = available if asked.quantity is None else asked.quantity
        if quantity > available or quantity <= ZERO:
            over.append(f"{asked.line_id}: {quantity} asked, {available} {room.what}")
        price = room.price.get(line.id) if asked.price is None else asked.price
        out.append((line, quantity, price))
    return out, over


def _order_vat(session: Session, order: OrderRow) -> dict[str, tuple[str, Decimal | None]]:
    """Per order line ID, the VAT category and rate the received Order gave the item, if any."""
    from edi_gateway.ubl.namespaces import cac, cbc
    from edi_gateway.ubl.parse import parse

    received = _rows(session, order, DocumentKind.ORDER)
    payload = _payload(session, received[0]) if received else None
    found: dict[str, tuple[str, Decimal | None]] = {}
    items = parse(payload, max_size=len(payload) + 1) if payload else None
    path = f"{cac('OrderLine')}/{cac('LineItem')}"
    for item in items.iterfind(path) if items is not None else ():
        line_id = (item.findtext(cbc("ID")) or "").strip()
        category = item.find(f"{cac('Item')}/{cac('ClassifiedTaxCategory')}")
        code = (category.findtext(cbc("ID")) or "").strip() if category is not None else ""
        if line_id and code and category is not None:
            found[line_id] = (code, _decimal(category.findtext(cbc("Percent"))))
    return found


def _decimal(text: str | None) -> Decimal | None:
    try:
        return Decimal(text.strip()) if text and text.strip() else None
    except InvalidOperation:
        return None


def _compose(
    session: Session,
    order: OrderRow,
    request: InvoiceRequest,
    *,
    buyer: Partner | None,
    supplier: Partner,
    legal: LegalProfile,
) -> Invoice:
    original = original_order(session, order)
    kind, prefix = DocumentKind.INVOICE, "INV"
    code: str | None = "380"
    if request.credit_of:
        kind, code, prefix = DocumentKind.CREDIT_NOTE, "381", "CN"
    elif request.debit_of:
        prefix, code = "DN", DEBIT_NOTE_CODE
        if buyer is not None and buyer.debit_note_as == "debitnote":
            kind, code = DocumentKind.DEBIT_NOTE, None
    seller = _seller(original, supplier, legal)
    if not order.currency:
        raise NotAllowed(f"order {order.order_number} has no currency to invoice in")
    reference = request.credit_of or request.debit_of
    return Invoice(
        kind=kind,
        document_id=_number(session, order, seller, prefix),
        issue_date=datetime.now(UTC).date(),
        currency=order.currency,
        buyer=_buyer(original, buyer, order),
        seller=seller,
        order_refs=[order.order_number],
        billing_refs=[reference] if reference else [],
        type_code=code,
        allowances_charges=list(request.allowances_charges),
        payment_terms=legal.payment_terms,
        iban=legal.iban,
        bic=legal.bic,
        reason=request.reason,
    )


def _number(session: Session, order: OrderRow, seller: Party, prefix: str) -> str:
    """``<prefix>-<order>-<n>``: the first n not yet used by this supplier's billing documents."""
    from edi_gateway.store.tables import DocumentRow

    stem = f"{prefix}-{order.order_number}-"
    taken = set(
        session.scalars(
            select(DocumentRow.doc_number).where(
                DocumentRow.kind.in_([k.value for k in _BILLING_KINDS]),
                DocumentRow.sender_key == seller.key(),
                DocumentRow.doc_number.like(f"{stem}%"),
            )
        )
    )
    n = 1
    while f"{stem}{n}" in taken:
        n += 1
    return f"{stem}{n}"


def _seller(original: Order, partner: Partner, legal: LegalProfile) -> Party:
    party = original.seller or Party()
    endpoint = party.endpoint or PartyId(partner.endpoint.value, partner.endpoint.scheme)
    return _with_legal(Party(endpoint=endpoint, ids=party.ids or [endpoint]), legal)


def _buyer(original: Order, partner: Partner | None, order: OrderRow) -> Party:
    party = original.buyer or Party()
    if partner is not None and partner.legal is not None:
        return _with_legal(party, partner.legal)
    if not party.country:
        raise NotAllowed(
            f"the buyer's country of order {order.order_number} is unknown: set "
            "partners[].legal of the buyer (name, address, country, VAT number)"
        )
    return party


def _with_legal(party: Party, legal: LegalProfile) -> Party:
    """``party`` with the legal profile's name, address and numbers (the profile wins)."""
    company = legal.company_id
    return Party(
        endpoint=party.endpoint,
        ids=party.ids,
        name=legal.registration_name or party.name,
        vat_id=legal.vat_id or party.vat_id,
        country=legal.country,
        street=legal.street or party.street,
        city=legal.city or party.city,
        postal_zone=legal.postal_zone or party.postal_zone,
        company_id=PartyId(company.value, company.scheme) if company else party.company_id,
    )


def _line(
    line: OrderLine,
    quantity: Decimal,
    price: Decimal | None,
    vat: tuple[str, Decimal | None] | None,
    legal: LegalProfile,
) -> InvoiceLine:
    if price is None:
        raise NotAllowed(f"order line {line.line_id} has no price: give one for it")
    category, rate = vat or (legal.default_vat_category, legal.default_vat_rate)
    if rate is None and category == legal.default_vat_category:  # the order named no rate
        rate = legal.default_vat_rate
    if category == STANDARD and rate is None:
        raise NotAllowed("set partners[].legal.default_vat_rate of the supplier (e.g. 25)")
    billed = InvoiceLine(line_id=line.line_id, quantity=Quantity(quantity, line.unit))
    billed.order_line_ref = line.line_id
    billed.item_name = line.item_name or line.line_id
    billed.seller_item_id = line.seller_item_id
    billed.buyer_item_id = line.buyer_item_id
    billed.standard_item_id = line.standard_item_id
    billed.price = price
    billed.vat_category = category
    billed.vat_rate = rate if rate is not None else (None if category == "O" else ZERO)
    return billed


def relayed_invoice(
    session: Session, settings: Settings, order: OrderRow, source: Invoice
) -> tuple[Invoice, bytes, str]:
    """The buyer's Billing 3.0 copy of a supplier's own invoice: its number, date and lines
    (quantities and prices as the supplier billed them), the seller data from the supplier's
    legal profile; with the bytes to send and the buyer's connector. Nothing is recorded."""
    from edi_gateway.store.tables import OrderLine
    from edi_gateway.ubl.write import write_invoice

    connector = buyer_connector(settings, order)
    supplier, legal = _supplier(settings, order)
    buyer = settings.partner(order.buyer_partner) if order.buyer_partner else None
    by_id = {
        line.line_id: line
        for line in session.scalars(select(OrderLine).where(OrderLine.order_id == order.id))
    }
    vat = _order_vat(session, order)
    document = _compose(
        session, order, InvoiceRequest(), buyer=buyer, supplier=supplier, legal=legal
    )
    document.document_id = source.document_id
    document.issue_date = source.issue_date or document.issue_date
    document.lines = []
    for billed in source.lines:
        line = by_id.get(billed.order_line_ref or "")
        if line is None or billed.quantity is None:
            raise NotAllowed(f"supplier invoice line {billed.line_id} names no order line")
        price = billed.price if billed.price is not None else line.price
        document.lines.append(
            _line(line, billed.quantity.value, price, vat.get(line.line_id), legal)
        )
    return document, written(document, write_invoice), connector
