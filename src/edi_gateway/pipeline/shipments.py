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

from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal
from typing import TYPE_CHECKING

from sqlalchemy import select

from edi_gateway.domain.kinds import DocumentKind
from edi_gateway.domain.status import EXACT
from edi_gateway.store import schema

if TYPE_CHECKING:  # the ORM and the documents' dataclasses: not for ``orders show``
    from sqlalchemy.orm import Session

    from edi_gateway.domain.documents import Document
    from edi_gateway.pipeline.ledger_rows import LedgerRow
    from edi_gateway.store.queries import Reader, Record
    from edi_gateway.store.tables import DocumentLine, DocumentRow, Order, OrderLine

ZERO = Decimal(0)
DESPATCH = DocumentKind.DESPATCH_ADVICE.value


def record_shipment(session: Session, order: Order, row: DocumentRow, document: Document) -> None:
    """Keep the carrier, tracking ID and URL of a despatch advice that names any of them."""
    from edi_gateway.domain.documents import DespatchAdvice
    from edi_gateway.store.tables import Shipment

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
    from edi_gateway.store.tables import DocumentRow, Shipment

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
    advices: Sequence[DocumentRow | Record],
    ledger: Mapping[int, Sequence[DocumentLine | LedgerRow | Record]],
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


def open_quantity(line: OrderLine | Record) -> Decimal:
    """What is still to despatch on a line: its confirmed (else ordered) quantity less what was
    despatched, never below 0. Exact (``EXACT``): ``despatch`` sends what this says is left,
    and a difference rounded to 28 digits left a line 1E-29 short of Fully delivered."""
    expected = line.qty_ordered if line.qty_confirmed is None else line.qty_confirmed
    return max(EXACT.subtract(expected, line.qty_despatched), Decimal(0))


def still_open(lines: Iterable[OrderLine | Record]) -> dict[int, Decimal]:
    """Per order line, its effective quantity (confirmed, else ordered) less what left (exact,
    as :func:`open_quantity`: ``orders show`` reads backorders through it)."""
    return {
        line.id: EXACT.subtract(
            line.qty_ordered if line.qty_confirmed is None else line.qty_confirmed,
            line.qty_despatched,
        )
        for line in lines
    }


def backorders_of(
    reader: Reader, order_id: int, lines: Sequence[OrderLine | Record]
) -> dict[int, Decimal]:
    """:func:`backorders` of the order as stored (for ``orders show``; Core rows)."""
    d, dl = schema.documents.c, schema.document_lines.c
    query = select(d.id).where(
        d.order_id == order_id,
        d.kind == DESPATCH,
        d.direction == "in",
        d.state == "attached",
    )
    advices = list(reader.execute(query.order_by(d.id)))
    ledger: dict[int, list[Record]] = {}
    if advices:
        rows = select(dl.document_id, dl.order_line_id, dl.backorder)
        rows = rows.where(dl.document_id.in_([a.id for a in advices])).order_by(dl.id)
        for row in reader.execute(rows):
            ledger.setdefault(row.document_id, []).append(row)
    return backorders(advices, ledger, still_open(lines))


def shipments_of(reader: Reader, order_id: int) -> list[Record]:
    """The order's shipments, oldest first (Core rows)."""
    s = schema.shipments
    return list(reader.execute(select(s).where(s.c.order_id == order_id).order_by(s.c.id)))
