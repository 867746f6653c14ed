"""One cell of a reply file as text, ``Decimal`` or ``date``; exact, never float arithmetic.

CSV cells are always text. Excel cells are typed by openpyxl: ``str``, ``int``, ``float``,
``datetime`` / ``date``, ``bool`` or ``None``. A float is taken through its shortest ``repr``
rounded to 15 significant digits (what Excel itself keeps), so ``64.95`` stays ``64.95`` and a
computed ``0.30000000000000004`` becomes ``0.3``. Problems raise :class:`CellError` with a
message that the caller prefixes with the file, row and column.
"""

from __future__ import annotations

import math
import re
from datetime import date, datetime, time
from decimal import Decimal, InvalidOperation

__all__ = ["CellError", "date_of", "decimal_of", "excel_decimal", "text_of"]


class CellError(ValueError):
    """A cell's content is not what its column should hold."""


_EXCEL_DIGITS = 15
ONE = Decimal(1)

# Spaces people and spreadsheets put between thousands: space, no-break, thin, narrow no-break.
_GROUP_SPACES = re.compile(r"[ \u00a0\u2009\u202f]")
_POINT = re.compile(r"[+-]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?|[+-]?\.\d+")
_COMMA = re.compile(r"[+-]?(?:\d{1,3}(?:\.\d{3})+|\d+)(?:,\d+)?|[+-]?,\d+")


def excel_decimal(value: float) -> Decimal:
    """The decimal an Excel number cell means: 15 significant digits, no float noise.

    Whole numbers come back without a fraction (``12.0`` -> ``12``), others without trailing
    zeros (``2.50`` -> ``2.5``) and never in exponent form for the caller's arithmetic.
    """
    if not math.isfinite(value):
        raise CellError(f"the number {value!r} is not finite")
    exact = Decimal(format(value, f".{_EXCEL_DIGITS}g"))
    if exact == exact.to_integral_value():
        return exact.quantize(ONE)
    normal = exact.normalize()
    exponent = normal.as_tuple().exponent
    assert isinstance(exponent, int)  # finite, checked above
    return normal if exponent <= 0 else normal.quantize(ONE)


def text_of(value: object) -> str | None:  # noqa: PLR0911 - one return per cell type
    """A cell as stripped text; an empty or blank cell is None.

    Whole numbers read as digits (an order number typed as a number in Excel is ``4500012873``,
    not ``4500012873.0``); dates as ISO ``YYYY-MM-DD``.
    """
    if value is None:
        return None
    if isinstance(value, str):
        return value.strip() or None
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return format(excel_decimal(value), "f")
    if isinstance(value, datetime):
        return value.date().isoformat() if value.time() == time() else value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    return str(value).strip() or None


def decimal_of(value: object, *, decimal_comma: bool) -> Decimal:
    """A number cell, or a text cell written as a number, as an exact ``Decimal``.

    Text accepts thousands separators (``1,234.50``; with ``decimal_comma`` ``1.234,50``) and
    spaces between thousands (``1 234,50``), nothing else: ``12,5`` without ``decimal_comma``
    is refused rather than read as 125.
    """
    if isinstance(value, bool):
        raise CellError(f"expected a number, found the truth value {value}")
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, float):
        return excel_decimal(value)
    if isinstance(value, date):
        raise CellError(f"expected a number, found the date {value.isoformat()}")
    text = text_of(value)
    if text is None:
        raise CellError("expected a number, found an empty cell")
    compact = _GROUP_SPACES.sub("", text)
    pattern, group, point = (_COMMA, ".", ",") if decimal_comma else (_POINT, ",", ".")
    if not pattern.fullmatch(compact):
        style = "1.234,50" if decimal_comma else "1,234.50"
        raise CellError(f"expected a number written like {style}, found {text!r}")
    try:
        return Decimal(compact.replace(group, "").replace(point, "."))
    except InvalidOperation:  # pragma: no cover - the pattern admits only valid decimals
        raise CellError(f"expected a number, found {text!r}") from None


def date_of(value: object, *, date_format: str) -> date:
    """A date cell (Excel) or a text cell in ``date_format`` (``strptime`` directives)."""
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        raise CellError(
            f"expected a date, found the number {text_of(value)} "
            "(format the Excel cell as a date or write the date as text)"
        )
    text = text_of(value)
    if text is None:
        raise CellError("expected a date, found an empty cell")
    try:
        return datetime.strptime(text, date_format).date()
    except ValueError:
        example = date(2026, 12, 31).strftime(date_format)
        raise CellError(f"expected a date like {example} ({date_format}), found {text!r}") from None
