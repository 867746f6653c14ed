"""Despatch Advices (Peppol T16) the gateway issues on an operator's command.

Full or partial delivery per line, backordered quantities, carrier, tracking ID, despatch and
estimated delivery dates; an order may get several. Despatching more than is still open on a
line (the confirmed quantity, else the ordered one, minus what was despatched) is refused
unless forced, and a forced despatch is recorded in the order's history; a line the buyer's
Order Change deleted has nothing open, whatever an earlier response confirmed. Goods packed in
boxes (``packing``) go as one despatch line per order line and box, with the box's SSCC
(:mod:`edi_gateway.outbound.packing`). A line whose item the Order identified neither by the
seller's ID nor by a GTIN cannot be despatched (PEPPOL-T16-R003): ``NOT_ALLOWED``, unless the
operator gives the seller's ID (``item_ids``, ``--item-id``) or the supplier's Order Response
stated it; either is kept on the order line (:mod:`edi_gateway.pipeline.item_ids`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import TYPE_CHECKING

from edi_gateway.domain.documents import DespatchAdvice, DocumentKind, Line, Quantity
from edi_gateway.domain.status import OrderStatus
from edi_gateway.outbound.bulk import ADDED_LATER
from edi_gateway.outbound.issuing import (
    Issued,
    NotAllowed,
    QuantityExceeded,
    buyer_connector,
    next_number,
    on_order,
    original_parties,
    record_and_queue,
    written,
)
from edi_gateway.outbound.packing import Packed, Packing, pack
from edi_gateway.pipeline.item_ids import check as check_item_ids
from edi_gateway.pipeline.item_ids import check_known, give, unnamed
from edi_gateway.pipeline.shipments import open_quantity

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from edi_gateway.config import Settings
    from edi_gateway.store.db import Store
    from edi_gateway.store.tables import Order as OrderRow
    from edi_gateway.store.tables import OrderLine

ZERO = Decimal(0)
CLOSED_FOR_DELIVERY = {
    OrderStatus.CANCELLED.value,
    OrderStatus.REJECTED.value,
    OrderStatus.CLOSED.value,
}


@dataclass(frozen=True, slots=True)
class DespatchRequest:
    """What leaves: (order line, quantity) pairs (none = everything still open) and transport."""

    lines: tuple[tuple[str, Decimal], ...] = field(default_factory=tuple)
    carrier: str | None = None
    tracking: str | None = None
    despatch_date: date | None = None
    estimated_delivery: date | None = None
    packing: Packing = field(default_factory=Packing)
    item_ids: tuple[tuple[str, str], ...] = field(default_factory=tuple, metadata=ADDED_LATER)
    """(order line, the seller's item ID) for lines the Order named without one."""


def despatch(
    store: Store,
    settings: Settings,
    order_ref: str,
    request: DespatchRequest,
    *,
    actor: str,
    force: bool = False,
) -> Issued:
    """Issue a Despatch Advice for the order ``order_ref``; record it and queue it."""
    return on_order(
        store,
        order_ref,
        lambda s, o: issue_despatch(s, settings, o, request, actor=actor, force=force),
    )


def issue_despatch(
    session: Session,
    settings: Settings,
    order: OrderRow,
    request: DespatchRequest,
    *,
    actor: str,
    force: bool = False,
) -> Issued:
    """``despatch`` inside the caller's transaction."""
    from edi_gateway.pipeline.history import record
    from edi_gateway.store.queries import deleted_lines, order_lines
    from edi_gateway.ubl.write import write_despatch_advice

    if order.status in CLOSED_FOR_DELIVERY:
        raise NotAllowed(f"order {order.order_number} is {order.status}: nothing can be despatched")
    connector = buyer_connector(settings, order)
    lines = order_lines(session, order)
    if request.packing.contents:
        if request.lines:
            raise NotAllowed("give the despatched quantities with --line or with --box, not both")
        request = replace(request, lines=request.packing.lines())
    check_request(request)
    give(session, order, lines, request.item_ids, "given for a despatch", actor=actor)
    deleted = deleted_lines(session, order.id)
    chosen, over = _chosen(lines, request, deleted)
    _check_items(line for line, _ in chosen)
    if over and not force:
        raise QuantityExceeded(
            "more than is open on line(s) "
            + "; ".join(over)
            + ": despatch at most the confirmed quantity less what left already, or use --force"
        )
    packed = pack(session, settings, order, chosen, request.packing)
    advice = _compose(session, order, packed, request, deleted)
    payload = written(advice, write_despatch_advice)
    issued = record_and_queue(
        session,
        order,
        advice,
        payload,
        connector=connector,
        actor=actor,
        settings=settings,
        lines=lines,
    )
    if over:
        record(session, "despatch.forced", "; ".join(over), actor=actor, order_id=order.id)
    return issued


def check_request(request: DespatchRequest) -> None:
    """NotAllowed when ``request`` can never be issued, whatever the order (bulk CSVs are
    checked with it before anything is issued)."""
    given = [line_id for line_id, _ in request.lines]
    if len(set(given)) != len(given):
        raise NotAllowed("a line is given twice; give each line once")
    for line_id, quantity in request.lines:
        if quantity <= ZERO:
            raise NotAllowed(f"line {line_id}: a despatched quantity must be more than 0")
    check_item_ids(request.item_ids)


def _check_items(lines: Iterable[OrderLine]) -> None:
    """NotAllowed for order lines whose item has neither the seller's ID nor a standard ID
    (GTIN): a T16 line must name one (PEPPOL-T16-R003) and the gateway does not invent it. An
    Order may leave both out (T01 asks for a name only): refused with its own code, not an
    INTERNAL_ERROR after writing, and before a box number is drawn."""
    bare = unnamed(lines)
    if bare:
        raise NotAllowed(
            f"order line(s) {', '.join(bare)} name neither the seller's item ID nor a standard "
            "item ID (GTIN), one of which a Despatch Advice gives for every item "
            "(PEPPOL-T16-R003): give the seller's with --item-id LINE:ID (a CSV: column "
            "item_id; the console: the despatch form's field \"Seller's item ID\"), or have "
            "the supplier's Order Response state it; nothing was issued"
        )


def _open(line: OrderLine, deleted: set[int]) -> Decimal:
    """What is still to despatch on ``line``: nothing once the buyer's Order Change deleted it,
    even when an earlier response confirmed it (ADR 0025); else :func:`open_quantity`."""
    return ZERO if line.id in deleted else open_quantity(line)


def _chosen(
    lines: list[OrderLine], request: DespatchRequest, deleted: set[int]
) -> tuple[list[tuple[OrderLine, Decimal]], list[str]]:
    by_id = {line.line_id: line for line in lines}
    if not request.lines:
        chosen = [(line, _open(line, deleted)) for line in lines if _open(line, deleted) > ZERO]
        if not chosen:
            raise NotAllowed("every line has been despatched in full: nothing is open")
        return chosen, []
    check_known(by_id, request.lines)
    chosen, over = [], []
    for line_id, quantity in request.lines:
        line = by_id[line_id]
        if quantity > _open(line, deleted):
            gone = " (deleted by the buyer's change)" if line.id in deleted else ""
            over.append(f"{line_id}: {quantity} asked, {_open(line, deleted)} open{gone}")
        chosen.append((line, quantity))
    return chosen, over


def _compose(
    session: Session, order: OrderRow, packed: Packed, request: DespatchRequest, deleted: set[int]
) -> DespatchAdvice:
    original = original_parties(session, order)
    today = datetime.now(UTC).date()
    advice = DespatchAdvice(
        kind=DocumentKind.DESPATCH_ADVICE,
        document_id=next_number(session, order, DocumentKind.DESPATCH_ADVICE, "DA"),
        issue_date=today,
        buyer=original.buyer,
        seller=original.seller,
        order_refs=[order.order_number],
        carrier=request.carrier,
        tracking_id=request.tracking,
        despatch_date=request.despatch_date or today,
        estimated_delivery_date=request.estimated_delivery,
    )
    totals: dict[str, Decimal] = {}
    for line, quantity, _ in packed:
        totals[line.line_id] = totals.get(line.line_id, ZERO) + quantity
    for number, (line, quantity, box) in enumerate(packed, start=1):
        composed = Line(line_id=str(number), quantity=Quantity(quantity, line.unit))
        composed.order_line_ref = line.line_id
        composed.item_name = line.item_name or line.line_id
        composed.seller_item_id = line.seller_item_id
        composed.standard_item_id = line.standard_item_id
        composed.handling_unit = box
        rest = _open(line, deleted) - totals.pop(
            line.line_id, _open(line, deleted)
        )  # its first row only
        if rest > ZERO:
            composed.backorder_quantity = Quantity(rest, line.unit)
        advice.lines.append(composed)
    return advice
