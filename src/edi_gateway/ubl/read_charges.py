"""Read ``cac:AllowanceCharge`` elements (EN 16931 BG-20/BG-21, BG-27/BG-28).

Off the intake hot path: billing documents, and the stored orders an invoice reads back
(:mod:`edi_gateway.outbound.order_charges`). Each becomes an
:class:`~edi_gateway.domain.billing.AllowanceCharge`: the indicator, the reason code and text,
the percentage, amount and base amount, and the ``TaxCategory`` (ID and Percent). One without
an amount is left out.
"""

from __future__ import annotations

from edi_gateway.domain.billing import STANDARD, AllowanceCharge
from edi_gateway.ubl.namespaces import cac, cbc
from edi_gateway.ubl.read_values import Element, Kids, decimal, text

_ALLOWANCE_CHARGE = cac("AllowanceCharge")
_INDICATOR = cbc("ChargeIndicator")
_CODE = cbc("AllowanceChargeReasonCode")
_REASON = cbc("AllowanceChargeReason")
_AMOUNT = cbc("Amount")
_PERCENTAGE = cbc("MultiplierFactorNumeric")
_BASE = cbc("BaseAmount")
_CATEGORY = f"{cac('TaxCategory')}/{cbc('ID')}"
_PERCENT = f"{cac('TaxCategory')}/{cbc('Percent')}"


def read_allowances_charges(kids: Kids) -> list[AllowanceCharge]:
    """The document-level allowances and charges among the root's children ``kids``."""
    return [
        item
        for item in (read_allowance_charge(el) for el in kids.get(_ALLOWANCE_CHARGE, ()))
        if item is not None
    ]


def read_allowance_charge(el: Element) -> AllowanceCharge | None:
    """One ``cac:AllowanceCharge`` (None without an amount); no ``TaxCategory``: ``S``."""
    amount = decimal(el, _AMOUNT)
    if amount is None:
        return None
    return AllowanceCharge(
        charge=(text(el, _INDICATOR) or "").lower() == "true",
        amount=amount,
        reason=text(el, _REASON),
        reason_code=text(el, _CODE),
        vat_category=text(el, _CATEGORY) or STANDARD,
        vat_rate=decimal(el, _PERCENT),
        percent=decimal(el, _PERCENTAGE),
        base_amount=decimal(el, _BASE),
    )
