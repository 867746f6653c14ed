"""Human formats of outbound documents: PDF, Excel and CSV, labelled in the partner's language.

Every renderer is pure (domain documents in, bytes out; no store, no I/O):

- :mod:`.pdf`: ``order_pdf``, ``invoice_pdf``; :mod:`.labels`: ``packing_slip_pdf`` (delivery
  note, box contents, one SSCC label per box); fonts embedded (:mod:`.fonts`);
- :mod:`.xlsx`: ``orders_workbook`` (one sheet per order, or all lines on one sheet);
- :mod:`.csv`: ``orders_csv`` (one row per order line, UTF-8 with BOM, ``;``).

Labels come from :mod:`edi_gateway.outbound.i18n`. This module holds what the tabular formats
share: the columns of an order line table (catalogue key and value type of each) and the
VAT breakdown of a document's lines.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from enum import Enum
from typing import Any

from edi_gateway.domain.documents import Line, Order, Party
from edi_gateway.domain.order_data import DEFAULT_ORDER_TYPE, ORDER_TYPES, Contact


class Kind(Enum):
    """How a column's values are typed and formatted."""

    TEXT = "text"
    LINE_NO = "line_no"
    QUANTITY = "quantity"
    PRICE = "price"
    AMOUNT = "amount"
    DATE = "date"


_CENT = Decimal("0.01")
# Names a VAT category and rate may have on a Line (read with getattr: being added to Line).
_VAT_CATEGORY_FIELDS = ("vat_category", "tax_category", "vat_category_code", "tax_category_id")
_VAT_RATE_FIELDS = ("vat_rate", "vat_percent", "tax_percent", "tax_rate")

CellValue = str | int | Decimal | date | None
XLSX_MEDIA_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
"""The media type of a workbook (here, not in the layouts: a bundle names it without them)."""


@dataclass(frozen=True, slots=True)
class Column:
    """One column of an order line table: catalogue key of its heading, kind, value getter."""

    key: str
    kind: Kind
    value: Callable[[Order, Line], CellValue]


def party_name(party: Party | None) -> str:
    """The party's name, else its primary key, else ``""``."""
    if party is None:
        return ""
    return party.name or party.key() or ""


def party_id(party: Party | None) -> str:
    """The party's primary key (``0088:7350051600005``), else ``""``."""
    return (party.key() or "") if party else ""


def line_number(line_id: str) -> int | str:
    """A line id as a number when it is a plain integer (``"7"`` -> 7, ``"007"`` stays text)."""
    digits = line_id.isascii() and line_id.isdigit()
    return int(line_id) if digits and (line_id == "0" or not line_id.startswith("0")) else line_id


HEADER_COLUMNS: tuple[Column, ...] = (
    Column("order.number", Kind.TEXT, lambda o, _: o.document_id),
    Column("order.issue_date", Kind.DATE, lambda o, _: o.issue_date),
    Column("doc.currency", Kind.TEXT, lambda o, _: o.currency),
    Column("party.buyer", Kind.TEXT, lambda o, _: party_name(o.buyer)),
    Column("party.buyer_id", Kind.TEXT, lambda o, _: party_id(o.buyer)),
    Column("party.seller", Kind.TEXT, lambda o, _: party_name(o.seller)),
    Column("party.seller_id", Kind.TEXT, lambda o, _: party_id(o.seller)),
    Column("order.type", Kind.TEXT, lambda o, _: o.order_type),
    Column("order.buyer_reference", Kind.TEXT, lambda o, _: o.buyer_reference),
    Column("party.delivery", Kind.TEXT, lambda o, _: delivery_place(o)),
    Column("delivery.address", Kind.TEXT, lambda o, _: delivery_address(o)),
    Column("delivery.from", Kind.DATE, lambda o, _: o.delivery.start_date if o.delivery else None),
    Column("delivery.to", Kind.DATE, lambda o, _: o.delivery.end_date if o.delivery else None),
    Column("contact.buyer", Kind.TEXT, lambda o, _: contact_text(o.buyer_contact)),
    Column(
        "contact.delivery",
        Kind.TEXT,
        lambda o, _: contact_text(o.delivery.contact if o.delivery else None),
    ),
    Column("order.attachments", Kind.TEXT, lambda o, _: attachments_text(o)),
    Column("doc.notes", Kind.TEXT, lambda o, _: "\n".join(o.notes) or None),
)
"""The order's header fields, repeated on every row of a one-table layout (the order type as
its code, as sent: docs/adr/0029)."""


