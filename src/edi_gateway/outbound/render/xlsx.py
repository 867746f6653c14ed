"""Orders as an Excel workbook (.xlsx, openpyxl), labelled in the partner's language.

Two layouts:

- one sheet per order (the default, for a bundle): a header block (order number, order date,
  buyer, supplier, currency, order total) above the line table;
- ``one_sheet=True``: every line of every order on one sheet, the order's header fields
  repeated in the first columns of each row, so the sheet can be filtered and sorted.

Cells are typed: quantities, prices and amounts are numbers (``int`` or ``Decimal``) with a
number format (``#,##0.00`` for amounts), dates are real dates (``yyyy-mm-dd``), never numbers
as text. Identifiers (item numbers, GTINs, party ids) stay text on purpose: leading zeros and
13-digit GTINs must survive. Line numbers are numbers when they are plain integers. The line
table's header row is frozen and filtered; column widths follow the content (CJK characters
count double).
"""

from __future__ import annotations

import io
import re
import unicodedata
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, date, datetime
from decimal import Decimal
from itertools import chain, islice
from typing import Any
from zipfile import ZIP_DEFLATED, ZipFile

from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.drawing.spreadsheet_drawing import SpreadsheetDrawing
from openpyxl.styles import Alignment, Font, PatternFill
from openpyxl.utils import get_column_letter
from openpyxl.worksheet._writer import WorksheetWriter
from openpyxl.writer.excel import ExcelWriter

from edi_gateway.domain.documents import Order, Party
from edi_gateway.outbound.i18n import plain_exponent, translator
from edi_gateway.outbound.render import (
    HEADER_COLUMNS,
    LINE_COLUMNS,
    CellValue,
    Column,
    Kind,
    attachments_text,
    contact_text,
    delivery_address,
    delivery_period,
    delivery_place,
    order_type_label,
    party_id,
    party_name,
)

AMOUNT_FORMAT = "#,##0.00"
PRICE_FORMAT = "#,##0.00##"
INTEGER_FORMAT = "#,##0"
DATE_FORMAT = "yyyy-mm-dd"
_MIN_WIDTH, _MAX_WIDTH = 6, 60
_BAD_SHEET_CHARS = re.compile(r"[\[\]:*?/\\]")
_HEADING = Font(bold=True)
_TITLE = Font(bold=True, size=14)
_HEADER_FILL = PatternFill("solid", fgColor="DDE4EE")
_LEFT = Alignment(horizontal="left")

Sheet = Any  # openpyxl's write-only worksheet (openpyxl ships no type hints)
Grid = dict[int, dict[int, Any]]  # row -> column -> value or styled cell, filled in any order
_WIDTH_ROWS = 1001  # column widths look at the first 1,001 rows of a line table


def orders_workbook(
    orders: Sequence[Order],
    *,
    language: str = "en",
    one_sheet: bool = False,
    cancelled: str | None = None,
) -> bytes:
    """The orders as .xlsx bytes: one sheet per order, or all lines on one sheet.

    With no orders the workbook has one sheet holding the line table's header row only.
    ``cancelled`` (the cancellation's ID and reason) marks the orders CANCELLED: in the
    workbook's title and, on each order's sheet, in its title and a row saying why.

    Written in openpyxl's write-only mode (docs/adr/0039): rows stream to the file in order,
    so memory and time grow with the cells written, never with a sheet's extent.
    """
    t = translator(language)
    book = Book()
    if one_sheet or not orders:
        sheet = book.sheet(_sheet_title(t("order.sheet"), set()))
        _write_all_lines(sheet, orders, t)
        book.done(sheet)
    else:
        used: set[str] = set()
        for order in orders:
            sheet = book.sheet(_sheet_title(order.document_id, used))
            _write_order(sheet, order, t, cancelled)
            book.done(sheet)
    book.workbook.properties.title = t("order.sheet")
    if cancelled is not None:
        book.workbook.properties.title = f"{t('order.cancelled')}: {t('order.sheet')}"
    return book.save()


class Book:
    """A write-only workbook whose sheets go into the .xlsx file as each is done.

    Time and memory grow with the cells written, not with the sheets (docs/adr/0039), where
    openpyxl's own write-only workbook costs more per sheet the more there are: it checks each
    new title against a list of every title (quadratic: 13 s of a 5,000-sheet bundle), and
    keeps each sheet in a temporary file of its own until the save (opened and removed per
    sheet: 3.6 ms a sheet here). Here a sheet's rows go to memory, and into the zip once the
    sheet is done; openpyxl's writer still writes every part of the file (it is pinned: this
    uses its ``_sheets``, ``_writer`` and ``ExcelWriter``).
    """

    def __init__(self) -> None:
        self.workbook = Workbook(write_only=True)
        self._out = io.BytesIO()
        self._archive = ZipFile(self._out, "w", ZIP_DEFLATED, allowZip64=True)

    def sheet(self, title: str) -> Sheet:
        """A new last sheet titled ``title``, which the caller made unique (case-insensitive):
        the other sheets are out of openpyxl's sight while it checks the title."""
        workbook = self.workbook
        sheets, workbook._sheets = workbook._sheets, []
        try:
            sheet = workbook.create_sheet(title)
        finally:
            workbook._sheets = sheets + workbook._sheets
        sheet._id = len(workbook._sheets)  # what the save numbers it: its place, from 1
        return sheet

    def done(self, sheet: Sheet) -> None:
        """``sheet`` is complete: into the file with it, its rows out of memory."""
        start_rows(sheet)
        sheet.close()
        self._archive.writestr(sheet.path[1:], sheet._writer.out.getvalue())
        sheet._writer.out = None  # written: the save only lists it (_BookWriter)

    def save(self) -> bytes:
        """The .xlsx bytes (the rest of what ``Workbook.save`` writes around the sheets)."""
        self.workbook.properties.modified = datetime.now(UTC).replace(tzinfo=None)
        _BookWriter(self.workbook, self._archive).write_data()
        self._archive.close()
        return self._out.getvalue()


