"""The buyer's own allowances and charges (its Order's ``cac:AllowanceCharge``) on the billing
documents of the order (docs/adr/0048-order-allowances-and-charges-on-invoices.md).

Part of :mod:`edi_gateway.outbound.invoice`. What the order states is read back from the stored
Order and Order Changes (:func:`~edi_gateway.outbound.invoice_ledger.order_terms`); what was
billed of it, from the order's stored invoices and credit notes, so that the ledger of amounts
is the documents themselves:

* A **line** allowance or charge (``LineItem/cac:AllowanceCharge``, EN 16931 BG-27/BG-28) goes
  on the invoice line of its order line, pro rata the quantity: after each invoice the net
  amount billed of it (invoices less credit notes) is its share of the net quantity billed,
  ``amount x min(net quantity, ordered) / ordered`` rounded to 0.01; the invoice bills that share
  less what the stored documents already billed, so the one that completes the line bills the
  exact remainder. A percentage one keeps its percentage and base amount where they still give
  the amount (PEPPOL-EN16931-R040); at a price other than the order's, a percentage of the
  line is a percentage of the line as billed.
* A **credit note** reverses what the credited invoice's line carried, pro rata the quantity
  credited, the credit note that completes that invoice line taking the remainder.
* A **document-level** one (BG-20/BG-21, with its own VAT category) goes whole on the first
  invoice, as the charges an Order Response agreed (ADR 0009); a credit note that credits all
  an invoice billed reverses those it carried, and the next invoice carries them again.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import TYPE_CHECKING

from edi_gateway.domain.billing import (
    CENT,
    HUNDRED,
    NO_RATE_CATEGORIES,
    STANDARD,
    ZERO_RATE_CATEGORIES,
    AllowanceCharge,
    InvoiceLine,
    line_net,
    money,
)
from edi_gateway.domain.documents import DocumentKind, Invoice
from edi_gateway.outbound import invoice_ledger as ledger
from edi_gateway.outbound.charges import Vat, amount_problem
from edi_gateway.outbound.issuing import NotAllowed
from edi_gateway.pipeline.ledger import CORRECTIVE_INVOICE_CODES

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from edi_gateway.store.tables import DocumentRow, OrderLine
    from edi_gateway.store.tables import Order as OrderRow

ZERO = Decimal(0)
ONE = Decimal(1)
ALLOWANCE_CODES = frozenset(
    ("41 42 60 62 63 64 65 66 67 68 70 71 88 95 100 102 103 104 105").split()  # noqa: SIM905
)
"""The UNCL 5189 subset an invoice's allowance reason code must be in (BR-CL-19). An order may
give an allowance a UNCL 7161 code, or a charge a 5189 one (PEPPOL-T01-B20501/B27501); the
invoice then keeps the reason text alone (a charge's UNCL 7161 codes, BR-CL-20, are letters)."""

Key = tuple[bool, str | None, str | None]
Chosen = Sequence[tuple["OrderLine", Decimal, Decimal | None]]


@dataclass(slots=True)
class Carried:
    """The allowances and charges one billing document carries: per order line ID, and on the
    document."""

    lines: dict[str, list[AllowanceCharge]] = field(default_factory=dict)
    document: list[AllowanceCharge] = field(default_factory=list)


@dataclass(slots=True)
class _Billed:
    """One stored invoice or credit note: the invoices it refers to, per order line ID the
    quantity it moved and the line allowances and charges it carried, its document-level ones."""

    refs: tuple[str, ...]
    quantity: dict[str, Decimal] = field(default_factory=dict)
    lines: dict[str, list[AllowanceCharge]] = field(default_factory=dict)
    document: list[AllowanceCharge] = field(default_factory=list)


def for_invoice(
    session: Session,
    order: OrderRow,
    terms: tuple[Mapping[str, ledger.OrderItem], Sequence[AllowanceCharge]],
    chosen: Chosen,
    default: Callable[[], Vat],
) -> Carried:
    """What the order's own allowances and charges add to an invoice of ``chosen`` (order line,
    quantity, price); ``default()`` is the VAT of a document-level one the order gave none."""
    items, stated = terms
    out = Carried()
    if not stated and not any(
        items.get(ln.line_id, _NONE).allowances_charges for ln, _, _ in chosen
    ):
        return out  # the common order: nothing to read back
    invoices, credits = _documents(session, order)
    billed = [*((+ONE, doc) for doc in invoices), *((-ONE, doc) for doc in credits)]
    for line, quantity, price in chosen:
        item = items.get(line.line_id, _NONE)
        if not item.allowances_charges:
            continue
        _check(item.allowances_charges, f"on order line {line.line_id}")
        ordered = item.quantity if item.quantity is not None else line.qty_ordered
        before = sum((s * d.quantity.get(line.line_id, ZERO) for s, d in billed), ZERO)
        done = _net(billed, line.line_id)
        found = []
        stated_here = (
            _invoice_codes(_at_price(a, item, price)) for a in item.allowances_charges if a.amount
        )
        for whole in _merged(stated_here):
            part = _part(whole, ordered, before, before + quantity, done.get(_key(whole), ZERO))
            if part is not None:
                found.append(part)
        out.lines[line.line_id] = found
    _check(stated, "on the order", default)
    for whole in (_invoice_codes(item) for item in stated if item.amount):
        carried = sum(_has(doc.document, whole) for doc in invoices)
        if carried - sum(_has(doc.document, whole) for doc in credits) < 1:
            out.document.append(_exact(_with_vat(whole, default())))
    return out


def for_credit(
    session: Session,
    order: OrderRow,
    number: str,
    chosen: Chosen,
    stated: Sequence[AllowanceCharge],
) -> Carried:
    """What a credit note of invoice ``number`` crediting ``chosen`` reverses of the order's own
    allowances and charges: its lines' share of what that invoice's lines carried, and those of
    the order's document-level ones ``stated`` the invoice carried (the caller gives none unless
    the credit note credits all the invoice billed)."""
    invoices, credits = _documents(session, order, number)
    out = Carried()
    if not invoices:
        return out
    billed = invoices[0]
    earlier = [doc for doc in credits if number in doc.refs]
    for line, quantity, _ in chosen:
        carried = billed.lines.get(line.line_id, [])
        if not carried:
            continue
        on_invoice = billed.quantity.get(line.line_id, ZERO)
        before = sum((doc.quantity.get(line.line_id, ZERO) for doc in earlier), ZERO)
        done = _net([(ONE, doc) for doc in earlier], line.line_id)
        found = []
        for item in _merged(carried):
            part = _part(item, on_invoice, before, before + quantity, done.get(_key(item), ZERO))
            if part is not None:
                found.append(part)
        out.lines[line.line_id] = found
    for item in (_invoice_codes(item) for item in stated):
        carried_one = next((ac for ac in billed.document if _same(ac, item)), None)
        if carried_one is not None and not any(_has(doc.document, item) for doc in earlier):
            out.document.append(carried_one)
    return out


def keep_positive(document: Invoice, carried: Sequence[AllowanceCharge], *, may_wait: bool) -> None:
    """Leave the order's document-level allowances among ``carried`` off ``document`` when they
    would take its amount below zero and they ``may_wait`` (an invoice that does not complete
    the order): the next invoice carries them, whole and once, as :func:`for_invoice` reads
    what the stored invoices carried."""
    if not may_wait:
        return
    lines = [line for line in document.lines if isinstance(line, InvoiceLine)]
    total = sum((line_net(line) for line in lines), ZERO)
    total += sum((item.signed for item in document.allowances_charges), ZERO)
    if total < ZERO:
        waiting = [item for item in carried if not item.charge]
        document.allowances_charges = [
            item for item in document.allowances_charges if not any(item is w for w in waiting)
        ]


_NONE = ledger.OrderItem()


def _check(
    items: Iterable[AllowanceCharge], where: str, default: Callable[[], Vat] | None = None
) -> None:
    """NotAllowed for an allowance or charge of the order no invoice can carry as it is: an
    amount below 0 or of more than 2 decimals (BR-DEC-24/27 ...), a VAT category and rate that
    make no sense (BR-Z-05 ...); an amount of 0 bills nothing and is left out."""
    for item in items:
        if not item.amount:
            continue
        kind, name = "charge" if item.charge else "allowance", item.reason or item.reason_code
        what = f"the {kind} {name!r} {where}" if name else f"the {kind} {where}"
        vat = None
        if default is not None:
            with_vat = _with_vat(item, default())
            vat = Vat(with_vat.vat_category, with_vat.vat_rate)
        found = amount_problem(item.amount, vat, what)
        if found is not None:
            raise NotAllowed(f"{found}: an invoice cannot carry it as ordered; nothing was issued")


def _documents(
    session: Session, order: OrderRow, number: str | None = None
) -> tuple[list[_Billed], list[_Billed]]:
    """The order's stored invoices (not debit notes: they move no quantity; only invoice
    ``number`` when given) and credit notes, oldest first."""
    invoices = [
        _read(session, row)
        for row in ledger.rows(session, order, DocumentKind.INVOICE)
        if row.code not in CORRECTIVE_INVOICE_CODES and number in (None, row.doc_number)
    ]
    credits = [_read(session, row) for row in ledger.rows(session, order, DocumentKind.CREDIT_NOTE)]
    return invoices, credits


def _read(session: Session, row: DocumentRow) -> _Billed:
    """The order lines, quantities and allowances and charges of a stored billing document."""
    from edi_gateway.ubl.namespaces import cac, cbc
    from edi_gateway.ubl.parse import parse
    from edi_gateway.ubl.read_charges import read_allowance_charge

    data = ledger.payload(session, row)
    if not data:
        return _Billed(())
    root = parse(data, max_size=len(data) + 1)
    refs = tuple(
        (el.text or "").strip()
        for el in root.iterfind(f"{cac('BillingReference')}/{cac('InvoiceDocumentReference')}")
        for el in el.iterfind(cbc("ID"))
    )
    out = _Billed(refs, document=list(ledger.allowances_charges_of(root)))
    for kind, quantity_tag in (
        ("InvoiceLine", "InvoicedQuantity"),
        ("CreditNoteLine", "CreditedQuantity"),
    ):
        for el in root.iterfind(cac(kind)):
            line_id = (el.findtext(f"{cac('OrderLineReference')}/{cbc('LineID')}") or "").strip()
            if not line_id:
                continue
            quantity = Decimal((el.findtext(cbc(quantity_tag)) or "0").strip())
            out.quantity[line_id] = out.quantity.get(line_id, ZERO) + quantity
            found = (read_allowance_charge(ac) for ac in el.iterfind(cac("AllowanceCharge")))
            out.lines.setdefault(line_id, []).extend(ac for ac in found if ac is not None)
    return out


def _key(item: AllowanceCharge) -> Key:
    """What tells one allowance or charge of a line from another on every document."""
    return item.charge, item.reason_code, item.reason


def _same(a: AllowanceCharge, b: AllowanceCharge) -> bool:
    """A document-level one ``a`` a document carried is the order's ``b``."""
    return _key(a) == _key(b) and money(a.amount) == money(b.amount)


def _has(carried: Iterable[AllowanceCharge], item: AllowanceCharge) -> int:
    return int(any(_same(ac, item) for ac in carried))


def _net(billed: Iterable[tuple[Decimal, _Billed]], line_id: str) -> dict[Key, Decimal]:
    """Per key, the net amount of the line's allowances and charges the documents billed."""
    out: dict[Key, Decimal] = {}
    for sign, doc in billed:
        for item in doc.lines.get(line_id, ()):
            out[_key(item)] = out.get(_key(item), ZERO) + sign * money(item.amount)
    return out


def _merged(items: Iterable[AllowanceCharge]) -> list[AllowanceCharge]:
    """One per key: two with the same indicator, code and reason cannot be told apart on the
    documents, so they are billed as one (their percentage kept only when they share it)."""
    out: dict[Key, AllowanceCharge] = {}
    for item in items:
        known = out.get(_key(item))
        if known is None:
            out[_key(item)] = item
            continue
        same = known.percent == item.percent and None not in (known.base_amount, item.base_amount)
        out[_key(item)] = replace(
            known,
            amount=known.amount + item.amount,
            percent=known.percent if same else None,
            base_amount=(known.base_amount or ZERO) + (item.base_amount or ZERO) if same else None,
        )
    return list(out.values())


def _at_price(
    item: AllowanceCharge, stated: ledger.OrderItem, price: Decimal | None
) -> AllowanceCharge:
    """``item`` for the order line billed at ``price``: a percentage of the line (its base the
    line's gross amount) follows the price; any other is as the order states it."""
    if price is None or stated.price is None or price == stated.price:
        return item
    if item.percent is None or item.base_amount is None or stated.quantity is None:
        return item
    per = stated.base_quantity or ONE
    if money(stated.quantity * stated.price / per) != money(item.base_amount):
        return item
    base = money(stated.quantity * price / per)
    return replace(item, amount=money(base * item.percent / HUNDRED), base_amount=base)


def _share(amount: Decimal, whole: Decimal, upto: Decimal) -> Decimal:
    """``amount``'s share of ``upto`` of ``whole`` units (all of it from ``whole`` on)."""
    if whole <= ZERO:
        return money(amount)
    return money(amount * min(max(upto, ZERO), whole) / whole)


def _part(
    item: AllowanceCharge, whole: Decimal, before: Decimal, after: Decimal, done: Decimal
) -> AllowanceCharge | None:
    """What a document moving the units from ``before`` to ``after`` of ``whole`` bills of
    ``item`` when ``done`` was billed of it already (None: nothing; what earlier rounding put
    ahead is caught up by a later document, the one completing the line at the latest)."""
    amount = _share(item.amount, whole, after) - done
    if amount <= ZERO:
        return None
    base = None
    if item.base_amount is not None:
        base = _share(item.base_amount, whole, after) - _share(item.base_amount, whole, before)
    return _exact(replace(item, amount=amount, base_amount=base))


def _exact(item: AllowanceCharge) -> AllowanceCharge:
    """``item`` with its percentage and base amount only where they give its amount within a
    cent (PEPPOL-EN16931-R040 allows 0.02), else the amount alone (R041/R042: both or none)."""
    percent, base = item.percent, item.base_amount
    if percent is None or base is None or abs(base * percent / HUNDRED - item.amount) > CENT:
        return replace(item, percent=None, base_amount=None)
    return item


def _with_vat(item: AllowanceCharge, default: Vat) -> AllowanceCharge:
    """A document-level one with its VAT: the order's, else ``default`` (a standard rate the
    order does not give is not known)."""
    category, rate = item.vat_category, item.vat_rate
    if rate is None and category in ZERO_RATE_CATEGORIES:
        rate = None if category in NO_RATE_CATEGORIES else ZERO
    elif rate is None or not category:
        category, rate = default.category, default.rate
    return replace(item, vat_category=category or STANDARD, vat_rate=rate)


def _invoice_codes(item: AllowanceCharge) -> AllowanceCharge:
    """``item`` with a reason code only from the list its indicator has on an invoice
    (BR-CL-19/20), and a reason or code at all (BR-33/38, BR-42/44): one left without is named
    by the order's code, else ``Charge`` / ``Allowance``."""
    code = item.reason_code
    if code is None or (code not in ALLOWANCE_CODES if not item.charge else code.isdigit()):
        named = f"Reason code {code}" if code else ("Charge" if item.charge else "Allowance")
        return replace(item, reason_code=None, reason=item.reason or named)
    return item
