"""EN 16931 invoice arithmetic (the BR-CO rules), pure and exact: ``Decimal`` in, ``Decimal`` out.

What Peppol BIS Billing 3.0 checks, computed the way its Schematron checks it:

* line net amount (BT-131) = quantity x (net price / base quantity) + line charges - line
  allowances, rounded to 0.01 (PEPPOL-EN16931-R120);
* sum of line net amounts (BT-106) = the sum of the rounded line nets (BR-CO-10);
* allowance total (BT-107) and charge total (BT-108) = the sums of the document-level
  allowances and charges (BR-CO-11, BR-CO-12);
* tax exclusive (BT-109) = line sum - allowances + charges (BR-CO-13);
* one VAT breakdown (BG-23) per VAT category + rate: taxable amount = line nets + charges -
  allowances of that category and rate; tax = taxable x rate / 100, rounded half up to 0.01
  (BR-S-08/09, BR-Z-08/09 ...); total VAT (BT-110) = the sum of the breakdown (BR-CO-14);
* tax inclusive (BT-112) = tax exclusive + VAT (BR-CO-15);
* payable (BT-115) = tax inclusive - prepaid + rounding (BR-CO-16).

Every amount is quantized to 0.01 with ROUND_HALF_UP. Nothing here knows XML or the store.
This module also holds the invoice-only domain types: :class:`AllowanceCharge` and
:class:`InvoiceLine` (an order-chain :class:`~.documents.Line` with its billing terms).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal

from edi_gateway.domain.documents import Line

CENT = Decimal("0.01")
ZERO = Decimal("0.00")
ONE = Decimal(1)
HUNDRED = Decimal(100)

STANDARD = "S"
OUT_OF_SCOPE = "O"
"""UNCL 5305 "not subject to VAT": a document with it names no VAT number (BR-O-02..04)."""
NO_RATE_CATEGORIES = frozenset({"O"})
"""UNCL 5305 categories that carry no rate at all ("not subject to VAT")."""
ZERO_RATE_CATEGORIES = frozenset({"Z", "E", "AE", "K", "G", "O"})
"""Categories whose rate must be 0 (BR-Z-05, BR-E-05, BR-AE-05, BR-IC-05, BR-G-05, BR-O-05)."""
EXEMPTION_REASONS = {
    "E": "Exempt from VAT",
    "AE": "Reverse charge",
    "K": "Intra-community supply",
    "G": "Export outside the EU",
    "O": "Not subject to VAT",
}
"""Default ``TaxExemptionReason`` of the categories that need one (BR-E-10, BR-AE-10 ...)."""

SELF_BILLING_PROFILE = "urn:fdc:peppol.eu:2017:poacc:selfbilling:01:1.0"
SELF_BILLED_INVOICE = "389"
SELF_BILLED_DEBIT_NOTE = "527"
SELF_BILLED_CREDIT_NOTE = "261"
"""UNCL 1001 type codes PEPPOL-EN16931-UBL-SB allows (P0100: 389 527; P0101: 261)."""


def money(value: Decimal) -> Decimal:
    """``value`` rounded half up to two decimals (EN 16931 amounts)."""
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


@dataclass(frozen=True, slots=True)
class AllowanceCharge:
    """An allowance (discount) or a charge (freight, handling ...), on a line or the document.

    Document-level ones carry their own VAT category and rate (BR-32/BR-37); on a line the
    line's VAT applies and ``vat_category`` / ``vat_rate`` are ignored. ``reason`` or
    ``reason_code`` (UNCL 5189 for allowances, UNCL 7161 for charges) is mandatory (BR-33).
    ``percent`` and ``base_amount`` (BT-94/93, BT-138/137 ...) go together or not at all
    (PEPPOL-EN16931-R041/R042), and then ``amount`` is ``base_amount`` x ``percent`` / 100
    (R040).
    """

    charge: bool
    amount: Decimal
    reason: str | None = None
    reason_code: str | None = None
    vat_category: str = STANDARD
    vat_rate: Decimal | None = None
    percent: Decimal | None = None
    base_amount: Decimal | None = None

    @property
    def signed(self) -> Decimal:
        """The amount as it adds to the total: positive for a charge, negative for an allowance."""
        return self.amount if self.charge else -self.amount


@dataclass(slots=True)
class InvoiceLine(Line):
    """An invoice, credit or debit note line: a :class:`Line` plus its billing terms.

    ``price`` (inherited) is the item net price for ``base_quantity`` (inherited) units;
    ``quantity`` is the invoiced quantity. ``vat_rate`` is a percentage (``25`` for 25 %).
    """

    vat_category: str = STANDARD
    vat_rate: Decimal | None = None
    allowances_charges: list[AllowanceCharge] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class VatBreakdown:
    """One ``cac:TaxSubtotal``: a VAT category and rate, its taxable amount and its tax."""

    category: str
    rate: Decimal | None
    taxable: Decimal
    tax: Decimal

    @property
    def exemption_reason(self) -> str | None:
        """The default exemption reason text this category must carry, if any."""
        return EXEMPTION_REASONS.get(self.category)


@dataclass(frozen=True, slots=True)
class Totals:
    """Every computed amount of one invoice (EN 16931 BG-22 and BG-23)."""

    line_nets: tuple[Decimal, ...]
    line_extension: Decimal
    allowance_total: Decimal
    charge_total: Decimal
    tax_exclusive: Decimal
    breakdown: tuple[VatBreakdown, ...]
    tax_total: Decimal
    tax_inclusive: Decimal
    prepaid: Decimal
    rounding: Decimal
    payable: Decimal


def vat_categories(
    lines: Iterable[InvoiceLine], allowances_charges: Iterable[AllowanceCharge]
) -> set[str]:
    """The VAT categories of a document's lines and document-level allowances and charges."""
    return {line.vat_category for line in lines} | {a.vat_category for a in allowances_charges}