def start_rows(sheet: Sheet) -> None:
    """Begin ``sheet``'s rows in memory (its widths, panes and filter are set by now)."""
    if sheet._writer is None:
        sheet._writer = WorksheetWriter(sheet, out=io.BytesIO())
        sheet._writer.write_top()


class _BookWriter(ExcelWriter):  # type: ignore[misc]
    """openpyxl's writer, listing a sheet :meth:`Book.done` already put in the file."""

    def write_worksheet(self, ws: Sheet) -> None:
        writer = ws._writer
        if writer is None or writer.out is not None:
            super().write_worksheet(ws)
            return
        ws._drawing = SpreadsheetDrawing()
        ws._drawing.charts = ws._charts
        ws._drawing.images = ws._images
        ws._rels = writer._rels
        self.manifest.append(ws)


def styled(
    sheet: Sheet,
    value: object,
    *,
    font: Font | None = None,
    fill: PatternFill | None = None,
    alignment: Alignment | None = None,
    number_format: str | None = None,
) -> Any:
    """A write-only cell of ``sheet`` holding ``value`` with these styles."""
    cell = WriteOnlyCell(sheet, value=value)
    if font is not None:
        cell.font = font
    if fill is not None:
        cell.fill = fill
    if alignment is not None:
        cell.alignment = alignment
    if number_format is not None:
        cell.number_format = number_format
    return cell


def write_rows(sheet: Sheet, grid: Grid, *, upto: int = 0) -> int:
    """Append rows 1.. of ``grid`` (at least up to row ``upto``) in order; return the last."""
    start_rows(sheet)
    last = max((*grid, upto), default=0)
    for row in range(1, last + 1):
        cells = grid.get(row, {})
        sheet.append([cells.get(c) for c in range(1, max(cells, default=0) + 1)])
    return last