def delivery_place(order: Order) -> str | None:
    """Where to deliver: location name or delivery party, and the location ID."""
    return (order.delivery.place() or None) if order.delivery else None


def delivery_address(order: Order) -> str | None:
    """The delivery address on one line."""
    address = order.delivery.address if order.delivery else None
    return (address.text() or None) if address else None


def delivery_period(order: Order) -> str | None:
    """The requested delivery period with its times (``2026-12-14 08:00:00 – ...``)."""
    return (order.delivery.period() or None) if order.delivery else None


def contact_text(contact: Contact | None) -> str | None:
    """A contact as ``name, telephone, email``."""
    return (contact.text() or None) if contact else None


def attachments_text(order: Order) -> str | None:
    """The order's attached documents as ``type ref (file or URI)``, ``; `` between them."""
    attached = [
        " ".join(p for p in (a.document_type, a.ref, f"({a.filename or a.uri or '-'})") if p)
        for a in order.attachments
    ]
    return "; ".join(attached) or None


def order_type_label(order: Order, t: Callable[[str], str]) -> str:
    """The order type in the reader's language with its code (``Ramorder (221)``); no code
    sent reads as 220 (Peppol T01); a code outside the Peppol list is shown as it is."""
    code = order.order_type or DEFAULT_ORDER_TYPE
    name = t(f"order_type.{code}") if code in ORDER_TYPES else None
    label = f"{name} ({code})" if name else code
    return (
        f"{label}, {t('delivery.express')}" if order.delivery and order.delivery.express else label
    )


LINE_COLUMNS: tuple[Column, ...] = (
    Column("column.line", Kind.LINE_NO, lambda _, ln: line_number(ln.line_id)),
    Column("column.seller_item", Kind.TEXT, lambda _, ln: ln.seller_item_id),
    Column("column.buyer_item", Kind.TEXT, lambda _, ln: ln.buyer_item_id),
    Column("column.gtin", Kind.TEXT, lambda _, ln: ln.standard_item_id),
    Column("column.item", Kind.TEXT, lambda _, ln: ln.item_name),
    Column(
        "column.quantity", Kind.QUANTITY, lambda _, ln: ln.quantity.value if ln.quantity else None
    ),
    Column("column.unit", Kind.TEXT, lambda _, ln: ln.quantity.unit if ln.quantity else None),
    Column("column.price", Kind.PRICE, lambda _, ln: ln.price),
    Column("column.amount", Kind.AMOUNT, lambda _, ln: ln.line_amount),
    Column("column.delivery_date", Kind.DATE, lambda _, ln: ln.delivery_date),
    Column("column.note", Kind.TEXT, lambda _, ln: ln.note),
    Column("column.delivery_place", Kind.TEXT, lambda _, ln: ln.delivery_place),
)
"""The columns of an order line (identifiers such as GTINs stay text: leading zeros)."""


def vat_breakdown(lines: Iterable[Line]) -> list[tuple[str, Decimal, Decimal, Decimal]]:
    """``(category, rate, taxable amount, VAT amount)`` per VAT category and rate, in order.

    Lines without a VAT category or amount are left out; VAT is rounded half-up to cents.
    """
    taxable: dict[tuple[str, Decimal], Decimal] = {}
    for line in lines:
        vat = vat_of(line)
        if vat is not None and line.line_amount is not None:
            taxable[vat] = taxable.get(vat, Decimal(0)) + line.line_amount
    return [
        (category, rate, base, (base * rate / 100).quantize(_CENT, rounding=ROUND_HALF_UP))
        for (category, rate), base in taxable.items()
    ]


def vat_of(line: Line) -> tuple[str, Decimal] | None:
    """The line's VAT ``(category, rate)`` when the line carries them, else ``None``.

    Reads plain fields (``vat_category`` + ``vat_rate`` and similar names) or one object field
    with ``id``/``code`` and ``percent``/``rate`` attributes.
    """
    category: Any = _first_attr(line, _VAT_CATEGORY_FIELDS)
    rate: Any = _first_attr(line, _VAT_RATE_FIELDS)
    if category is not None and not isinstance(category, str):
        rate = rate if rate is not None else _first_attr(category, ("percent", "rate"))
        category = _first_attr(category, ("id", "code", "category"))
    if not isinstance(category, str) or not category:
        return None
    return category, Decimal(str(rate)) if rate is not None else Decimal(0)


def _first_attr(obj: object, names: Sequence[str]) -> object:
    return next((v for v in (getattr(obj, n, None) for n in names) if v is not None), None)
