"""Leaf-value readers shared by the UBL interpreters: text, decimals, dates, quantities.

Every reader takes an element and a precomputed Clark-notation path (see
:mod:`edi_gateway.ubl.namespaces`), strips whitespace and turns empty text into ``None``.
Malformed values in a schema-valid document (the XSD admits a few forms Python does not) are
reported as ``DocumentError(INTERPRETATION_FAILED)`` with the element's source line.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import cast

from lxml import etree

from edi_gateway.domain.documents import Quantity
from edi_gateway.errors import DocumentError, ErrorCode
from edi_gateway.ubl.namespaces import split_clark

Element = etree._Element


def clean(raw: str | None) -> str | None:
    """Strip ``raw``; empty or absent text becomes ``None``."""
    if raw is None:
        return None
    raw = raw.strip()
    return raw or None


def text(el: Element, path: str) -> str | None:
    """Stripped text of the first element at ``path`` below ``el``, else ``None``."""
    return clean(el.findtext(path))


def first_text(el: Element, paths: Iterable[str]) -> str | None:
    """Stripped text of the first of ``paths`` that yields a non-empty value."""
    for p in paths:
        value = clean(el.findtext(p))
        if value is not None:
            return value
    return None


def texts(el: Element, path: str) -> list[str]:
    """Stripped, non-empty texts of every element at ``path`` below ``el``, in document order."""
    out: list[str] = []
    for found in el.iterfind(path):
        value = clean(found.text)
        if value is not None:
            out.append(value)
    return out


def unique(values: Iterable[str]) -> list[str]:
    """``values`` without repeats, first occurrence kept."""
    return list(dict.fromkeys(values))


def source_line(el: Element) -> int | None:
    """The line ``el`` starts on in the parsed text (lxml-stubs mistype ``sourceline``)."""
    return cast("int | None", el.sourceline)


def child_map(el: Element, wanted: frozenset[str]) -> dict[str, Element]:
    """The first child of ``el`` for each tag in ``wanted``, found in one pass over the children.

    Used on the per-line hot path, where one pass is several times cheaper than one ``find``
    per field.
    """
    found: dict[str, Element] = {}
    for kid in el:
        tag = kid.tag
        if tag in wanted and tag not in found:
            found[tag] = kid
    return found


def child(el: Element | None, *tags: str) -> Element | None:
    """Follow ``tags`` down from ``el``, first child with each tag at each step; else ``None``."""
    for tag in tags:
        if el is None:
            return None
        for kid in el:
            if kid.tag == tag:
                el = kid
                break
        else:
            return None
    return el


def text_of(el: Element | None) -> str | None:
    """Stripped text of ``el`` (``None`` when ``el`` is absent or its text empty)."""
    return None if el is None else clean(el.text)


def _where(el: Element) -> str:
    return split_clark(str(el.tag))[1]


def decimal_of(el: Element | None) -> Decimal | None:
    """``Decimal`` of an element's text (``None`` when the element or its text is absent)."""
    if el is None:
        return None
    raw = clean(el.text)
    if raw is None:
        return None
    try:
        return Decimal(raw)
    except InvalidOperation as exc:
        raise DocumentError(
            ErrorCode.INTERPRETATION_FAILED,
            f"{_where(el)} is not a decimal number: {raw!r}",
            line=source_line(el),
        ) from exc


def decimal(el: Element, path: str) -> Decimal | None:
    """``Decimal`` of the first element at ``path`` below ``el``, else ``None``."""
    return decimal_of(el.find(path))


def date_of(el: Element | None) -> date | None:
    """Calendar date of an element's text (first 10 characters, so a zone suffix is ignored)."""
    if el is None:
        return None
    raw = clean(el.text)
    if raw is None:
        return None
    try:
        return date.fromisoformat(raw[:10])
    except ValueError as exc:
        raise DocumentError(
            ErrorCode.INTERPRETATION_FAILED,
            f"{_where(el)} is not a date (YYYY-MM-DD): {raw!r}",
            line=source_line(el),
        ) from exc


def date_at(el: Element, path: str) -> date | None:
    """Calendar date of the first element at ``path`` below ``el``, else ``None``."""
    return date_of(el.find(path))


def first_date(el: Element, paths: Iterable[str]) -> date | None:
    """Date of the first of ``paths`` that yields a non-empty value."""
    for p in paths:
        found = el.find(p)
        if found is not None and clean(found.text) is not None:
            return date_of(found)
    return None


def quantity_of(el: Element | None) -> Quantity | None:
    """``Quantity`` (value + ``@unitCode``) of a quantity element, else ``None``."""
    value = decimal_of(el)
    if el is None or value is None:
        return None
    return Quantity(value, clean(el.get("unitCode")))


def missing(el: Element, what: str, at: Element | None = None) -> DocumentError:
    """The ``INTERPRETATION_FAILED`` error for ``what`` lacking in ``el``.

    The error's line is that of ``at`` (the empty element itself) when given, else of ``el``.
    """
    return DocumentError(
        ErrorCode.INTERPRETATION_FAILED,
        f"{what} is missing or empty in {_where(el)}; the document cannot be processed",
        line=source_line(el if at is None else at),
    )


def required_text(el: Element, path: str, what: str) -> str:
    """Stripped text at ``path`` below ``el``, else raise :func:`missing` naming ``what``."""
    found = el.find(path)
    value = None if found is None else clean(found.text)
    if value is None:
        raise missing(el, what, found)
    return value