def _write_order(
    sheet: Sheet, order: Order, t: Callable[[str], str], cancelled: str | None = None
) -> None:
    title = f"{t('order.title')} {order.document_id}"
    grid: Grid = {r: {} for r in range(1, 6)}
    if cancelled is not None:
        title = f"{t('order.cancelled')}: {title}"
        grid[5][1] = styled(sheet, t("order.cancellation"), font=_HEADING)
        grid[5][2] = cancelled
    grid[1][1] = styled(sheet, title, font=_TITLE)
    block: list[tuple[str, CellValue, str | None]] = [
        ("order.number", order.document_id, None),
        ("order.issue_date", order.issue_date, DATE_FORMAT),
        ("doc.currency", order.currency, None),
        ("party.buyer", _party(order.buyer), None),
        ("party.seller", _party(order.seller), None),
        ("order.total", order.total_amount, AMOUNT_FORMAT),
        ("order.type", order_type_label(order, t), None),
        ("order.buyer_reference", order.buyer_reference, None),
        ("contact.buyer", contact_text(order.buyer_contact), None),
        ("party.delivery", delivery_place(order), None),
        ("delivery.address", delivery_address(order), None),
        ("delivery.period", delivery_period(order), None),
        ("contact.seller", contact_text(order.seller_contact), None),
        (
            "contact.delivery",
            contact_text(order.delivery.contact if order.delivery else None),
            None,
        ),
        ("order.attachments", attachments_text(order), None),
    ]
    if order.notes:  # row 5, right of a cancellation's reason
        grid[5][4] = styled(sheet, t("doc.notes"), font=_HEADING)
        grid[5][5] = "\n".join(order.notes)
    # Label/value pairs, three rows each (columns A-B, D-E, G-H, J-K): a short frozen block.
    for index, (key, value, number_format) in enumerate(block):
        row, column = 2 + index % 3, 1 + 3 * (index // 3)
        grid[row][column] = styled(sheet, t(key), font=_HEADING)
        grid[row][column + 1] = styled(
            sheet,
            value,
            alignment=_LEFT,
            number_format=number_format if number_format and value is not None else None,
        )
    _write_table(sheet, [order], LINE_COLUMNS, t, header_row=6, above=grid, extra=_labels(block, t))


def _labels(
    block: Sequence[tuple[str, object, object]], t: Callable[[str], str]
) -> dict[int, list[str]]:
    """The header block's labels by column (A, D, G...), so the widths leave room for them."""
    return {
        1 + 3 * (i // 3): [t(k) for k, _, _ in block[i : i + 3]] for i in range(0, len(block), 3)
    }


def _write_all_lines(sheet: Sheet, orders: Sequence[Order], t: Callable[[str], str]) -> None:
    _write_table(sheet, orders, (*HEADER_COLUMNS, *LINE_COLUMNS), t, header_row=1, above={})


def _write_table(
    sheet: Sheet,
    orders: Sequence[Order],
    columns: Sequence[Column],
    t: Callable[[str], str],
    *,
    header_row: int,
    above: Grid,
    extra: dict[int, list[str]] | None = None,
) -> None:
    """The line table under the rows ``above``: widths from its first rows, then every row."""
    rows = _line_rows(orders, columns)
    first = list(islice(rows, _WIDTH_ROWS))
    _set_widths(sheet, columns, t, first, extra or {})
    count = sum(len(o.lines) for o in orders)
    last = f"{get_column_letter(len(columns))}{header_row + count}"
    sheet.freeze_panes = f"A{header_row + 1}"
    sheet.auto_filter.ref = f"A{header_row}:{last}"
    above[header_row] = {
        index: styled(sheet, t(column.key), font=_HEADING, fill=_HEADER_FILL)
        for index, column in enumerate(columns, start=1)
    }
    write_rows(sheet, above, upto=header_row)
    for values in chain(first, rows):
        sheet.append([_cell(sheet, value, kind) for value, kind in values])


def _line_rows(
    orders: Sequence[Order], columns: Sequence[Column]
) -> Iterator[list[tuple[CellValue, Kind]]]:
    """Each line's cells; the order's own fields (HEADER_COLUMNS read no line) once an order."""
    shared = [c for c in columns if c in HEADER_COLUMNS]
    own = columns[len(shared) :]
    assert list(columns[: len(shared)]) == shared, "the order's columns come first"
    for order in orders:
        if not order.lines:
            continue
        head = [(_typed(c.value(order, order.lines[0])), c.kind) for c in shared]
        for line in order.lines:
            yield [*head, *((_typed(c.value(order, line)), c.kind) for c in own)]


def _cell(sheet: Sheet, value: CellValue, kind: Kind) -> Any:
    number_format = _number_format(kind, value)
    return value if number_format is None else styled(sheet, value, number_format=number_format)


def _typed(value: CellValue) -> CellValue:
    """Empty text as no cell, integral Decimals as ``int`` (so ``40`` shows as 40, not 40.0)."""
    if value == "":
        return None
    if isinstance(value, Decimal) and value == value.to_integral_value():
        return int(value)
    return value


def _number_format(kind: Kind, value: CellValue) -> str | None:
    if value is None or isinstance(value, str):
        return None
    if kind is Kind.DATE or isinstance(value, date):
        return DATE_FORMAT
    if kind is Kind.AMOUNT:
        return AMOUNT_FORMAT
    if kind is Kind.PRICE:
        return PRICE_FORMAT
    if kind is Kind.QUANTITY and isinstance(value, Decimal):
        return "#,##0." + "#" * max(1, -plain_exponent(value))
    return INTEGER_FORMAT if kind is Kind.QUANTITY else None


def _set_widths(
    sheet: Sheet,
    columns: Sequence[Column],
    t: Callable[[str], str],
    rows: Sequence[Sequence[tuple[CellValue, Kind]]],
    extra: dict[int, list[str]],
) -> None:
    """Column widths from the heading and the longest value of ``rows`` (capped)."""
    widths = {i: _width(t(c.key)) + 2 for i, c in enumerate(columns, start=1)}
    for index, texts in extra.items():
        widths[index] = max(widths.get(index, 0), *(_width(text) for text in texts))
    for row in rows:
        for index, (value, _) in enumerate(row, start=1):
            if value is not None:
                widths[index] = max(widths[index], _width(_shown(value)))
    for index, width in widths.items():
        letter = get_column_letter(index)
        sheet.column_dimensions[letter].width = min(_MAX_WIDTH, max(_MIN_WIDTH, width + 1))


def _shown(value: object) -> str:
    if isinstance(value, date):
        return "yyyy-mm-dd"
    if isinstance(value, int | Decimal):
        return f"{value:,.2f}"
    return str(value)


def _width(text: str) -> int:
    """Display width in Excel character units: East Asian wide characters count two."""
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def _party(party: Party | None) -> str:
    if party is None:
        return ""
    name, key = party_name(party), party_id(party)
    return f"{name} ({key})" if key and key != name else name


def _sheet_title(wanted: str, used: set[str]) -> str:
    """A valid, unique sheet title: no ``[]:*?/\\``, at most 31 characters."""
    base = _BAD_SHEET_CHARS.sub("_", wanted).strip("'") or "Sheet"
    title, n = base[:31], 1
    while title.lower() in used:
        n += 1
        suffix = f" ({n})"
        title = base[: 31 - len(suffix)] + suffix
    used.add(title.lower())
    return title
