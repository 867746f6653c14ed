"""A reply file's bytes -> a table: its column titles and its non-blank data rows.

CSV is decoded with the map's declared encoding (``utf-8-sig`` by default, so a BOM is fine)
and split with its delimiter; every cell is text. XLSX is read with openpyxl in read-only mode
(streaming, formulas as their cached values); cells keep their types, and a number the
workbook formats as a percentage arrives as text such as ``"25%"``. Row numbers are the ones a
person sees: the spreadsheet row, or the CSV line where the record starts.

Errors: bytes that do not decode -> ``BAD_ENCODING``; bytes that are no CSV / XLSX ->
``NOT_WELL_FORMED``; an empty payload -> ``EMPTY``; a missing sheet or header row, or a row
with more cells than titles -> ``INTERPRETATION_FAILED``.
"""

from __future__ import annotations

import csv
import io
import warnings
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from edi_gateway.errors import DocumentError, ErrorCode
from edi_gateway.replies.cells import CellError, excel_decimal, text_of
from edi_gateway.replies.columns import ReplyMap

__all__ = ["Row", "Table", "read_table"]

_ZIP_MAGIC = b"PK\x03\x04"
_HUNDRED = 100


@dataclass(frozen=True, slots=True)
class Row:
    """One data row: its number in the file (1-based) and its cells, one per column title."""

    number: int
    cells: tuple[object, ...]


@dataclass(frozen=True, slots=True)
class Table:
    """The column titles (as written in the file) and the data rows below them."""

    header_row: int
    titles: tuple[str, ...]
    rows: list[Row]


def read_table(payload: bytes, filename: str, mapping: ReplyMap) -> Table:
    """Read ``payload`` as the CSV or XLSX file ``mapping`` describes.

    Blank rows are skipped; rows above ``header_row`` are ignored.

    Raises:
        DocumentError: EMPTY, BAD_ENCODING, NOT_WELL_FORMED or INTERPRETATION_FAILED, the
            message naming ``filename`` (and the row, also given as ``line``).
    """
    if not payload:
        raise DocumentError(ErrorCode.EMPTY, f"{filename}: the file is empty")
    if mapping.format == "csv":
        return _csv_table(payload, filename, mapping)
    return _xlsx_table(payload, filename, mapping)


def _csv_table(payload: bytes, filename: str, mapping: ReplyMap) -> Table:
    if payload.startswith(_ZIP_MAGIC):
        raise DocumentError(
            ErrorCode.NOT_WELL_FORMED,
            f"{filename}: this is a zip archive (an Excel workbook?), but the map "
            f"{mapping.source} expects CSV text",
        )
    try:
        text = payload.decode(mapping.encoding)
    except UnicodeDecodeError as exc:
        line = payload[: exc.start].count(b"\n") + 1
        raise DocumentError(
            ErrorCode.BAD_ENCODING,
            f"{filename}: line {line}: byte {payload[exc.start : exc.start + 1]!r} at offset "
            f"{exc.start} is not valid {mapping.encoding} (the encoding the map "
            f"{mapping.source} declares)",
            line=line,
        ) from exc
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=mapping.delimiter, strict=True)
    records: list[tuple[int, list[str]]] = []
    start = 1
    try:
        for record in reader:
            records.append((start, record))
            start = reader.line_num + 1
    except csv.Error as exc:
        raise DocumentError(
            ErrorCode.NOT_WELL_FORMED,
            f"{filename}: line {reader.line_num}: not readable as CSV: {exc}",
            line=reader.line_num,
        ) from exc
    return _table(filename, mapping, iter(records))


def _xlsx_table(payload: bytes, filename: str, mapping: ReplyMap) -> Table:
    from openpyxl import load_workbook
    from openpyxl.utils.exceptions import InvalidFileException

    not_a_workbook = (
        zipfile.BadZipFile,
        InvalidFileException,
        KeyError,
        ValueError,
        OSError,
        AttributeError,  # e.g. a chart sheet where a worksheet was expected
    )
    try:
        with warnings.catch_warnings():  # openpyxl warns about features it ignores
            warnings.simplefilter("ignore")
            book = load_workbook(io.BytesIO(payload), read_only=True, data_only=True)
    except (*not_a_workbook, SyntaxError) as exc:  # SyntaxError: broken XML inside the zip
        raise DocumentError(
            ErrorCode.NOT_WELL_FORMED,
            f"{filename}: not a readable Excel (xlsx) workbook: {exc or type(exc).__name__}",
        ) from exc
    try:
        sheet = _sheet(book, filename, mapping)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            rows = list(_xlsx_rows(sheet))
    except (*not_a_workbook, SyntaxError) as exc:
        raise DocumentError(
            ErrorCode.NOT_WELL_FORMED, f"{filename}: the worksheet cannot be read: {exc}"
        ) from exc
    finally:
        book.close()
    return _table(filename, mapping, iter(rows))


def _sheet(book: Any, filename: str, mapping: ReplyMap) -> Any:
    names: list[str] = list(book.sheetnames)
    wanted = mapping.sheet
    if wanted is None:
        if not names:
            raise DocumentError(
                ErrorCode.INTERPRETATION_FAILED, f"{filename}: the workbook has no sheet"
            )
        return book[names[0]]
    if isinstance(wanted, int):
        if wanted <= len(names):
            return book[names[wanted - 1]]
    elif wanted in names:
        return book[wanted]
    raise DocumentError(
        ErrorCode.INTERPRETATION_FAILED,
        f"{filename}: no sheet {wanted!r} (map {mapping.source}); the workbook has {names}",
    )


def _xlsx_rows(sheet: Any) -> Iterator[tuple[int, list[object]]]:
    for number, cells in enumerate(sheet.iter_rows(), start=1):
        yield number, [_cell_value(cell) for cell in cells]


def _cell_value(cell: Any) -> object:
    value = cell.value
    percent_format = "%" in (getattr(cell, "number_format", None) or "")
    if not percent_format or not isinstance(value, int | float) or isinstance(value, bool):
        return value
    try:
        percent = excel_decimal(float(value)) * _HUNDRED
    except CellError:
        return value
    return f"{format(percent.normalize(), 'f')}%"


def _table(filename: str, mapping: ReplyMap, records: Iterator[tuple[int, list[Any]]]) -> Table:
    titles: tuple[str, ...] | None = None
    rows: list[Row] = []
    for number, cells in records:
        if titles is None:
            if number == mapping.header_row:
                titles = tuple(text_of(c) or "" for c in cells)
            continue
        if all(text_of(c) is None for c in cells):
            continue
        if len(cells) > len(titles) and any(text_of(c) for c in cells[len(titles) :]):
            raise DocumentError(
                ErrorCode.INTERPRETATION_FAILED,
                f"{filename}: row {number} has {len(cells)} cells but the header row "
                f"{mapping.header_row} only {len(titles)} titles (check the delimiter and "
                "quoting, or decimal commas in an unquoted comma-separated file)",
                line=number,
            )
        padded = list(cells[: len(titles)]) + [None] * (len(titles) - len(cells))
        rows.append(Row(number, tuple(padded)))
    if titles is None:
        raise DocumentError(
            ErrorCode.INTERPRETATION_FAILED,
            f"{filename}: the file ends before its header row {mapping.header_row} "
            f"(map {mapping.source})",
        )
    return Table(mapping.header_row, titles, rows)
