"""One row of a reply -> one document line plus the header facts it states.

The confirmation status rules live here (see :mod:`edi_gateway.replies.build` for the whole
set of rules); every problem is a :class:`~edi_gateway.replies.rows.RowError` naming the file,
row and column.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from types import MappingProxyType
from typing import Any

from edi_gateway.domain.billing import ZERO_RATE_CATEGORIES, InvoiceLine, money
from edi_gateway.domain.documents import Line, Quantity
from edi_gateway.replies.columns import ReplyKind
from edi_gateway.replies.rows import Fields
from edi_gateway.replies.tabular import Row

__all__ = ["ACCEPTED", "CHANGED", "PARSERS", "REJECTED", "Parsed"]

ACCEPTED, CHANGED, REJECTED = "5", "3", "7"
CREDIT_TRANSFERS = frozenset({"30", "58"})
"""UNCL 4461 codes whose payment account is mandatory (BR-61)."""
_STATUS_CODES = MappingProxyType({"accepted": ACCEPTED, "changed": CHANGED, "rejected": REJECTED})
_BUILTIN_STATUS = MappingProxyType(
    {**{code: code for code in _STATUS_CODES.values()}, **_STATUS_CODES}
)


@dataclass(slots=True)
class Parsed:
    """One row read: the order, the group key, the line and the header fields it states."""

    row: Row
    order_id: str
    key: str | None
    line: Line
    header: dict[str, Any] = field(default_factory=dict)
    known: bool = False
    """Confirmation: whether the row says the line is accepted *as ordered*."""


def _common(fields: Fields, row: Row, *, key_field: str | None) -> tuple[str, str | None, Line]:
    order_id = fields.text(row, "order_id", required=True)
    line_id = fields.text(row, "line_id", required=True)
    assert order_id is not None and line_id is not None
    key = None
    if key_field is not None:
        key = fields.text(row, key_field, required=key_field == "invoice_number")
    line = Line(
        line_id=line_id,
        order_line_ref=line_id,
        item_name=fields.text(row, "item_name"),
        seller_item_id=fields.text(row, "seller_item_id"),
        buyer_item_id=fields.text(row, "buyer_item_id"),
        standard_item_id=fields.text(row, "standard_item_id"),
        note=fields.text(row, "note"),
    )
    return order_id, key, line


def _quantity(fields: Fields, row: Row, value: Decimal, name: str = "quantity") -> Quantity:
    unit = fields.text(row, "unit")
    if unit is None:
        raise fields.error(
            row, "unit", f"{name} {value} has no unit: map a unit column or give defaults.unit"
        )
    return Quantity(value, unit)


def _confirmation_row(fields: Fields, row: Row) -> Parsed:
    order_id, _, line = _common(fields, row, key_field=None)
    confirmed = fields.decimal(row, "quantity")
    ordered = fields.decimal(row, "ordered_quantity")
    status_text = fields.text(row, "status")
    if status_text is not None:
        status = _status(fields, row, status_text)
        if status == ACCEPTED and confirmed is None:
            confirmed = ordered
    elif confirmed is None:
        raise fields.error(row, "quantity", "the cell is empty")
    elif confirmed == 0:
        status = REJECTED
    else:
        status = CHANGED if ordered is not None and confirmed != ordered else ACCEPTED
    if status == CHANGED and confirmed is None:
        raise fields.error(row, "quantity", f"the line is {status_text!r} but has no quantity")
    if status != REJECTED and confirmed is not None:
        line.quantity = _quantity(fields, row, confirmed)
    line.status_code = status
    line.delivery_date = fields.date(row, "delivery_date")
    line.price = fields.decimal(row, "price")
    known = status == ACCEPTED and (status_text is not None or ordered is not None)
    return Parsed(row, order_id, None, line, known=known)


def _status(fields: Fields, row: Row, text: str) -> str:
    vocabulary = {**_BUILTIN_STATUS}
    vocabulary.update(
        {
            word.strip().casefold(): _STATUS_CODES[meaning]
            for word, meaning in fields.mapping.status_values.items()
        }
    )
    code = vocabulary.get(text.casefold())
    if code is None:
        words = sorted({*fields.mapping.status_values, *_STATUS_CODES})
        raise fields.error(row, "status", f"unknown status {text!r}; known: {', '.join(words)}")
    return code


def _despatch_row(fields: Fields, row: Row) -> Parsed:
    order_id, key, line = _common(fields, row, key_field="despatch_id")
    delivered = fields.decimal(row, "quantity", required=True)
    assert delivered is not None
    line.quantity = _quantity(fields, row, delivered)
    backorder = fields.decimal(row, "backorder_quantity")
    if backorder is not None:
        line.backorder_quantity = _quantity(fields, row, backorder, "backorder quantity")
    header = {
        "despatch_date": fields.date(row, "despatch_date"),
        "estimated_delivery_date": fields.date(row, "estimated_delivery_date"),
        "carrier": fields.text(row, "carrier"),
        "tracking_id": fields.text(row, "tracking_id"),
    }
    return Parsed(row, order_id, key, line, header)


def _invoice_row(fields: Fields, row: Row) -> Parsed:
    order_id, key, base = _common(fields, row, key_field="invoice_number")
    quantity = fields.decimal(row, "quantity", required=True, negative=True)
    price = fields.decimal(row, "price", required=True)
    assert quantity is not None and price is not None
    line = InvoiceLine(
        line_id=base.line_id,
        order_line_ref=base.order_line_ref,
        item_name=base.item_name,
        seller_item_id=base.seller_item_id,
        buyer_item_id=base.buyer_item_id,
        standard_item_id=base.standard_item_id,
        note=base.note,
        quantity=_quantity(fields, row, quantity),
        price=price,
        vat_rate=fields.percent(row, "vat_rate"),
    )
    category = fields.text(row, "vat_category", required=True)
    assert category is not None
    line.vat_category = category.upper()
    if line.vat_category in ZERO_RATE_CATEGORIES and line.vat_rate:
        raise fields.error(
            row,
            "vat_rate",
            f"VAT category {line.vat_category} must have rate 0, not {line.vat_rate}",
        )
    if line.vat_rate is None and line.vat_category not in ZERO_RATE_CATEGORIES:
        raise fields.error(row, "vat_rate", f"VAT category {line.vat_category} needs a rate")
    if line.vat_rate is None and line.vat_category != "O":  # rated 0 by definition
        line.vat_rate = Decimal(0)
    line.line_amount = money(quantity * price)
    stated = fields.decimal(row, "line_amount", negative=True)
    if stated is not None and stated != line.line_amount:
        raise fields.error(
            row,
            "line_amount",
            f"{stated} is not quantity {quantity} x price {price} = {line.line_amount}",
        )
    return Parsed(row, order_id, key, line, _invoice_header(fields, row))


def _invoice_header(fields: Fields, row: Row) -> dict[str, Any]:
    """What an invoice row says of the whole invoice; what it must say and lacks is an error
    naming the field (nothing is taken from gateway.yaml)."""
    means = fields.text(row, "payment_means_code", required=True)
    header: dict[str, Any] = {
        "invoice_date": fields.date(row, "invoice_date"),
        "due_date": fields.date(row, "due_date"),
        "currency": fields.text(row, "currency", required=True),
        "payment_means_code": means,
        "payment_account": fields.text(row, "payment_account", required=means in CREDIT_TRANSFERS),
        "payment_account_branch": fields.text(row, "payment_account_branch"),
        "payment_reference": fields.text(row, "payment_reference", required=True),
        "payment_terms": fields.text(row, "payment_terms"),
        "invoice_note": fields.text(row, "invoice_note"),
        "payable_amount": fields.decimal(row, "payable_amount", required=True, negative=True),
        "tax_amount": fields.decimal(row, "tax_amount", negative=True),
    }
    if header["invoice_date"] is None:
        raise fields.empty(row, "invoice_date")
    return header


PARSERS: MappingProxyType[ReplyKind, Callable[[Fields, Row], Parsed]] = MappingProxyType(
    {
        ReplyKind.CONFIRMATION: _confirmation_row,
        ReplyKind.DESPATCH: _despatch_row,
        ReplyKind.INVOICE: _invoice_row,
    }
)
