"""Charges (freight, packing ...) and discounts agreed in an Order Response, on their way to the
invoice. Pure rules, no store: :mod:`.respond` writes them, :mod:`.agreed` reads them back.

Peppol T76 is a closed model: a document-level ``cac:AllowanceCharge`` is refused
(PEPPOL-T76-B00111) and a response line has no tax category. What T76 does allow is a line the
seller adds (``LineStatusCode`` 1) and a line the seller changes (3, with a new price). So
(docs/adr/0009-charges-on-order-responses.md):

* a **charge** is an added line: item name the charge's label (``Freight``), quantity 1
  (``C62``), price the amount, a line ID after the order's own;
* an **amount discount** is an added line with a negative price (``Discount``);
* a **percentage discount** lowers the price of every line the response accepts (status 3).

The note of an added line says what it is, for the buyer and for the gateway reading it back:
``Charge UNCL 7161 FC, VAT S 25 %`` or ``Allowance UNCL 5189 95, VAT S 25 %`` (code and VAT only
when known). When the order's first invoice is issued, the added lines of the latest accepting
response become document-level allowances and charges (:func:`allowance_charge`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from types import MappingProxyType

from edi_gateway.domain.billing import (
    NO_RATE_CATEGORIES,
    ZERO_RATE_CATEGORIES,
    AllowanceCharge,
    money,
    vat_key,
)
from edi_gateway.domain.documents import Line, Quantity

ADDED = "1"
"""UNCL 1229 line status of a line the seller added (T76)."""
ONE = Decimal(1)
HUNDRED = Decimal(100)
UNIT = "C62"
"""UN/ECE Rec 20 "one": the unit of an added charge or discount line."""
CHARGE_REASONS = MappingProxyType(
    {
        "freight": ("FC", "Freight"),
        "shipping": ("FC", "Freight"),
        "transport": ("FC", "Freight"),
        "packing": ("PC", "Packing"),
        "packaging": ("ABL", "Additional packaging"),
        "handling": ("SH", "Special handling"),
    }
)
"""Charge kinds the gateway knows: their UNCL 7161 code and label (any other kind is free text,
written as given without a code; the reason text alone satisfies BR-38)."""
DISCOUNT_CODE, DISCOUNT_LABEL = "95", "Discount"
"""UNCL 5189 "discount": the reason code of an amount discount."""
CHARGE_CODES = frozenset(code for code, _ in CHARGE_REASONS.values())
VAT_CATEGORIES = frozenset({"S", "Z", "E", "AE", "K", "G", "O", "L", "M"})
"""The UNCL 5305 subset EN 16931 allows (BR-CL-17/18)."""
_NOTE_CODE = re.compile(r"\bUNCL (?:7161|5189) ([A-Z0-9]{1,3})\b")
_NOTE_VAT = re.compile(r"\bVAT ([A-Z]{1,2})\b(?: (\d+(?:\.\d+)?) ?%)?")


@dataclass(frozen=True, slots=True)
class Vat:
    """A VAT category (UNCL 5305) and rate in percent (None for ``O``, not subject to VAT)."""

    category: str
    rate: Decimal | None = None

    def text(self) -> str:
        """``S 25 %`` (or ``O``)."""
        rate = vat_key(self.category, self.rate)[1]
        return self.category if rate is None else f"{self.category} {rate:f} %"


@dataclass(frozen=True, slots=True)
class Charge:
    """A charge on the whole order: its kind (free text; ``freight`` ...), amount and VAT (None:
    as the order lines)."""

    kind: str
    amount: Decimal
    vat: Vat | None = None


@dataclass(frozen=True, slots=True)
class Discount:
    """A discount on the whole order: a percentage of every price, or an amount (with its VAT,
    None: as the order lines)."""

    percent: Decimal | None = None
    amount: Decimal | None = None
    vat: Vat | None = None


def reason(kind: str) -> tuple[str | None, str]:
    """The UNCL 7161 code (None when unknown) and the label of a charge kind."""
    known = CHARGE_REASONS.get(kind.strip().lower())
    return known if known is not None else (None, kind.strip())


def problem(charges: Iterable[Charge], discount: Discount | None) -> str | None:
    """What makes these charges and this discount impossible, or None."""
    for charge in charges:
        found = _charge_problem(charge)
        if found is not None:
            return found
    return None if discount is None else _discount_problem(discount)


def _charge_problem(charge: Charge) -> str | None:
    label = charge.kind.strip()
    if not label:
        return "a charge needs a kind (KIND:AMOUNT, e.g. freight:25.00)"
    if not _money(charge.amount) or charge.amount <= 0:
        return (
            f"{label}: a charge must be an amount above 0 with at most 2 decimals "
            "(a discount goes with --discount)"
        )
    found = _vat_problem(charge.vat)
    return None if found is None else f"{label}: {found}"


def amount_problem(amount: Decimal, vat: Vat | None, what: str) -> str | None:
    """Why ``amount`` (with ``vat``, None: to be decided) cannot be billed as ``what`` (a fee,
    a price correction): not above 0, more than 2 decimals, a VAT that makes no sense."""
    if not _money(amount) or amount <= 0:
        return f"{what} must be an amount above 0 with at most 2 decimals, not {amount}"
    if vat is not None and vat.rate is not None and vat.rate > HUNDRED:
        return f"VAT rate {vat.rate} is not a percentage"
    return _vat_problem(vat)


def _discount_problem(discount: Discount) -> str | None:
    if (discount.percent is None) == (discount.amount is None):
        return "a discount is either a percentage (5%) or an amount (20.00)"
    if discount.percent is not None and not (
        discount.percent.is_finite() and 0 < discount.percent <= HUNDRED
    ):
        return f"a discount of {discount.percent}% must be above 0% and at most 100%"
    if discount.amount is not None and (not _money(discount.amount) or discount.amount <= 0):
        return "a discount amount must be above 0 with at most 2 decimals"
    return _vat_problem(discount.vat)


def parse_charge(text: str) -> Charge:
    """``KIND:AMOUNT[:VATCAT:RATE]`` (``freight:25.00``, ``packing:4.50:S:25``) -> Charge.

    Raises ``ValueError`` saying what is wrong (not that form, not a number, not above 0 ...).
    """
    parts = text.split(":")
    if len(parts) not in (2, 4) or not parts[0].strip():
        raise ValueError(f"expected KIND:AMOUNT[:VATCAT:RATE] (freight:25.00), found {text!r}")
    charge = Charge(parts[0].strip(), _number(parts[1], text), _parsed_vat(parts[2:], text))
    found = _charge_problem(charge)
    if found is not None:
        raise ValueError(found)
    return charge


def parse_discount(text: str) -> Discount:
    """``PCT%`` (``5%``: every accepted line's price) or ``AMOUNT[:VATCAT:RATE]`` -> Discount.

    Raises ``ValueError`` saying what is wrong (above 100 %, not a number, below 0 ...).
    """
    head, *rest = text.split(":")
    if len(rest) not in (0, 2):
        raise ValueError(f"expected PCT% or AMOUNT[:VATCAT:RATE] (5% or 20.00), found {text!r}")
    if head.strip().endswith("%"):
        if rest:
            raise ValueError(f"a percentage discount lowers the line prices, without VAT: {text!r}")
        discount = Discount(percent=_number(head.strip()[:-1], text))
    else:
        discount = Discount(amount=_number(head, text), vat=_parsed_vat(rest, text))
    found = _discount_problem(discount)
    if found is not None:
        raise ValueError(found)
    return discount


def _number(raw: str, text: str) -> Decimal:
    try:
        value = Decimal(raw.strip())
    except InvalidOperation:
        value = Decimal("NaN")
    if not value.is_finite():
        raise ValueError(f"{raw.strip()!r} in {text!r} is not a number such as 25.00")
    return value


def _parsed_vat(parts: list[str], text: str) -> Vat | None:
    if not parts:
        return None
    category = parts[0].strip().upper()
    return Vat(category, _number(parts[1], text))


def _money(value: Decimal) -> bool:
    return value.is_finite() and value == money(value)


def _vat_problem(vat: Vat | None) -> str | None:
    if vat is None:
        return None
    if vat.category not in VAT_CATEGORIES:
        return f"VAT category {vat.category!r} is not one of {', '.join(sorted(VAT_CATEGORIES))}"
    if vat.rate is not None and (not vat.rate.is_finite() or vat.rate < 0):
        return f"VAT rate {vat.rate} is not a percentage"
    if vat.category in ZERO_RATE_CATEGORIES and vat.rate:
        return f"VAT category {vat.category} has rate 0, not {vat.rate}"
    if vat.category not in NO_RATE_CATEGORIES and vat.rate is None:
        return f"VAT category {vat.category} needs a rate"
    return None


def common_vat(vats: Iterable[Vat | None]) -> tuple[bool, Vat | None]:
    """Whether the lines' VAT agree (lines without VAT count as unknown), and which it is.

    No line with VAT: ``(True, None)`` (the invoice applies its default, as to the lines).
    """
    found = {(v.category, vat_key(v.category, v.rate)[1]) if v else None for v in vats}
    if not found or found == {None}:
        return True, None
    if len(found) != 1 or None in found:
        return False, None
    category, rate = next(iter(v for v in found if v is not None))
    return True, Vat(category, rate)


def next_line_ids(taken: Iterable[str], count: int) -> list[str]:
    """``count`` line IDs after the highest numeric one of ``taken``, colliding with none."""
    used = set(taken)
    numbers = [int(i) for i in used if i.isascii() and i.isdigit()]
    n, out = max(numbers, default=0), list[str]()
    while len(out) < count:
        n += 1
        if str(n) not in used:
            out.append(str(n))
    return out


def added_line(line_id: str, *, charge: bool, amount: Decimal, kind: str, vat: Vat | None) -> Line:
    """The T76 line (status 1) of a charge, or (``charge`` False) of an amount discount."""
    code, label = reason(kind) if charge else (DISCOUNT_CODE, DISCOUNT_LABEL)
    line = Line(line_id=line_id, quantity=Quantity(ONE, UNIT))
    line.order_line_ref = line_id
    line.item_name = label
    line.price = amount if charge else -amount
    line.status_code = ADDED
    line.note = note(charge=charge, code=code, vat=vat)
    return line


def note(*, charge: bool, code: str | None, vat: Vat | None) -> str:
    """``Charge UNCL 7161 FC, VAT S 25 %``: what an added line is (code and VAT when known)."""
    text = "Charge" if charge else "Allowance"
    if code is not None:
        text += f" UNCL {'7161' if charge else '5189'} {code}"
    return text + (f", VAT {vat.text()}" if vat is not None else "")


def discounted(price: Decimal, percent: Decimal) -> Decimal:
    """``price`` less ``percent`` %, exact, with at least 2 decimals (10.00, 5 % -> 9.50)."""
    value = price * (HUNDRED - percent) / HUNDRED
    exponent = value.normalize().as_tuple().exponent
    places = min(exponent if isinstance(exponent, int) else 0, -2)
    return value.quantize(Decimal(1).scaleb(places))


def allowance_charge(line: Line, default: Vat) -> AllowanceCharge | None:
    """The document-level allowance or charge an added response line stands for (None for a
    line without amount): reason = item name, code from the note or the name, VAT from the note
    else ``default``."""
    quantity = line.quantity.value if line.quantity is not None else ONE
    if line.price is None or not line.price.is_finite():
        return None
    amount = money(quantity * line.price)
    if amount == 0:
        return None
    charge = amount > 0
    name = line.item_name or ("Charge" if charge else DISCOUNT_LABEL)
    found = _NOTE_CODE.search(line.note or "")
    code = found.group(1) if found else None
    if code not in (CHARGE_CODES if charge else {DISCOUNT_CODE}):  # only codes known valid
        code = reason(name)[0] if charge else None
        if not charge and name.strip().lower() == DISCOUNT_LABEL.lower():
            code = DISCOUNT_CODE
    vat = _note_vat(line.note) or default
    return AllowanceCharge(
        charge=charge,
        amount=abs(amount),
        reason=name,
        reason_code=code,
        vat_category=vat.category,
        vat_rate=vat.rate,
    )


def _note_vat(text: str | None) -> Vat | None:
    found = _NOTE_VAT.search(text or "")
    if found is None or found.group(1) not in VAT_CATEGORIES:
        return None
    rate = Decimal(found.group(2)) if found.group(2) else None
    vat = Vat(found.group(1), rate)
    return None if _vat_problem(vat) else vat
