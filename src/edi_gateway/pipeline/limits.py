"""What the store keeps, checked before anything is written: a value longer than its column is
``VALUE_TOO_LONG`` for the document that carries it, on every backend alike.

PostgreSQL refuses an over-long value (SQLite would keep it silently), and a refusal there
would surface late: a reply kept as an orphan would break the order that arrives for it. So
every document is measured when it is read, against the column widths of ``store/widths.py``
(which ``store/schema.py`` defines its columns with). The read-ahead worker measures the
documents it reads, so ``ingest`` rarely measures one in the parent (ADR 0043).

Codes (a response, type or line status code) are not measured here: official UBL examples
carry long ones (``SalesInvoice``) that SQLite keeps; PostgreSQL refuses them when written, and
that message alone fails (``VALUE_TOO_LONG``). Widening those columns is a migration to come.
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal
from operator import attrgetter

from edi_gateway.domain.documents import Document, Order, OrderChange, Party
from edi_gateway.domain.status import EXACT
from edi_gateway.errors import DocumentError, ErrorCode
from edi_gateway.store.widths import (
    CURRENCY,
    DOCUMENT_ID,
    ITEM_ID,
    ITEM_NAME,
    LINE_ID,
    NAME,
    NUMBER,
    PARTY_KEY,
    UNIT,
    decimal_text,
)

LINE_TEXT = {  # Line attribute -> the longest value kept
    "line_id": LINE_ID,
    "order_line_ref": LINE_ID,
    "item_name": ITEM_NAME,
    "seller_item_id": ITEM_ID,
    "buyer_item_id": ITEM_ID,
    "standard_item_id": ITEM_ID,
}
LINE_NUMBERS = ("price", "line_amount")
FEW = 32
"""Up to this many numbers are looked at one by one; more are first measured all at once."""


def check_lengths(document: Document) -> None:
    """Raise ``VALUE_TOO_LONG`` naming the first value of ``document`` its column cannot hold."""
    what = f"{document.kind.value} {document.document_id[:60]}"
    _text(what, "document ID", [document.document_id], DOCUMENT_ID)
    _text(what, "order reference", document.order_refs, DOCUMENT_ID)
    _text(what, "billing reference", document.billing_refs, DOCUMENT_ID)
    _text(what, "despatch reference", document.despatch_refs, DOCUMENT_ID)
    # what an orphan of it waits for is kept (``documents.order_ref``): an MLR's references too
    _text(what, "document reference", document.referenced_documents(), DOCUMENT_ID)
    _text(what, "currency code", [document.currency], CURRENCY)
    for role, party in (("buyer", document.buyer), ("seller", document.seller)):
        _party(what, role, party)
    billed = document.billed if isinstance(document, Order | OrderChange) else None
    if billed is not None:  # its keys are kept (``order_keys`` role ``billed``), not its name
        _text(what, "invoicee identifier", billed.keys(), PARTY_KEY)
    for attribute in ("total_amount", "payable_amount"):
        _numbers(what, attribute.replace("_", " "), [getattr(document, attribute, None)])
    lines = document.lines
    if not lines:
        return
    # Column by column, measured by C-level map/max first; the first offender is looked for
    # only in a column that has one (a 20,000-line order is checked in milliseconds).
    for attribute, limit in LINE_TEXT.items():
        value_of = attrgetter(attribute)
        if max(map(len, filter(None, map(value_of, lines))), default=0) > limit:
            _text(what, f"line {attribute.replace('_', ' ')}", map(value_of, lines), limit)
    quantities = [x.quantity for x in lines if x.quantity]
    units = [q.unit for q in quantities]
    if max(map(len, filter(None, units)), default=0) > UNIT:
        _text(what, "unit code", units, UNIT)
    _numbers(what, "quantity", [q.value for q in quantities])
    for attribute in LINE_NUMBERS:
        _numbers(what, attribute.replace("_", " "), list(map(attrgetter(attribute), lines)))


def fits(document: Document) -> bool:
    """Whether every value of ``document`` fits its column (:func:`check_lengths` passes)."""
    try:
        check_lengths(document)
    except DocumentError:
        return False
    return True


def _party(what: str, role: str, party: Party | None) -> None:
    if party is None:
        return
    _text(what, f"{role} name", [party.name], NAME)
    _text(what, f"{role} identifier", party.keys(), PARTY_KEY)


def _text(what: str, field: str, values: Iterable[str | None], limit: int) -> None:
    for value in values:
        if value is not None and len(value) > limit:
            raise too_long(f"{what}: the {field}", value, limit)


def _numbers(what: str, field: str, values: Iterable[Decimal | None]) -> None:
    present = [value for value in values if value is not None]
    if len(present) > FEW and _short(present):
        return
    for value in present:
        # str() is cheap and short for every sane amount; an exponent hides a long number
        if len(str(value)) > NUMBER or not -NUMBER < value.adjusted() < NUMBER:
            text = decimal_text(value) or ""
            if len(text) > NUMBER:
                raise too_long(f"{what}: the {field}", text, NUMBER)


def _short(numbers: list[Decimal]) -> bool:
    """Whether every number is short for certain: its ``str()`` fits and its exponent is small,
    so its exact text (``decimal_text``) fits too (the test of :func:`_numbers`, whole column
    at once). Each object once: equal numbers of one text are one object (``read_lines``
    shares them, and pickling keeps that); a set would merge ``1`` and ``1.000``, whose texts
    differ in length."""
    distinct = dict(zip(map(id, numbers), numbers, strict=True)).values()
    adjusted = list(map(Decimal.adjusted, distinct))
    return (
        max(map(len, map(str, distinct))) <= NUMBER
        and min(adjusted) > -NUMBER
        and max(adjusted) < NUMBER
    )


def too_long(what: str, text: str, limit: int) -> DocumentError:
    """``VALUE_TOO_LONG`` for ``text``, the value ``what`` names (``Order 7: the buyer name``),
    longer than the ``limit`` characters its column keeps."""
    return DocumentError(
        ErrorCode.VALUE_TOO_LONG,
        f"{what} is {len(text):,} characters long ({text[:40]!r}...); "
        f"the gateway keeps at most {limit}",
    )


def kept(converted: Decimal, what: str) -> Decimal:
    """A quantity converted to another unit (exact, ``domain.order_change.convert``) as its
    column (48 characters) keeps it. A conversion is a ratio that need not end (1 C62 is
    0.0833... DZN): exact, it runs to 100 digits, which PostgreSQL refused and SQLite kept; it
    is rounded to the decimals that fit, and only then (one that fits is kept to its last
    digit). One whose whole part does not fit is VALUE_TOO_LONG, as a sum is
    (``ledger._check_widths``); ``what`` names it (``line 1: the quantity converted ...``)."""
    text = decimal_text(converted) or ""
    if len(text) <= NUMBER:
        return converted
    places = NUMBER - len(text.split(".")[0]) - 1
    if places < 0:
        raise too_long(what, text, NUMBER)
    return converted.quantize(Decimal(1).scaleb(-places), context=EXACT).normalize(EXACT)
