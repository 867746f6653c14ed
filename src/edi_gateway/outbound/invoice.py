"""Invoices, credit notes and debit notes (Peppol BIS Billing 3.0) the gateway issues on an order.

* An **invoice** (Invoice 380) bills what was despatched and is not invoiced yet (net of
  credits), or the lines and quantities asked for, at the order lines' prices.
* A **credit note** (CreditNote 381) credits lines of one invoice of the order (``credit_of``),
  at most what that invoice billed less what earlier credit notes of it credited.
* A **debit note** (``debit_of``) bills an extra amount on lines of one invoice of the order: a
  Peppol Invoice 383 referring to it, or a UBL DebitNote for a buyer whose profile says
  ``debit_note_as: debitnote``. Debit notes correct amounts and do not move quantities.
  An **amount-only** debit note (``amount``: a fee, a price correction) has one line of that
  net amount (quantity 1 ``C62``, named by the reason), refers to no order line and bills no
  order quantity.
* For a supplier with ``self_billing: true`` the three are Peppol **Self-Billing 3.0**
  documents (the buyer, or this gateway for it, issues them): Invoice 389, CreditNote 261,
  Invoice 527, numbered ``SB-INV-``, ``SB-CN-``, ``SB-DN-`` and sent to the supplier through
  its ``outbound`` connector. The seller is still the supplier (ADR 0027).

Over-invoicing, over-crediting and billing a cancelled or rejected order are refused
(``NOT_ALLOWED``) unless forced, and a forced document is recorded in the order's history;
unknown lines and invoice numbers are always refused. The seller comes from the supplier's
``legal`` profile, VAT from the order line's ``ClassifiedTaxCategory`` else the supplier's
default. Numbers are ``INV-<order>-<n>``, ``CN-<order>-<n>``, ``DN-<order>-<n>``, unique per
supplier. Issuing goes through :mod:`edi_gateway.outbound.issuing`: written, XSD-checked,
recorded (the ledger's invoiced / credited quantities and the status move), queued.

What the order's latest accepting Order Response agreed reaches the invoice
(:mod:`edi_gateway.outbound.agreed`): its changed prices, and its added charge and discount
lines as document-level allowances and charges of the order's first invoice.

The rooms: :mod:`.invoice_ledger` (what may be billed, at which price), :mod:`.invoice_parties`
(seller, buyer, number, self-billing), :mod:`.agreed` (what the response agreed),
:mod:`.invoice_amount` (amount-only debit notes).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING

from edi_gateway.domain.billing import (
    OUT_OF_SCOPE,
    STANDARD,
    AllowanceCharge,
    InvoiceLine,
    vat_categories,
)
from edi_gateway.domain.documents import DocumentKind, Invoice, Party, Quantity
from edi_gateway.domain.status import OrderStatus
from edi_gateway.outbound import invoice_amount as amounts
from edi_gateway.outbound import invoice_ledger as ledger
from edi_gateway.outbound import invoice_parties as parties
from edi_gateway.outbound import order_charges
from edi_gateway.outbound.agreed import Agreed, agreed, invoiced_before
from edi_gateway.outbound.charges import Vat, common_vat
from edi_gateway.outbound.issuing import (
    Issued,
    NotAllowed,
    QuantityExceeded,
    bill_recipient,
    on_order,
    original_parties,
    record_and_queue,
    written,
)

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from edi_gateway.config import LegalProfile, Partner, Settings
    from edi_gateway.store.db import Store
    from edi_gateway.store.tables import Order as OrderRow
    from edi_gateway.store.tables import OrderLine

ZERO = Decimal(0)
NOT_BILLABLE = {OrderStatus.CANCELLED.value, OrderStatus.REJECTED.value}
DEBIT_NOTE_CODE = "383"
NO_ITEM = ledger.OrderItem()
"""An order line the buyer's documents say nothing more of (no VAT, price per unit)."""


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

    ``amount`` makes a debit note amount-only (no ``lines``; ``reason`` names it) with ``vat``,
    else the VAT the order lines share, else the supplier's default.
    ``credit_of`` / ``debit_of`` name an invoice of this order (at most one of them);
    ``allowances_charges`` are document-level (freight, discounts); ``reason`` is the note.
    ``rebill_credited``: an invoice may bill credited quantities again (ADR 0024).
    """

    lines: tuple[LineRequest, ...] = field(default_factory=tuple)
    credit_of: str | None = None
    debit_of: str | None = None
    reason: str | None = None
    amount: Decimal | None = None
    vat: Vat | None = None
    allowances_charges: tuple[AllowanceCharge, ...] = field(default_factory=tuple)
    rebill_credited: bool = False


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
    from edi_gateway.store.queries import order_lines
    from edi_gateway.ubl.write import write_debit_note, write_invoice

    check_request(request)
    forced: list[str] = []
    if order.status in NOT_BILLABLE:
        if not force:
            raise NotAllowed(f"order {order.order_number} is {order.status}: use --force to bill")
        forced.append(f"order is {order.status}")
    supplier, legal = parties.supplier(settings, order)
    buyer = settings.partner(order.buyer_partner) if order.buyer_partner else None
    lines = order_lines(session, order)
    plain = not (request.credit_of or request.debit_of)
    terms = agreed(session, order) if plain else Agreed()
    number = request.credit_of or request.debit_of
    room = ledger.room(
        session,
        order,
        lines,
        number,
        debit=bool(request.debit_of),
        prices=terms.prices,
        rebill_credited=request.rebill_credited,
    )
    amount_only = request.amount is not None  # bills no order line: nothing to choose
    chosen, over = ([], []) if amount_only else ledger.chosen(lines, request.lines, room)
    if over and not force:
        raise QuantityExceeded(
            f"more than {room.what} on line(s) {'; '.join(over)}; or use --force"
        )
    forced += over
    items, stated = ledger.order_terms(session, order)
    vat = ledger.stated_vat(items)
    document = _compose(
        session, order, request, settings, buyer=buyer, supplier=supplier, legal=legal
    )
    recipient, connector = _recipient(settings, order, supplier, document.buyer)
    document.lines = [
        _line(line, qty, price, items.get(line.line_id, NO_ITEM), legal)
        for line, qty, price in chosen
    ]

    def default() -> Vat:  # of an allowance or a charge that states no VAT
        return _default_vat((vat.get(line.line_id) for line in lines), legal)

    carried = _order_own(
        session,
        order,
        request,
        document,
        terms=(items, stated),
        chosen=chosen,
        room=room,
        default=default,
    )
    if request.amount is not None:
        charged = request.vat or default()
        document.lines = [amounts.amount_line(request.amount, request.reason, charged)]
    if terms.added and not invoiced_before(session, order):  # the first invoice carries them
        document.allowances_charges[:0] = terms.allowances_charges(default())
    may_wait = plain and not _completes(lines, chosen)  # a credit note reverses all it says
    order_charges.keep_positive(document, carried.document, may_wait=may_wait)
    check_categories(document)
    payload = written(
        document, write_debit_note if document.kind is DocumentKind.DEBIT_NOTE else write_invoice
    )
    issued = record_and_queue(
        session,
        order,
        document,
        payload,
        connector=connector,
        actor=actor,
        settings=settings,
        lines=lines,
        recipient=recipient,
    )
    if forced:
        detail = f"{document.document_id}: " + "; ".join(forced)
        record(session, "invoice.forced", detail, actor=actor, order_id=order.id)
    if request.rebill_credited:
        again = [f"line {ln.line_id}: {q} (credited {ln.qty_credited})" for ln, q, _ in chosen]
        detail = f"{document.document_id} bills credited quantities again: " + "; ".join(again)
        record(session, "invoice.rebill_credited", detail, actor=actor, order_id=order.id)
    return issued


def _order_own(
    session: Session,
    order: OrderRow,
    request: InvoiceRequest,
    document: Invoice,
    *,
    terms: tuple[dict[str, ledger.OrderItem], tuple[AllowanceCharge, ...]],
    chosen: list[tuple[OrderLine, Decimal, Decimal | None]],
    room: ledger.Room,
    default: Callable[[], Vat],
) -> order_charges.Carried:
    """Put the order's own allowances and charges on ``document`` (ADR 0048): an invoice's
    share of them, or what a credit note reverses (a debit note: none); return them."""
    carried = order_charges.Carried()
    if not (request.credit_of or request.debit_of):
        carried = order_charges.for_invoice(session, order, terms, chosen, default)
    elif request.credit_of:
        stated = terms[1] if _credits_all(chosen, room) else ()
        carried = order_charges.for_credit(session, order, request.credit_of, chosen, stated)
    for line in document.lines:
        if isinstance(line, InvoiceLine):
            line.allowances_charges = carried.lines.get(line.line_id, [])
    document.allowances_charges += carried.document
    return carried


def _credits_all(
    chosen: list[tuple[OrderLine, Decimal, Decimal | None]], room: ledger.Room
) -> bool:
    """Whether a credit note of ``chosen`` leaves nothing of its invoice uncredited."""
    credited = {line.id: quantity for line, quantity, _ in chosen}
    return all(credited.get(line_id, ZERO) >= left for line_id, left in room.quantity.items())


def _completes(
    lines: list[OrderLine], chosen: list[tuple[OrderLine, Decimal, Decimal | None]]
) -> bool:
    """Whether, with ``chosen`` billed, every order line is billed (net of credits) in full."""
    billed = {line.id: quantity for line, quantity, _ in chosen}
    return all(
        line.qty_invoiced - line.qty_credited + billed.get(line.id, ZERO) >= line.qty_ordered
        for line in lines
    )


def _recipient(
    settings: Settings, order: OrderRow, supplier: Partner, billed: Party | None
) -> tuple[str, str]:
    """Who a billing document goes to, and through which connector: its Buyer (``billed``,
    the invoicee when the order names one: ``bill_recipient``), or, for a self-billed
    supplier, the supplier itself (the buyer issues, the seller receives)."""
    if supplier.self_billing and supplier.outbound is not None:
        return supplier.id, supplier.outbound
    return bill_recipient(settings, order, billed)


def check_request(request: InvoiceRequest) -> None:
    """NotAllowed when ``request`` can never be issued, whatever the order."""
    if request.credit_of and request.debit_of:
        raise NotAllowed("a document is either a credit note or a debit note, not both")
    if request.rebill_credited and (request.credit_of or request.debit_of):
        raise NotAllowed("--rebill-credited goes with an invoice, not a credit or debit note")
    ids = [line.line_id for line in request.lines]
    if len(ids) != len(set(ids)):
        raise NotAllowed("a line is given twice; give each line once")
    for line in request.lines:
        if line.quantity is not None and line.quantity <= ZERO:
            raise NotAllowed(f"line {line.line_id}: a billed quantity must be more than 0")
        if line.price is not None and line.price < ZERO:
            raise NotAllowed(f"line {line.line_id}: a price cannot be negative (BR-27)")
    if request.amount is not None or request.vat is not None:
        amounts.check_amount(
            request.amount,
            request.vat,
            debit_of=request.debit_of,
            lines=request.lines,
            reason=request.reason,
        )


def _compose(
    session: Session,
    order: OrderRow,
    request: InvoiceRequest,
    settings: Settings,
    *,
    buyer: Partner | None,
    supplier: Partner,
    legal: LegalProfile,
) -> Invoice:
    original = original_parties(session, order)
    kind, prefix = DocumentKind.INVOICE, "INV"
    code: str | None = "380"
    if request.credit_of:
        kind, code, prefix = DocumentKind.CREDIT_NOTE, "381", "CN"
    elif request.debit_of:
        prefix, code = "DN", DEBIT_NOTE_CODE
        if buyer is not None and buyer.debit_note_as == "debitnote" and not supplier.self_billing:
            kind, code = DocumentKind.DEBIT_NOTE, None
    prefix, code, customization = parties.self_billing(supplier, prefix, code)
    seller = parties.seller(original, supplier, legal)
    billed = parties.buyer(session, original, buyer, order, settings)
    issuer = billed if supplier.self_billing else seller  # numbers are unique per issuer
    if not order.currency:
        raise NotAllowed(f"order {order.order_number} has no currency to invoice in")
    reference = request.credit_of or request.debit_of
    return Invoice(
        kind=kind,
        customization_id=customization,
        document_id=parties.number(session, order, issuer, prefix),
        issue_date=datetime.now(UTC).date(),
        currency=order.currency,
        buyer=billed,
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


def check_categories(document: Invoice) -> None:
    """NotAllowed for VAT categories no document of the gateway can pass the Billing rules with:
    K (the delivery date and country BR-IC-11/12 ask for are not carried yet: ADR 0027) and O
    beside another category (BR-O-11..14 forbid any other category on an O document)."""
    lines = [line for line in document.lines if isinstance(line, InvoiceLine)]
    categories = vat_categories(lines, document.allowances_charges)
    if "K" in categories:
        raise NotAllowed(
            "an intra-community supply (VAT K) needs the actual delivery date and the deliver-to "
            "country of the goods (BR-IC-11/12), which the gateway's billing documents do not "
            "carry yet: nothing was issued"
        )
    if OUT_OF_SCOPE in categories and len(categories) > 1:
        others = ", ".join(sorted(categories - {OUT_OF_SCOPE}))
        raise NotAllowed(
            f"VAT category O (not subject to VAT) cannot share a document with {others} "
            "(BR-O-11..14): bill the O lines and the others apart (--line)"
        )


def _line(
    line: OrderLine,
    quantity: Decimal,
    price: Decimal | None,
    item: ledger.OrderItem,
    legal: LegalProfile,
) -> InvoiceLine:
    if price is None:
        raise NotAllowed(
            f"order line {line.line_id} has no price: give one (--line {line.line_id}:QTY:PRICE)"
        )
    effective = _effective_vat(item.vat, legal)
    out = InvoiceLine(line_id=line.line_id, quantity=Quantity(quantity, line.unit))
    out.order_line_ref = line.line_id
    out.item_name = line.item_name or line.line_id
    out.seller_item_id = line.seller_item_id
    out.buyer_item_id = line.buyer_item_id
    out.standard_item_id = line.standard_item_id
    out.price = price
    out.base_quantity = item.base_quantity  # the order's price is for this many units
    out.vat_category = effective.category
    out.vat_rate = effective.rate
    return out


def _effective_vat(vat: tuple[str, Decimal | None] | None, legal: LegalProfile) -> Vat:
    """The VAT a line is billed with: the Order's for the item, else the supplier's default."""
    category, rate = vat or (legal.default_vat_category, legal.default_vat_rate)
    if rate is None and category == legal.default_vat_category:  # the order named no rate
        rate = legal.default_vat_rate
    if category == STANDARD and rate is None:
        raise NotAllowed("set partners[].legal.default_vat_rate of the supplier (e.g. 25)")
    return Vat(category, rate if rate is not None else (None if category == "O" else ZERO))


def _default_vat(vats: Iterable[tuple[str, Decimal | None] | None], legal: LegalProfile) -> Vat:
    """The VAT of an agreed charge whose response named none: the VAT all the order lines are
    billed with when they agree, else the supplier's default."""
    agree, common = common_vat(_effective_vat(vat, legal) for vat in vats)
    return common if agree and common is not None else _effective_vat(None, legal)