def vat_key(category: str, rate: Decimal | None) -> tuple[str, Decimal | None]:
    """The breakdown key of a category and rate (``25`` and ``25.00`` are the same rate)."""
    if category in NO_RATE_CATEGORIES or rate is None:
        return category, None
    whole = rate == rate.to_integral_value()
    return category, rate.quantize(ONE) if whole else rate.normalize()


def line_net(line: InvoiceLine) -> Decimal:
    """BT-131: quantity x (price / base quantity) + line charges - line allowances, to 0.01.

    Raises ``ValueError`` for a line without quantity or price, or a base quantity <= 0.
    """
    if line.quantity is None or line.price is None:
        raise ValueError(f"line {line.line_id}: an invoice line needs a quantity and a price")
    base = ONE if line.base_quantity is None else line.base_quantity
    if base <= 0:
        raise ValueError(f"line {line.line_id}: the base quantity must be above zero")
    gross = money(line.quantity.value * line.price / base)
    charges = _sum(line.allowances_charges, charge=True)
    return gross + charges - _sum(line.allowances_charges, charge=False)


def compute(
    lines: Sequence[InvoiceLine],
    allowances_charges: Iterable[AllowanceCharge] = (),
    *,
    prepaid: Decimal = ZERO,
    rounding: Decimal = ZERO,
) -> Totals:
    """All amounts of an invoice with ``lines`` and document-level ``allowances_charges``.

    Line allowance/charge amounts, ``prepaid`` and ``rounding`` are taken as given (rounded to
    0.01). Raises ``ValueError`` when a line cannot be computed (see :func:`line_net`) or a
    VAT rate is missing where its category needs one.
    """
    document_level = list(allowances_charges)
    nets = tuple(line_net(line) for line in lines)
    line_extension = sum(nets, ZERO)
    allowance_total = _sum(document_level, charge=False)
    charge_total = _sum(document_level, charge=True)
    tax_exclusive = line_extension - allowance_total + charge_total
    taxable: dict[tuple[str, Decimal | None], Decimal] = {}
    for line, net in zip(lines, nets, strict=True):
        key = _checked_key(line.vat_category, line.vat_rate, f"line {line.line_id}")
        taxable[key] = taxable.get(key, ZERO) + net
    for position, item in enumerate(document_level, start=1):
        key = _checked_key(item.vat_category, item.vat_rate, f"allowance/charge {position}")
        signed = money(item.amount) if item.charge else -money(item.amount)
        taxable[key] = taxable.get(key, ZERO) + signed
    breakdown = tuple(
        VatBreakdown(category, rate, amount, money(amount * (rate or 0) / HUNDRED))
        for (category, rate), amount in taxable.items()
    )
    tax_total = sum((b.tax for b in breakdown), ZERO)
    tax_inclusive = tax_exclusive + tax_total
    prepaid, rounding = money(prepaid), money(rounding)
    return Totals(
        line_nets=nets,
        line_extension=line_extension,
        allowance_total=allowance_total,
        charge_total=charge_total,
        tax_exclusive=tax_exclusive,
        breakdown=breakdown,
        tax_total=tax_total,
        tax_inclusive=tax_inclusive,
        prepaid=prepaid,
        rounding=rounding,
        payable=tax_inclusive - prepaid + rounding,
    )


def _sum(items: Iterable[AllowanceCharge], *, charge: bool) -> Decimal:
    return sum((money(i.amount) for i in items if i.charge is charge), ZERO)


def _checked_key(category: str, rate: Decimal | None, where: str) -> tuple[str, Decimal | None]:
    if category not in NO_RATE_CATEGORIES and rate is None:
        raise ValueError(f"{where}: VAT category {category} needs a rate")
    if category in ZERO_RATE_CATEGORIES and rate:
        raise ValueError(f"{where}: VAT category {category} must have rate 0, not {rate}")
    return vat_key(category, rate)
