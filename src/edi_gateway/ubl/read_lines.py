"""Read the lines of a UBL document into domain :class:`Line` objects.

Lines are the hot path (a 20,000-line order must take well under a second), so each line element
is read in one pass over its children (:func:`child_map`) with precomputed Clark tags instead of
one ``find`` per field. Each line-bearing kind is described by a :class:`LineSpec`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType

from edi_gateway.domain.documents import DocumentKind, Line
from edi_gateway.ubl.namespaces import cac, cbc
from edi_gateway.ubl.read_values import (
    Element,
    child,
    child_map,
    date_of,
    decimal_of,
    missing,
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
_ITEM_TAGS = frozenset({_ITEM_NAME, _SELLERS, _BUYERS, _STANDARD})
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
_ORDER_LINE_TAGS = frozenset({_LINE_ITEM, _NOTE, _ORDER_LINE_REF})


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
    status: str | None = None
    periods: tuple[str, ...] = ()
    ref_falls_back_to_id: bool = False
    wanted: frozenset[str] = field(init=False)

    def __post_init__(self) -> None:
        tags = {_ID, _NOTE, _AMOUNT, _PRICE, _ITEM, _ORDER_LINE_REF, _DESPATCH_LINE_REF}
        tags.update(t for t in (self.quantity, self.backorder, self.status) if t)
        if self.periods:
            tags.add(_DELIVERY)
        object.__setattr__(self, "wanted", frozenset(tags))


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
        DocumentKind.ORDER_CHANGE: _ORDER_LINE,
        DocumentKind.ORDER_RESPONSE: _RESPONSE_LINE,
        DocumentKind.DESPATCH_ADVICE: LineSpec(
            tag=cac("DespatchLine"),
            quantity=cbc("DeliveredQuantity"),
            backorder=cbc("BackorderQuantity"),
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


def _fill_item(line: Line, item: Element | None) -> None:
    if item is None:
        return
    kids = child_map(item, _ITEM_TAGS)
    line.item_name = text_of(kids.get(_ITEM_NAME))
    line.seller_item_id = text_of(child(kids.get(_SELLERS), _ID))
    line.buyer_item_id = text_of(child(kids.get(_BUYERS), _ID))
    line.standard_item_id = text_of(child(kids.get(_STANDARD), _ID))


def _delivery_date(line: Line, delivery: Element | None, spec: LineSpec) -> None:
    for period_tag in spec.periods:
        period = child(delivery, period_tag)
        if period is not None:
            found = date_of(child(period, _END_DATE)) or date_of(child(period, _START_DATE))
            if found is not None:
                line.delivery_date = found
                return


def _read_line(el: Element, spec: LineSpec, out: LinesRead) -> None:
    outer = child_map(el, _ORDER_LINE_TAGS) if spec.in_line_item else None
    body = el if outer is None else outer.get(_LINE_ITEM)
    if body is None:  # schema-valid order lines always have one
        raise missing(el, "cac:LineItem")
    kids = child_map(body, spec.wanted)
    line_id = text_of(kids.get(_ID))
    if line_id is None:
        raise missing(body, "line cbc:ID", kids.get(_ID))
    line = Line(
        line_id=line_id,
        quantity=quantity_of(kids.get(spec.quantity)),
        price=decimal_of(child(kids.get(_PRICE), _PRICE_AMOUNT)),
        line_amount=decimal_of(kids.get(_AMOUNT)),
    )
    _fill_item(line, kids.get(_ITEM))
    # On an OrderLine the note and the order line reference belong to the OrderLine itself.
    line.note = (outer is not None and text_of(outer.get(_NOTE))) or text_of(kids.get(_NOTE))
    ref = (kids if outer is None else outer).get(_ORDER_LINE_REF)
    if ref is not None:
        line.order_line_ref = text_of(child(ref, _LINE_ID))
        order_id = text_of(child(ref, _ORDER_REFERENCE, _ID))
        if order_id is not None:
            out.order_refs.append(order_id)
    if line.order_line_ref is None and spec.ref_falls_back_to_id:
        line.order_line_ref = line_id
    if spec.status is not None:
        line.status_code = text_of(kids.get(spec.status))
    if spec.backorder is not None:
        line.backorder_quantity = quantity_of(kids.get(spec.backorder))
    if spec.periods:
        _delivery_date(line, kids.get(_DELIVERY), spec)
    despatch_id = text_of(child(kids.get(_DESPATCH_LINE_REF), _DOCUMENT_REFERENCE, _ID))
    if despatch_id is not None:
        out.despatch_refs.append(despatch_id)
    out.lines.append(line)


def read_lines(root: Element, kind: DocumentKind) -> LinesRead:
    """All lines of a document of ``kind`` (none for kinds without lines), in document order.

    A line without an ID raises ``DocumentError(INTERPRETATION_FAILED)`` with the source line of
    the empty ``cbc:ID`` (or of the line when there is none).
    """
    out = LinesRead([], [], [])
    spec = LINE_SPECS.get(kind)
    if spec is not None:
        for el in root.iterchildren(spec.tag):
            _read_line(el, spec, out)
    return out
