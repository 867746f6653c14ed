"""Typed access to the cells of a reply table by our field names, with located errors.

:class:`Fields` finds each mapped column in the file's header (case and spacing ignored) and
reads a field of a row as text, ``Decimal`` or ``date``, falling back to the map's
``defaults``. Every problem is a :class:`RowError` whose message names the file, the row and
the supplier's column title; :class:`Problems` collects them so that one run reports every bad
row at once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

from edi_gateway.errors import DocumentError, ErrorCode
from edi_gateway.replies.cells import CellError, date_of, decimal_of, text_of
from edi_gateway.replies.columns import REQUIRED, ReplyMap, normalize_title
from edi_gateway.replies.tabular import Row, Table

__all__ = ["Fields", "Problems", "RowError"]

MAX_LISTED = 20
"""How many problems one error message lists before it only counts the rest."""


class RowError(ValueError):
    """One bad row: ``message`` names file, row and column; ``row`` is the row number."""

    def __init__(self, message: str, row: int) -> None:
        super().__init__(message)
        self.message = message
        self.row = row


@dataclass(slots=True)
class Problems:
    """Row errors found so far in one file."""

    filename: str
    found: list[RowError] = field(default_factory=list)

    def add(self, error: RowError) -> None:
        """Record one row error."""
        self.found.append(error)

    def raise_any(self) -> None:
        """Raise one INTERPRETATION_FAILED listing the problems (``line`` = the first row)."""
        if not self.found:
            return
        listed = [e.message for e in self.found[:MAX_LISTED]]
        more = len(self.found) - len(listed)
        if more:
            listed.append(f"... and {more} more")
        raise DocumentError(
            ErrorCode.INTERPRETATION_FAILED,
            "; ".join(listed),
            line=min(e.row for e in self.found),
        )


class Fields:
    """The mapped columns of one table, read by field name."""

    def __init__(self, table: Table, filename: str, mapping: ReplyMap) -> None:
        self.filename = filename
        self.mapping = mapping
        self.index = _locate(table, filename, mapping)

    def where(self, row: Row, name: str) -> str:
        """``file, row N, column 'Title' (field)``: the place a message points to."""
        title = self.mapping.title(name)
        column = f"column {title!r} ({name})" if title else f"field {name}"
        return f"{self.filename}, row {row.number}, {column}"

    def error(self, row: Row, name: str, problem: str) -> RowError:
        """A :class:`RowError` about ``name`` in ``row``."""
        return RowError(f"{self.where(row, name)}: {problem}", row.number)

    def raw(self, row: Row, name: str) -> object:
        """The cell of ``name`` in ``row``, or the map's default when the cell is empty."""
        position = self.index.get(name)
        value = None if position is None else row.cells[position]
        if text_of(value) is None:
            return self.mapping.defaults.get(name)
        return value

    def text(self, row: Row, name: str, *, required: bool = False) -> str | None:
        """The field as stripped text; None when empty (a RowError when ``required``)."""
        value = text_of(self.raw(row, name))
        if value is None and required:
            raise self.empty(row, name)
        return value

    def empty(self, row: Row, name: str) -> RowError:
        """The RowError of a required field without a value: an empty cell, or a field the
        map gives no column (nor default) for."""
        if name in self.index:
            return self.error(row, name, "the cell is empty")
        return self.error(
            row, name, f"required, but the map {self.mapping.source} has no column for it"
        )

    def decimal(
        self, row: Row, name: str, *, required: bool = False, negative: bool = False
    ) -> Decimal | None:
        """The field as a ``Decimal``; negative values are refused unless ``negative``."""
        value = self.raw(row, name)
        if text_of(value) is None:
            if required:
                raise self.empty(row, name)
            return None
        try:
            number = decimal_of(value, decimal_comma=self.mapping.decimal_comma)
        except CellError as exc:
            raise self.error(row, name, str(exc)) from None
        if number < 0 and not negative:
            raise self.error(row, name, f"{number} is negative")
        return number

    def percent(self, row: Row, name: str) -> Decimal | None:
        """A rate in percent: ``25``, ``25 %`` and ``25%`` are all 25."""
        value = self.raw(row, name)
        text = text_of(value)
        if text is not None and isinstance(value, str) and text.endswith("%"):
            value = text[:-1].strip()
        try:
            return decimal_of(value, decimal_comma=self.mapping.decimal_comma) if text else None
        except CellError as exc:
            raise self.error(row, name, str(exc)) from None

    def date(self, row: Row, name: str) -> date | None:
        """The field as a date (Excel date cell or text in the map's ``date_format``)."""
        value = self.raw(row, name)
        if text_of(value) is None:
            return None
        try:
            return date_of(value, date_format=self.mapping.date_format)
        except CellError as exc:
            raise self.error(row, name, str(exc)) from None


def _locate(table: Table, filename: str, mapping: ReplyMap) -> dict[str, int]:
    """Field -> column position; INTERPRETATION_FAILED when a required title is missing."""
    positions: dict[str, list[int]] = {}
    for position, title in enumerate(table.titles):
        positions.setdefault(normalize_title(title), []).append(position)
    index: dict[str, int] = {}
    missing: list[str] = []
    for name, title in mapping.columns.items():
        found = positions.get(normalize_title(title), [])
        if len(found) > 1:
            raise DocumentError(
                ErrorCode.INTERPRETATION_FAILED,
                f"{filename}: the column title {title!r} ({name}) appears {len(found)} times "
                f"in header row {table.header_row}",
                line=table.header_row,
            )
        if found:
            index[name] = found[0]
        elif name in REQUIRED[mapping.kind] or name not in mapping.defaults:
            missing.append(f"{title!r} ({name})")
    if missing:
        present = [t for t in table.titles if t]
        raise DocumentError(
            ErrorCode.INTERPRETATION_FAILED,
            f"{filename}: header row {table.header_row} lacks the column(s) "
            f"{', '.join(missing)} that the map {mapping.source} expects; "
            f"the titles found are {present}",
            line=table.header_row,
        )
    return index
