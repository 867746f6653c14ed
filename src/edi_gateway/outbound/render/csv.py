"""Orders as CSV: one row per order line, the order's header fields repeated on every row.

Format (the defaults are chosen so that Excel opens the file correctly by double-click in the
partners' locales, nl and sv, where the list separator is ``;``):

- **encoding** ``utf-8-sig``: UTF-8 with a byte-order mark. Excel reads a BOM-less CSV in the
  machine's ANSI code page and garbles å, ë and 一次性医用口罩; with the BOM it reads UTF-8.
  Any Python codec may be passed; characters it cannot encode raise ``UnicodeEncodeError``.
- **delimiter** ``;``; fields holding the delimiter, a quote or a line break are quoted with
  ``"`` (doubled inside), as RFC 4180 does; rows end with CRLF.
- **header row** in the partner's language (the same labels as the PDF and Excel formats).
- **numbers**: no thousands separator; the decimal separator is the language's (``,`` for nl
  and sv, ``.`` for en and zh) unless ``decimal_separator`` says otherwise. Amounts have two
  decimals, prices at least two, quantities no trailing zeros.
- **dates** ISO 8601 (``2026-11-06``), which Excel recognises as a date in every locale.

Read it back with ``csv.reader(io.StringIO(data.decode(encoding)), delimiter=delimiter)``.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Sequence
from datetime import date
from decimal import Decimal

from edi_gateway.domain.documents import Line, Order
from edi_gateway.outbound.i18n import decimal_separator as language_separator
from edi_gateway.outbound.i18n import format_amount, plain_exponent, plain_number, translator
from edi_gateway.outbound.render import HEADER_COLUMNS, LINE_COLUMNS, CellValue, Column, Kind

DEFAULT_DELIMITER = ";"
DEFAULT_ENCODING = "utf-8-sig"
_END = "\r\n"


def orders_csv(
    orders: Sequence[Order],
    *,
    language: str = "en",
    delimiter: str = DEFAULT_DELIMITER,
    encoding: str = DEFAULT_ENCODING,
    decimal_separator: str | None = None,
    cancelled: str | None = None,
) -> bytes:
    """The lines of ``orders`` as CSV bytes (see the module docstring for the format).

    An order without lines still gives one row (its header fields, empty line fields), so no
    order of a bundle disappears from the file. ``cancelled`` (the cancellation's ID and
    reason) puts two columns first on every row: CANCELLED and that text.

    Written for bundles of thousands of orders (docs/adr/0039): the csv module quotes each
    field on its own, so an order's header fields are made into text once, and each of its
    rows is that text, the delimiter and the line's fields. Rows go to a list joined once.
    """
    if len(delimiter) != 1:
        raise ValueError("delimiter must be a single character")
    point = decimal_separator or language_separator(language)
    t = translator(language)
    marks = [t("order.cancelled"), cancelled] if cancelled is not None else []
    rows: list[str] = []
    writer = csv.writer(_Rows(rows), delimiter=delimiter, lineterminator=_END)
    heads = [t("order.status"), t("order.cancellation")] if marks else []
    writer.writerow([*heads, *(t(c.key) for c in (*HEADER_COLUMNS, *LINE_COLUMNS))])
    header_cells = [_cell(c, point) for c in HEADER_COLUMNS]
    line_cells = [_cell(c, point) for c in LINE_COLUMNS]
    put, write = rows.append, writer.writerow
    for order in orders:
        lines = order.lines or [Line(line_id="")]
        # The order's fields once per order (they read no line), then each line's.
        first = lines[0]
        write([*marks, *(cell(order, first) for cell in header_cells)])
        head = rows.pop()[: -len(_END)] + delimiter
        for line in lines:
            put(head)
            write([cell(order, line) for cell in line_cells])
    return "".join(rows).encode(encoding)


class _Rows:
    """What ``csv.writer`` writes to: each row's text appended to a list (no buffer)."""

    __slots__ = ("write",)

    def __init__(self, rows: list[str]) -> None:
        self.write = rows.append


def _cell(column: Column, point: str) -> Callable[[Order, Line], CellValue]:
    """What the csv writer is given for ``column``: text columns their value as it is (the
    writer writes ``None`` as ``""`` and anything else as ``str()`` of it, as ``_plain``
    would), dates and numbers their text."""
    value = column.value
    if column.kind in (Kind.TEXT, Kind.LINE_NO):
        return value
    text = _formatter(column.kind, point)
    if column.kind is Kind.DATE:
        return lambda order, line: text(value(order, line))
    # A number's text by its exact digits (``str`` of a Decimal keeps its sign, digits and
    # exponent), made once per bundle: prices and quantities repeat from line to line.
    done: dict[str, str] = {}

    def number(order: Order, line: Line) -> str:
        found = value(order, line)
        if type(found) is not Decimal:
            return text(found)
        digits = str(found)
        made = done.get(digits)
        if made is None:
            made = done[digits] = text(found)
        return made

    return number


def _formatter(kind: Kind, point: str) -> Callable[[CellValue], str]:
    """The text of a cell of ``kind``: ``""`` for no value, numbers with ``point``."""
    if kind is Kind.DATE:
        return lambda value: value.isoformat() if isinstance(value, date) else _plain(value)
    if kind in (Kind.AMOUNT, Kind.PRICE, Kind.QUANTITY):
        number = {Kind.AMOUNT: _amount, Kind.PRICE: _price, Kind.QUANTITY: plain_number}[kind]
        return lambda value: (
            number(value).replace(".", point) if isinstance(value, Decimal) else _plain(value)
        )
    return _plain


def _plain(value: CellValue) -> str:
    return "" if value is None else str(value)


def _amount(value: Decimal) -> str:
    return format_amount(value, "en", grouped=False)


def _price(value: Decimal) -> str:
    return f"{value:.{max(2, -plain_exponent(value))}f}"
