"""Labels and number formats of the human-readable outbound documents, per partner language.

The catalogues are JSON files in ``outbound/locales/`` (``en``, ``nl``, ``sv``, ``zh``), one
flat object of ``key -> text`` each; every catalogue holds every key (a unit test checks it).
Keys are dotted: ``order.title``, ``column.quantity``, ``unit.XBX`` (UN/ECE Rec 20 unit codes),
``charge.FC`` / ``allowance.95`` (UNCL 7161 / 5189 reason codes of charges and allowances).
Texts with ``{placeholders}`` (``doc.page``, ``label.box``) are filled with ``str.format``.

A language is picked from ``Partner.language`` as given (``"sv"``, ``"nl-NL"``, ``"zh_CN"``):
only the primary subtag counts, and an unknown language falls back to English.

Numbers follow the language's conventions: amounts always with two decimals and grouped
thousands (``1,234.50`` / ``1.234,50`` / ``1 234,50``), quantities without trailing zeros.
Dates are ISO 8601 (``2026-11-06``) in every language: unambiguous for every reader.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from decimal import ROUND_HALF_UP, Decimal
from functools import cache
from importlib.resources import files
from types import MappingProxyType

LANGUAGES = ("en", "nl", "sv", "zh")
"""The languages with a catalogue; the first is the fallback."""

_DEFAULT = LANGUAGES[0]
_CENT = Decimal("0.01")
# (thousands separator, decimal separator); sv groups with a no-break space (SS 014 2011).
_SEPARATORS: Mapping[str, tuple[str, str]] = MappingProxyType(
    {"en": (",", "."), "nl": (".", ","), "sv": ("\u00a0", ","), "zh": (",", ".")}
)


def language_code(language: str | None) -> str:
    """The catalogue language for a partner language tag (``"nl-NL"`` -> ``"nl"``; else ``en``)."""
    primary = (language or "").replace("_", "-").split("-", 1)[0].strip().lower()
    return primary if primary in LANGUAGES else _DEFAULT


def catalogue(language: str) -> Mapping[str, str]:
    """The read-only catalogue of ``language`` (after :func:`language_code`)."""
    return _load(language_code(language))


@cache
def _load(code: str) -> Mapping[str, str]:
    text = files("edi_gateway.outbound").joinpath("locales", f"{code}.json").read_text("utf-8")
    data = json.loads(text)
    if not isinstance(data, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in data.items()
    ):
        raise ValueError(f"locales/{code}.json must be one flat object of strings")
    return MappingProxyType(data)


def translator(language: str) -> Callable[[str], str]:
    """A function ``key -> text`` in ``language``.

    A key missing from the language falls back to English, then to the key itself, so a
    document never fails to render over a label (the catalogue test keeps that from shipping).
    """
    own, english = catalogue(language), catalogue(_DEFAULT)

    def translate(key: str) -> str:
        return own.get(key) or english.get(key) or key

    return translate


def unit_name(code: str | None, language: str) -> str:
    """A short human name of a UN/ECE Rec 20 unit code (``XBX`` -> ``doos``), else the code."""
    if not code:
        return ""
    return catalogue(language).get(f"unit.{code}") or code


def allowance_charge_label(
    charge: bool, code: str | None, reason: str | None, language: str
) -> str:
    """The label of a document-level charge or allowance: the catalogue's name of its reason
    code (``charge.FC``: UNCL 7161 freight, ``allowance.95``: UNCL 5189 discount) in
    ``language``, else its reason text as written, else the code."""
    key = f"{'charge' if charge else 'allowance'}.{code}" if code else ""
    return catalogue(language).get(key) or reason or code or ""


def decimal_separator(language: str) -> str:
    """The decimal separator of ``language`` (``,`` for nl and sv, ``.`` otherwise)."""
    return _SEPARATORS[language_code(language)][1]


def format_amount(value: Decimal | None, language: str, *, grouped: bool = True) -> str:
    """An amount with two decimals (half-up) in the language's convention; ``""`` for None."""
    if value is None:
        return ""
    thousands, point = _SEPARATORS[language_code(language)]
    cents = value.quantize(_CENT, rounding=ROUND_HALF_UP)
    text = f"{cents:,.2f}" if grouped else f"{cents:.2f}"
    return text.replace(",", "\0").replace(".", point).replace("\0", thousands)


def format_quantity(value: Decimal | None, language: str) -> str:
    """A quantity without trailing zeros (``40.000`` -> ``40``, ``2.50`` -> ``2,5`` in nl)."""
    if value is None:
        return ""
    return plain_number(value).replace(".", decimal_separator(language))


def format_price(value: Decimal | None, language: str) -> str:
    """A unit price: at least two decimals, more only when the price has them (``0.0125``)."""
    if value is None:
        return ""
    digits = max(2, -plain_exponent(value))
    thousands, point = _SEPARATORS[language_code(language)]
    text = f"{value:,.{digits}f}"
    return text.replace(",", "\0").replace(".", point).replace("\0", thousands)


def plain_number(value: Decimal) -> str:
    """``value`` in fixed notation without trailing zeros (never ``1E+2``)."""
    text = format(value.normalize(), "f")
    return "0" if text in {"-0", ""} else text


def plain_exponent(value: Decimal) -> int:
    """The exponent of ``value`` without trailing zeros (``2.50`` -> -1, ``100`` -> 0)."""
    exponent = value.normalize().as_tuple().exponent
    return min(int(exponent), 0) if isinstance(exponent, int) else 0
