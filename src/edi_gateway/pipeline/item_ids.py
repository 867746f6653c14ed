"""The seller's item IDs of order lines whose Order named the item without one (ADR 0007).

Every Despatch Advice line names its item by the seller's ID or a GTIN (PEPPOL-T16-R003), but
a valid Order may give neither (T01 asks for a name). The supplier knows its own IDs and may
state them in its Order Response: ``cac:LineItem/cac:Item/cac:SellersItemIdentification`` is
allowed there (0..1 in T76 and T116), and the official advanced-ordering example
``OrderResponse_sc1.xml`` does exactly that ("added Sellers item identification"). The
operator may also give them to ``despatch --item-id`` (or the console's despatch forms), and a
supplier answering through the gateway to ``respond --item-id``. Either way the ID is kept on
the order line (``order_lines.seller_item_id``, until then only what the Order said) and
recorded in the order's history, so later despatches, responses and invoices name the item
too. A line that has a seller's item ID keeps it: this fills what is missing, it never rewrites
the Order. A received response stating another ID for such a line is flagged as a discrepancy
(``item_id``): the partners disagree on the item, and a person must look.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from edi_gateway.errors import NotAllowed
from edi_gateway.pipeline.history import record
from edi_gateway.store.widths import ITEM_ID

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from edi_gateway.domain.documents import OrderResponse
    from edi_gateway.store.queries import Record
    from edi_gateway.store.tables import DocumentRow, Order, OrderLine

MISMATCH = "item_id"
"""The discrepancy kind of a received response naming another seller's item ID."""


def check(given: tuple[tuple[str, str], ...]) -> None:
    """NOT_ALLOWED for IDs that can never be kept, whatever the order: a line named twice, an
    empty ID or one longer than the column (``store.widths.ITEM_ID``)."""
    named = [line_id for line_id, _ in given]
    if len(set(named)) != len(named):
        raise NotAllowed("a line's seller's item ID is given twice; give each line's once")
    for line_id, item_id in given:
        if not item_id.strip() or len(item_id.strip()) > ITEM_ID:
            raise NotAllowed(
                f"line {line_id}: the seller's item ID must be 1 to {ITEM_ID} characters"
            )


def check_known(by_id: dict[str, OrderLine], given: Iterable[tuple[str, object]]) -> None:
    """NOT_ALLOWED naming the lines of ``given`` (line ID, value) the order does not have."""
    unknown = [line_id for line_id, _ in given if line_id not in by_id]
    if unknown:
        raise NotAllowed(f"no order line {', '.join(unknown)}; the lines are: {', '.join(by_id)}")


def give(
    session: Session,
    order: Order,
    lines: list[OrderLine],
    given: tuple[tuple[str, str], ...],
    source: str,
    *,
    actor: str,
) -> None:
    """Keep the seller's item IDs an operator or supplier gives (``despatch --item-id``,
    ``respond --item-id``) for lines that have none; NOT_ALLOWED for an unknown line or one
    that differs from the ID the line has (said before anything is issued, so nothing that
    contradicts the line leaves)."""
    by_id = {line.line_id: line for line in lines}
    check_known(by_id, given)
    for line_id, text in given:
        line, item_id = by_id[line_id], text.strip()
        if not line.seller_item_id:
            keep(session, order, line, item_id, source, actor=actor)
        elif line.seller_item_id != item_id:
            raise NotAllowed(
                f"line {line_id} has the seller's item ID {line.seller_item_id}, not "
                f"{item_id}: a line's ID is not changed"
            )


def keep(
    session: Session, order: Order, line: OrderLine, item_id: str, source: str, *, actor: str
) -> None:
    """Set ``line``'s seller's item ID, which it has none of, and record where it came from."""
    line.seller_item_id = item_id
    detail = f"line {line.line_id}: the seller's item ID {item_id}, {source}"
    record(session, "line.item_id", detail, actor=actor, order_id=order.id)


def from_response(
    session: Session, order: Order, row: DocumentRow, response: OrderResponse
) -> None:
    """Keep the seller's item IDs a supplier's Order Response (attached as ``row``) states for
    order lines that have none (a line refers to its order line by ``OrderLineReference``,
    else its own ID); flag one that differs from the ID the line has (the line keeps its
    own)."""
    from edi_gateway.domain.discrepancy import ZERO, Discrepancy
    from edi_gateway.pipeline.discrepancies import flag_one
    from edi_gateway.store.queries import order_lines

    stated = {
        line.order_line_ref or line.line_id: line.seller_item_id.strip()
        for line in response.lines
        if line.seller_item_id and line.seller_item_id.strip()
    }
    if not stated:
        return
    label = f"{response.kind.value} {response.document_id}"
    for line in order_lines(session, order):
        item_id = stated.get(line.line_id)
        if not item_id:
            continue
        if not line.seller_item_id:
            keep(session, order, line, item_id, f"from {label}", actor="system")
        elif line.seller_item_id != item_id:
            detail = (
                f"{label} line {line.line_id}: the seller's item ID {item_id}, but the line has "
                f"{line.seller_item_id} (kept; a line's ID is not changed)"
            )
            found = Discrepancy(row.id, line.id, MISMATCH, ZERO, ZERO, detail)
            flag_one(session, order, found, actor="system")


def unnamed(lines: Iterable[OrderLine | Record]) -> list[str]:
    """The IDs of the lines a Despatch Advice cannot name yet: neither the seller's item ID
    nor a standard one (GTIN); the console asks for the seller's of each (``orders show``
    lists them: ``queries.order_detail``, Core rows)."""
    return [line.line_id for line in lines if not (line.seller_item_id or line.standard_item_id)]
