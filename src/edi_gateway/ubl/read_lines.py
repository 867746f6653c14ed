"""Read the lines of a UBL document into domain :class:`Line` objects.

Lines are the hot path (a 20,000-line order must take well under 0.2 s), so :func:`read_lines`
reads each line in one pass over the children of each element it needs, with precomputed Clark
tags and the small value readers inlined. Each line-bearing kind is described by a
:class:`LineSpec`.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from datetime import date
from decimal import Decimal, InvalidOperation
from types import MappingProxyType

from edi_gateway.domain.documents import DocumentKind, Line, Quantity
from edi_gateway.ubl.namespaces import cac, cbc
from edi_gateway.ubl.read_order_data import line_place
from edi_gateway.ubl.read_values import (
    Element,
    Kids,
    child,
    children,
    clean,
    date_of,
    missing,
    not_decimal,
    quantity_of,
    text_of,
)

_ID = cbc("ID")
_NOTE = cbc("Note")
_AMOUNT = cbc("LineExtensionAmount")
_PRICE = cac("Price")
_PRICE_AMOUNT = cbc("PriceAmount")
_ITEM = cac("Item")
_ITEM_NAME = cbc("Name")
_SELLERS = cac("SellersItemIdentification")
_BUYERS = cac("BuyersItemIdentification")
_STANDARD = cac("StandardItemIdentification")
_ORDER_LINE_REF = cac("OrderLineReference")
_LINE_ID = cbc("LineID")
_ORDER_REFERENCE = cac("OrderReference")
_DESPATCH_LINE_REF = cac("DespatchLineReference")
_DOCUMENT_REFERENCE = cac("DocumentReference")
_DELIVERY = cac("Delivery")
_LINE_ITEM = cac("LineItem")
_END_DATE = cbc("EndDate")
_START_DATE = cbc("StartDate")
# What cac:OrderLine itself holds; the rest is in its cac:LineItem.


@dataclass(frozen=True, slots=True)
class LineSpec:
    """Where a kind keeps the data of its lines.

    ``tag`` is the line element (a child of the root). When ``in_line_item`` is true the line is a
    ``cac:OrderLine`` whose ID, quantity, price and item sit in ``cac:LineItem`` while the note and
    ``cac:OrderLineReference`` sit on the OrderLine; otherwise the line element holds everything.
    ``periods`` are the ``cac:Delivery`` periods whose EndDate (else StartDate) gives the line's
    delivery date, first match wins.
    """

    tag: str
    quantity: str
    in_line_item: bool = False
    backorder: str | None = None
    outstanding: str | None = None
    """Peppol T16 sends backorders as OutstandingQuantity: read when ``backorder`` is absent."""
    status: str | None = None
    periods: tuple[str, ...] = ()
    ref_falls_back_to_id: bool = False
    rare: frozenset[str] = field(init=False)
    """The line's (or LineItem's) child tags read after the common ones; see :func:`read_lines`."""

    def __post_init__(self) -> None:
        tags = {_ORDER_LINE_REF, _DESPATCH_LINE_REF}
        tags.update(t for t in (self.backorder, self.outstanding, self.status) if t)
        if self.periods:
            tags.add(_DELIVERY)
        object.__setattr__(self, "rare", frozenset(tags))


@dataclass(slots=True)
class LinesRead:
    """Lines plus the document references found on them (deduplicated by the caller)."""

    lines: list[Line]
    order_refs: list[str]
    despatch_refs: list[str]


_ORDER_LINE = LineSpec(
    tag=cac("OrderLine"),
    quantity=cbc("Quantity"),
    in_line_item=True,
    periods=(cac("RequestedDeliveryPeriod"),),
)
_CHANGE_LINE = LineSpec(
    tag=cac("OrderLine"),
    quantity=cbc("Quantity"),
    in_line_item=True,
    status=cbc("LineStatusCode"),  # the line's action (UNCL 1229: 1 added, 2 deleted, 3 ...)
    periods=(cac("RequestedDeliveryPeriod"),),
)
_RESPONSE_LINE = LineSpec(
    tag=cac("OrderLine"),
    quantity=cbc("Quantity"),
    in_line_item=True,
    status=cbc("LineStatusCode"),
    # A response promises dates; it may also just repeat the requested period.
    periods=(cac("PromisedDeliveryPeriod"), cac("RequestedDeliveryPeriod")),
    ref_falls_back_to_id=True,
)

LINE_SPECS = MappingProxyType(
    {
        DocumentKind.ORDER: _ORDER_LINE,
        DocumentKind.ORDER_CHANGE: _CHANGE_LINE,
        DocumentKind.ORDER_RESPONSE: _RESPONSE_LINE,
        DocumentKind.DESPATCH_ADVICE: LineSpec(
            tag=cac("DespatchLine"),
            quantity=cbc("DeliveredQuantity"),
            backorder=cbc("BackorderQuantity"),
            outstanding=cbc("OutstandingQuantity"),
        ),
        DocumentKind.RECEIPT_ADVICE: LineSpec(
            tag=cac("ReceiptLine"), quantity=cbc("ReceivedQuantity")
        ),
        DocumentKind.INVOICE: LineSpec(tag=cac("InvoiceLine"), quantity=cbc("InvoicedQuantity")),
        DocumentKind.CREDIT_NOTE: LineSpec(
            tag=cac("CreditNoteLine"), quantity=cbc("CreditedQuantity")
        ),
        DocumentKind.DEBIT_NOTE: LineSpec(
            tag=cac("DebitNoteLine"), quantity=cbc("DebitedQuantity")
        ),
    }
)
"""The line layout of each line-bearing kind; kinds not listed have no lines."""


_LINE_FIELDS = tuple(
    "line_id quantity order_line_ref item_name seller_item_id buyer_item_id standard_item_id"  # noqa: SIM905
    " price line_amount status_code backorder_quantity delivery_date note delivery_place"
    " handling_unit base_quantity".split()
)
"""The field order :func:`read_lines` passes to :class:`Line` positionally (all but the last
two: ``handling_unit``, which the DespatchAdvice reader sets, and ``base_quantity``, which only
the gateway's own documents carry); checked at import."""
if tuple(f.name for f in fields(Line)) != _LINE_FIELDS:  # pragma: no cover - guards a refactor
    raise ImportError(f"Line fields changed; update read_lines: {[f.name for f in fields(Line)]}")


def _delivery_date(delivery: Element, periods: tuple[str, ...]) -> date | None:
    """EndDate, else StartDate, of the first of ``periods`` in ``delivery`` that has one.

    For each period tag only the first such child is looked at, and within it the first
    EndDate / StartDate (as :func:`~.read_values.child` selects them).
    """
    kids = children(delivery)
    for period_tag in periods:
        for period in kids:
            if period.tag == period_tag:
                end = start = None
                for kid in children(period):
                    tag = kid.tag
                    if tag == _END_DATE:
                        if end is None:
                            end = kid
                    elif tag == _START_DATE and start is None:
                        start = kid
                found = date_of(end) or date_of(start)
                if found is not None:
                    return found
                break
    return None


def read_lines(root_kids: Kids, kind: DocumentKind) -> LinesRead:  # noqa: PLR0912, PLR0915
    """All lines of a document of ``kind`` (none for kinds without lines), in document order.

    ``root_kids`` are the root's children grouped by :func:`~.read_values.group_children`.

    A line without an ID raises ``DocumentError(INTERPRETATION_FAILED)`` with the source line of
    the empty ``cbc:ID`` (or of the line when there is none).

    This is the hot path, so the small helpers are inlined: each line is read with one pass over
    the children of the line (and of its ``cac:LineItem``, ``cac:Price`` and ``cac:Item``).
    Every field is the first child with its tag, as :func:`~.read_values.child` would select it,
    and values are converted in a fixed order (quantity, price, amount, backorder, delivery date)
    so that the first malformed value is the one reported.
    """
    out = LinesRead([], [], [])
    spec = LINE_SPECS.get(kind)
    if spec is None:
        return out
    lines_append = out.lines.append
    order_refs_append = out.order_refs.append
    despatch_refs_append = out.despatch_refs.append
    in_line_item = spec.in_line_item
    quantity_tag = spec.quantity
    rare = spec.rare
    falls_back = spec.ref_falls_back_to_id
    periods = spec.periods
    id_tag, note_tag, amount_tag, price_tag, item_tag = _ID, _NOTE, _AMOUNT, _PRICE, _ITEM
    price_amount_tag, name_tag, sellers_tag = _PRICE_AMOUNT, _ITEM_NAME, _SELLERS
    buyers_tag, standard_tag, ref_tag, line_item_tag = (
        _BUYERS,
        _STANDARD,
        _ORDER_LINE_REF,
        _LINE_ITEM,
    )
    to_decimal, invalid = Decimal, InvalidOperation
    decimals: dict[str, Decimal] = {}
    decimals_get = decimals.get
    quantities: dict[tuple[str, str | None], Quantity] = {}
    quantities_get = quantities.get
    new_line = Line
    kids_of = children  # a list of the children: cheaper than iterating
    for el in root_kids.get(spec.tag, ()):
        outer_note = ref = None
        if in_line_item:
            body = None
            for kid in kids_of(el):
                tag = kid.tag
                if tag == line_item_tag:
                    if body is None:
                        body = kid
                elif tag == note_tag:
                    if outer_note is None:
                        outer_note = kid
                elif tag == ref_tag and ref is None:
                    ref = kid
            if body is None:  # schema-valid order lines always have one
                raise missing(el, "cac:LineItem")
        else:
            body = el
        id_el = quantity_el = amount_el = price_el = item_el = note_el = None
        others: dict[str, Element] | None = None
        for kid in kids_of(body):
            tag = kid.tag
            if tag == id_tag:
                if id_el is None:
                    id_el = kid
            elif tag == quantity_tag:
                if quantity_el is None:
                    quantity_el = kid
            elif tag == amount_tag:
                if amount_el is None:
                    amount_el = kid
            elif tag == price_tag:
                if price_el is None:
                    price_el = kid
            elif tag == item_tag:
                if item_el is None:
                    item_el = kid
            elif tag == note_tag:
                if note_el is None:
                    note_el = kid
            elif tag in rare:
                if others is None:
                    others = {tag: kid}
                elif tag not in others:
                    others[tag] = kid
        line_id = None if id_el is None else id_el.text
        if line_id is not None:
            line_id = line_id.strip() or None
        if line_id is None:
            raise missing(body, "line cbc:ID", id_el)
        # Decimals and quantities are immutable, so equal texts share one object (per call).
        quantity = None
        if quantity_el is not None:
            raw = quantity_el.text
            if raw is not None and (raw := raw.strip()):
                unit = quantity_el.get("unitCode")
                key = (raw, unit)
                quantity = quantities_get(key)
                if quantity is None:
                    try:
                        value = to_decimal(raw)
                    except invalid as exc:
                        raise not_decimal(quantity_el, raw) from exc
                    quantity = quantities[key] = Quantity(value, clean(unit))
        price = None
        if price_el is not None:
            # The first child is the PriceAmount in valid UBL: index it, scan only otherwise.
            first = price_el[0] if len(price_el) else None
            if first is not None and first.tag != price_amount_tag:
                first = next((k for k in kids_of(price_el) if k.tag == price_amount_tag), None)
            if first is not None:
                raw = first.text
                if raw is not None and (raw := raw.strip()):
                    price = decimals_get(raw)
                    if price is None:
                        try:
                            price = decimals[raw] = to_decimal(raw)
                        except invalid as exc:
                            raise not_decimal(first, raw) from exc
        amount = None
        if amount_el is not None:
            raw = amount_el.text
            if raw is not None and (raw := raw.strip()):
                amount = decimals_get(raw)
                if amount is None:
                    try:
                        amount = decimals[raw] = to_decimal(raw)
                    except invalid as exc:
                        raise not_decimal(amount_el, raw) from exc
        item_name = sellers = buyers = standard = None
        if item_el is not None:
            name_el = sellers_el = buyers_el = standard_el = None
            for kid in kids_of(item_el):
                tag = kid.tag
                if tag == name_tag:
                    if name_el is None:
                        name_el = kid
                elif tag == sellers_tag:
                    if sellers_el is None:
                        sellers_el = kid
                elif tag == buyers_tag:
                    if buyers_el is None:
                        buyers_el = kid
                elif tag == standard_tag and standard_el is None:
                    standard_el = kid
            if name_el is not None:
                item_name = name_el.text
                if item_name is not None:
                    item_name = item_name.strip() or None
            if sellers_el is not None:
                first = sellers_el[0] if len(sellers_el) else None  # the ID, in valid UBL
                if first is not None and first.tag != id_tag:
                    first = next((k for k in kids_of(sellers_el) if k.tag == id_tag), None)
                if first is not None:
                    sellers = first.text
                    if sellers is not None:
                        sellers = sellers.strip() or None
            if buyers_el is not None:
                first = buyers_el[0] if len(buyers_el) else None  # the ID, in valid UBL
                if first is not None and first.tag != id_tag:
                    first = next((k for k in kids_of(buyers_el) if k.tag == id_tag), None)
                if first is not None:
                    buyers = first.text
                    if buyers is not None:
                        buyers = buyers.strip() or None
            if standard_el is not None:
                first = standard_el[0] if len(standard_el) else None  # the ID, in valid UBL
                if first is not None and first.tag != id_tag:
                    first = next((k for k in kids_of(standard_el) if k.tag == id_tag), None)
                if first is not None:
                    standard = first.text
                    if standard is not None:
                        standard = standard.strip() or None
        # On an OrderLine the note and the order line reference belong to the OrderLine itself.
        note = None
        if outer_note is not None:
            note = outer_note.text
            if note is not None:
                note = note.strip() or None
        if note is None and note_el is not None:
            note = note_el.text
            if note is not None:
                note = note.strip() or None
        order_line_ref = status = backorder = delivery = place = None
        if others is not None or ref is not None:
            if others is None:
                others = {}
            if not in_line_item:
                ref = others.get(ref_tag)
            if ref is not None:
                order_line_ref = text_of(child(ref, _LINE_ID))
                order_id = text_of(child(ref, _ORDER_REFERENCE, id_tag))
                if order_id is not None:
                    order_refs_append(order_id)
            if spec.status is not None:
                status = text_of(others.get(spec.status))
            if spec.backorder is not None:
                backorder = quantity_of(others.get(spec.backorder))
            if backorder is None and spec.outstanding is not None:
                backorder = quantity_of(others.get(spec.outstanding))
            if periods:
                found = others.get(_DELIVERY)
                if found is not None:
                    delivery = _delivery_date(found, periods)
                    place = line_place(found)
            found = others.get(_DESPATCH_LINE_REF)
            if found is not None:
                despatch_id = text_of(child(found, _DOCUMENT_REFERENCE, id_tag))
                if despatch_id is not None:
                    despatch_refs_append(despatch_id)
        if order_line_ref is None and falls_back:
            order_line_ref = line_id
        lines_append(  # positional: several times cheaper than keywords (see _LINE_FIELDS)
            new_line(
                line_id,
                quantity,
                order_line_ref,
                item_name,
                sellers,
                buyers,
                standard,
                price,
                amount,
                status,
                backorder,
                delivery,
                note,
                place,
            )
        )
    return out
