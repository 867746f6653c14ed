"""The seller's item IDs of order lines whose Order named the item without one (ADR 0007).

Every Despatch Advice line names its item by the seller's ID or a GTIN (PEPPOL-T16-R003), but
a valid Order may give neither (T01 asks for a name). The supplier knows its own IDs and may
state them in its Order Response: ``cac:LineItem/cac:Item/cac:SellersItemIdentification`` is
allowed there (0..1 in T76 and T116), and the official advanced-ordering example
``OrderResponse_sc1.xml`` does exactly that ("added Sellers item identification"). The
operator may also give them to ``despatch --item-id``. Either way the ID is kept on the order
line (``order_lines.seller_item_id``, until then only what the Order said) and recorded in the
order's history, so later despatches, responses and invoices name the item too. A line that
has a seller's item ID keeps it: this fills what is missing, it never rewrites the Order.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from edi_gateway.pipeline.history import record

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from edi_gateway.domain.documents import OrderResponse
    from edi_gateway.store.tables import Order, OrderLine


def keep(
    session: Session, order: Order, line: OrderLine, item_id: str, source: str, *, actor: str
) -> None:
    """Set ``line``'s seller's item ID, which it has none of, and record where it came from."""
    line.seller_item_id = item_id
    detail = f"line {line.line_id}: the seller's item ID {item_id}, {source}"
    record(session, "line.item_id", detail, actor=actor, order_id=order.id)


def from_response(session: Session, order: Order, response: OrderResponse) -> None:
    """Keep the seller's item IDs a supplier's Order Response states for order lines that
    have none (a line refers to its order line by ``OrderLineReference``, else its own ID)."""
    from edi_gateway.store.queries import order_lines

    stated = {
        line.order_line_ref or line.line_id: line.seller_item_id.strip()
        for line in response.lines
        if line.seller_item_id and line.seller_item_id.strip()
    }
    if not stated:
        return
    source = f"from {response.kind.value} {response.document_id}"
    for line in order_lines(session, order):
        item_id = stated.get(line.line_id)
        if item_id and not line.seller_item_id:
            keep(session, order, line, item_id, source, actor="system")
