"""Leaf-value readers shared by the UBL interpreters: text, decimals, dates, quantities.

Every reader takes an element and a precomputed Clark-notation path (see
:mod:`edi_gateway.ubl.namespaces`), strips whitespace and turns empty text into ``None``.
Malformed values in a schema-valid document (the XSD admits a few forms Python does not) are
reported as ``DocumentError(INTERPRETATION_FAILED)`` with the element's source line.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import date
from decimal import Decimal, InvalidOperation
from operator import itemgetter
from typing import cast

from lxml import etree

from edi_gateway.domain.documents import Quantity
from edi_gateway.errors import DocumentError, ErrorCode
from edi_gateway.ubl.namespaces import PREFIXES, clark, split_clark

Element = etree._Element

children = cast("Callable[[Element], list[Element]]", itemgetter(slice(None)))
"""All children of an element as a list (``el[:]``, which lxml-stubs do not type).

One C call that builds the list is measurably cheaper than iterating ``el`` on the hot path.
Like iteration, it includes comments and processing instructions (whose tag is not a string).
"""


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


Steps = tuple[str, ...]
"""A child path as Clark tags, e.g. ``steps("cac:PartyName", "cbc:Name")``."""


def steps(*prefixed: str) -> Steps:
    """Clark tags of prefixed steps (``cbc:``/``cac:``/``ext:``) for :func:`find_in` & co.

    The tuple twin of :func:`edi_gateway.ubl.namespaces.path`, with the same checks.
    """
    out: list[str] = []
    for step in prefixed:
        prefix, sep, local = step.partition(":")
        if not sep or prefix not in PREFIXES or not local:
            raise ValueError(f"path step must be cbc:/cac:/ext:Name, got {step!r}")
        out.append(clark(PREFIXES[prefix], local))
    return tuple(out)


Kids = dict[str, list[Element]]
"""Children of an element grouped by tag, in document order (see :func:`group_children`)."""


def group_children(el: Element) -> Kids:
    """The children of ``el`` grouped by tag, in one pass.

    Comments and processing instructions land under their (non-string) tag, never looked up.
    """
    found: Kids = {}
    for kid in children(el):
        tag = kid.tag
        group = found.get(tag)
        if group is None:
            found[tag] = [kid]
        else:
            group.append(kid)
    return found


def all_in(kids: Kids, path: Steps) -> list[Element]:
    """Every element at ``path`` below the grouped children, in the order ``iterfind`` gives."""
    els = kids.get(path[0], [])
    for tag in path[1:]:
        els = [kid for el in els for kid in children(el) if kid.tag == tag]
    return els


def _first_below(els: list[Element], path: Steps, step: int) -> Element | None:
    tag = path[step]
    last = step == len(path) - 1
    for el in els:
        for kid in el:
            if kid.tag == tag:
                if last:
                    return kid
                found = _first_below([kid], path, step + 1)
                if found is not None:
                    return found
    return None


def find_in(kids: Kids, path: Steps) -> Element | None:
    """The first element at ``path`` below the grouped children, the one ``find`` gives."""
    els = kids.get(path[0])
    if not els:
        return None
    if len(path) == 1:
        return els[0]
    if len(path) == 2:  # the common case, inlined
        tag = path[1]
        for el in els:
            for kid in children(el):
                if kid.tag == tag:
                    return kid
        return None
    return _first_below(els, path, 1)


def text_in(kids: Kids, path: Steps) -> str | None:
    """Stripped text of :func:`find_in` (``None`` when absent or empty), like :func:`text`."""
    found = find_in(kids, path)
    return None if found is None else clean(found.text)


def texts_in(kids: Kids, path: Steps) -> list[str]:
    """Stripped, non-empty texts of every element at ``path``, like :func:`texts`."""
    out: list[str] = []
    for found in all_in(kids, path):
        value = clean(found.text)
        if value is not None:
            out.append(value)
    return out


def first_date_in(kids: Kids, paths: Iterable[Steps]) -> date | None:
    """Date at the first of ``paths`` that yields a non-empty value, like :func:`first_date`."""
    for p in paths:
        found = find_in(kids, p)
        if found is not None and clean(found.text) is not None:
            return date_of(found)
    return None


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
        raise not_decimal(el, raw) from exc


def not_decimal(el: Element, raw: str) -> DocumentError:
    """The ``INTERPRETATION_FAILED`` error for ``el`` whose stripped text ``raw`` is no decimal."""
    return DocumentError(
        ErrorCode.INTERPRETATION_FAILED,
        f"{_where(el)} is not a decimal number: {raw!r}",
        line=source_line(el),
    )


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
