"""Track & trace and backorders from despatch advices (docs/adr/0024).

Every despatch advice attached to an order keeps its carrier, tracking ID and tracking URL in
``shipments``. The status reads two things from the *received* despatch advices (the
supplier's own word; those the gateway issues on a command state the rest still open as a
backorder of course, and their tracking is the operator's): whether one carries track & trace
(an order despatched in full is then Shipped until it is received), and per order line the
quantity the latest one that names the line says is outstanding (Peppol T16
``OutstandingQuantity``: "the quantity outstanding, which will follow in a later shipment";
UBL ``BackorderQuantity`` where a plain UBL sender uses it).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.orm import Session

from edi_gateway.domain.documents import DespatchAdvice, Document, DocumentKind
from edi_gateway.store.tables import DocumentLine, DocumentRow, Order, OrderLine, Shipment

ZERO = Decimal(0)
DESPATCH = DocumentKind.DESPATCH_ADVICE.value


def record_shipment(session: Session, order: Order, row: DocumentRow, document: Document) -> None:
    """Keep the carrier, tracking ID and URL of a despatch advice that names any of them."""
    if not isinstance(document, DespatchAdvice):
        return
    found = (document.carrier, document.tracking_id, document.tracking_url)
    if not any(found):
        return
    carrier, tracking_id, url = found
    session.add(
        Shipment(
            document_id=row.id,
            order_id=order.id,
            carrier=carrier,
            tracking_id=tracking_id,
            tracking_url=url,
        )
    )
    session.flush()


def received_advices(docs: Iterable[DocumentRow]) -> list[DocumentRow]:
    """The despatch advices the supplier sent (not those the gateway issued), oldest first."""
    return [doc for doc in docs if doc.kind == DESPATCH and doc.direction == "in"]


def tracked(session: Session, order: Order, advices: list[DocumentRow]) -> bool:
    """Whether one of ``advices`` (the order's received ones) carries track & trace."""
    if not advices:
        return False
    query = (
        select(Shipment.id)
        .join(DocumentRow, DocumentRow.id == Shipment.document_id)
        .where(
            Shipment.order_id == order.id,
            DocumentRow.direction == "in",
            DocumentRow.state == "attached",
        )
    )
    return session.scalar(query.limit(1)) is not None


def backorders(
    advices: list[DocumentRow],
    ledger: Mapping[int, list[DocumentLine]],
    still_open: Mapping[int, Decimal],
) -> dict[int, Decimal]:
    """Per order line, what the latest received despatch advice naming it says will follow,
    at most what is still open on the line (a later delivery fills a backorder)."""
    latest: dict[int, Decimal] = {}
    for doc in advices:
        for row in ledger.get(doc.id, []):
            if row.order_line_id is not None:
                latest[row.order_line_id] = max(row.backorder or ZERO, ZERO)
    return {
        line: min(quantity, max(still_open.get(line, ZERO), ZERO))
        for line, quantity in latest.items()
    }


def open_quantity(line: OrderLine) -> Decimal:
    """What is still to despatch on a line: its confirmed (else ordered) quantity less what was
    despatched, never below 0."""
    expected = line.qty_ordered if line.qty_confirmed is None else line.qty_confirmed
    return max(expected - line.qty_despatched, Decimal(0))


def still_open(lines: Iterable[OrderLine]) -> dict[int, Decimal]:
    """Per order line, its effective quantity (confirmed, else ordered) less what left."""
    return {
        line.id: (line.qty_ordered if line.qty_confirmed is None else line.qty_confirmed)
        - line.qty_despatched
        for line in lines
    }


def backorders_of(session: Session, order: Order, lines: list[OrderLine]) -> dict[int, Decimal]:
    """:func:`backorders` of the order as stored (for ``orders show``)."""
    query = select(DocumentRow).where(
        DocumentRow.order_id == order.id,
        DocumentRow.kind == DESPATCH,
        DocumentRow.direction == "in",
        DocumentRow.state == "attached",
    )
    advices = list(session.scalars(query.order_by(DocumentRow.id)))
    ledger: dict[int, list[DocumentLine]] = {}
    if advices:
        rows = select(DocumentLine).where(DocumentLine.document_id.in_([d.id for d in advices]))
        for row in session.scalars(rows.order_by(DocumentLine.id)):
            ledger.setdefault(row.document_id, []).append(row)
    return backorders(advices, ledger, still_open(lines))


def shipments_of(session: Session, order_id: int) -> list[Shipment]:
    """The order's shipments, oldest first."""
    query = select(Shipment).where(Shipment.order_id == order_id).order_by(Shipment.id)
    return list(session.scalars(query))
