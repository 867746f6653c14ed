"""Amount-only debit notes: a fee or a price correction billed as one line of an amount.

Part of :mod:`edi_gateway.outbound.invoice` (ADR 0027): the line is quantity 1 ``C62`` at the
net amount, named by the reason, referring to no order line, so it bills no order quantity.
Its VAT is the operator's (:func:`fee_vat`), else what the invoice decides (the VAT the order
lines share, else the supplier's default). What cannot pass the Billing rules is refused with
``NOT_ALLOWED`` before anything is written.
"""

from __future__ import annotations

from collections.abc import Sized
from decimal import Decimal

from edi_gateway.domain.billing import (
    NO_RATE_CATEGORIES,
    STANDARD,
    ZERO_RATE_CATEGORIES,
    InvoiceLine,
)
from edi_gateway.domain.documents import Quantity
from edi_gateway.outbound.charges import UNIT, Vat, amount_problem
from edi_gateway.outbound.issuing import NotAllowed

ZERO = Decimal(0)
NO_FEE_CATEGORIES = {
    "K": "an intra-community supply (VAT K) needs the delivery date and country of the goods "
    "(BR-IC-11/12), which an amount-only debit note does not carry: give --tax-category",
    "O": "a document with VAT category O (not subject to VAT) must not carry the seller's VAT "
    "number (BR-O-02), which this supplier's invoices do: give --tax-category",
}
"""VAT categories an amount-only debit note cannot pass the Billing rules with, and why."""


def fee_vat(category: str | None, rate: Decimal | None) -> Vat | None:
    """The VAT of an amount-only debit note from the operator's category and rate (None when
    neither is given): the category defaults to ``S``; ``O`` has no rate, ``Z``, ``E``, ``AE``,
    ``K``, ``G`` rate 0. What still makes no sense is refused when the note is issued."""
    if category is None and rate is None:
        return None
    code = (category or STANDARD).strip().upper()
    if rate is None and code in ZERO_RATE_CATEGORIES:
        rate = None if code in NO_RATE_CATEGORIES else ZERO
    return Vat(code, rate)


def check_amount(
    amount: Decimal | None,
    vat: Vat | None,
    *,
    debit_of: str | None,
    lines: Sized,
    reason: str | None,
) -> None:
    """Refuse (``NOT_ALLOWED``) an amount-only debit note that makes no sense."""
    if amount is None:
        raise NotAllowed("a VAT category and rate go with an amount (--amount)")
    if not debit_of:
        raise NotAllowed(
            "an amount is billed as a debit note: name the invoice it adds to (--debit INVOICE_ID)"
        )
    if len(lines):
        raise NotAllowed("an amount-only debit note bills no order line: give the amount alone")
    if not (reason or "").strip():
        raise NotAllowed(
            "say what the amount is for (--reason 'Late delivery fee'): it names the line (BR-25)"
        )
    found = amount_problem(amount, vat, "a debited amount")
    if found is not None:
        raise NotAllowed(found)


def amount_line(amount: Decimal, reason: str | None, vat: Vat) -> InvoiceLine:
    """The one line of an amount-only debit note: 1 x the amount, named by the reason."""
    if vat.category in NO_FEE_CATEGORIES:
        raise NotAllowed(NO_FEE_CATEGORIES[vat.category])
    if vat.category == STANDARD and not vat.rate:
        raise NotAllowed(
            "VAT category S (standard rated) needs a rate above 0 (BR-S-05): give --tax-rate, "
            "or a zero-rated category (--tax-category Z)"
        )
    out = InvoiceLine(line_id="1", quantity=Quantity(Decimal(1), UNIT))
    out.item_name = (reason or "").strip()
    out.price = amount
    out.vat_category = vat.category
    out.vat_rate = vat.rate
    return out
