"""Supplier replies passed on to the buyer as Peppol UBL (``partners[].relay_replies``).

Invoices too: a supplier's invoice (UBL or its own layout) goes to the buyer as a Billing 3.0
invoice with the supplier's number, date, quantities and prices, the seller data from the
supplier's ``legal`` profile.

A supplier's Order Response or Despatch Advice — UBL, or its own CSV/Excel layout — has been
correlated and moved the order. The buyer gets the same decision as a Peppol T76 / T16 document
built from it: the parties as on the buyer's order, the supplier's document number, today's
date where the supplier gave none, the order's currency. The relayed copy is recorded as an
outgoing document with state ``relayed``: it is listed with the order but does not move the
ledger a second time. It goes through the same XSD check and the outbox as any issued document.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from sqlalchemy import select

from edi_gateway.domain.documents import (
    DespatchAdvice,
    Document,
    DocumentKind,
    Invoice,
    OrderResponse,
)
from edi_gateway.errors import GatewayError
from edi_gateway.outbound.issuing import (
    buyer_connector,
    original_order,
    queue_to_buyer,
    written,
)
from edi_gateway.pipeline.history import SYSTEM, now, record

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from edi_gateway.config import Settings
    from edi_gateway.store.db import Store
    from edi_gateway.store.tables import DocumentRow
    from edi_gateway.store.tables import Order as OrderRow

RELAYED = "relayed"
KINDS = (
    DocumentKind.ORDER_RESPONSE.value,
    DocumentKind.DESPATCH_ADVICE.value,
    DocumentKind.INVOICE.value,
)


def relay_replies(
    store: Store,
    settings: Settings,
    message_ids: Sequence[int],
    reread: Callable[[int], list[Document]],
) -> list[int]:
    """Relay the supplier replies among these messages; return the outbox ids queued."""
    suppliers = {p.id for p in settings.partners if p.relay_replies}
    if not suppliers or not message_ids:
        return []
    from edi_gateway.store.tables import DocumentRow, Message, Order

    queued: list[int] = []
    with store.session() as session:
        rows = session.execute(
            select(DocumentRow, Order)
            .join(Message, Message.id == DocumentRow.message_id)
            .join(Order, Order.id == DocumentRow.order_id)
            .where(
                DocumentRow.message_id.in_(list(message_ids)),
                DocumentRow.direction == "in",
                DocumentRow.state == "attached",
                DocumentRow.kind.in_(KINDS),
                Message.partner.in_(list(suppliers)),
            )
            .order_by(DocumentRow.id)
        ).all()
        documents: dict[int, list[Document]] = {}
        for row, order in rows:
            assert row.message_id is not None
            if row.message_id not in documents:
                documents[row.message_id] = reread(row.message_id)
            source = next(
                (d for d in documents[row.message_id] if d.document_id == row.doc_number), None
            )
            if source is None:
                continue
            try:
                with session.begin_nested():
                    queued.append(_relay(session, settings, order, source))
            except GatewayError as exc:
                record(
                    session,
                    "relay.failed",
                    f"{row.kind} {row.doc_number}: {exc.message}",
                    order_id=order.id,
                )
    return queued


def _relay(session: Session, settings: Settings, order: OrderRow, source: Document) -> int:
    if isinstance(source, Invoice):
        from edi_gateway.outbound.invoice import relayed_invoice

        bill, payload, connector = relayed_invoice(session, settings, order, source)
        return _record(session, order, bill, payload, connector, settings=settings)
    reply, payload = _relayed_reply(session, order, source)
    return _record(
        session, order, reply, payload, buyer_connector(settings, order), settings=settings
    )


def _relayed_reply(session: Session, order: OrderRow, source: Document) -> tuple[Document, bytes]:
    from edi_gateway.ubl.write import write_despatch_advice, write_order_response

    original = original_order(session, order)
    relayed = copy.deepcopy(source)
    relayed.buyer, relayed.seller = original.buyer, original.seller
    relayed.order_refs = [order.order_number]
    relayed.issue_date = relayed.issue_date or datetime.now(UTC).date()
    relayed.currency = relayed.currency or order.currency
    relayed.customization_id = relayed.profile_id = None  # the writers use Peppol's
    if isinstance(relayed, OrderResponse):
        payload = written(relayed, write_order_response)
    elif isinstance(relayed, DespatchAdvice):
        payload = written(relayed, write_despatch_advice)
    else:  # pragma: no cover - KINDS holds only these and invoices
        raise TypeError(relayed.kind)
    return relayed, payload


def _record(
    session: Session,
    order: OrderRow,
    relayed: Document,
    payload: bytes,
    connector: str,
    *,
    settings: Settings,
) -> int:
    """Record the relayed copy (listed with the order, outside the ledger) and queue it."""
    from edi_gateway.pipeline.orders import document_row
    from edi_gateway.store.tables import DocumentRow

    values = document_row(None, relayed, order.id, now(), direction="out")
    values["state"] = RELAYED
    row: DocumentRow = DocumentRow(**values)
    session.add(row)
    session.flush()
    record(
        session,
        "document.relayed",
        f"{relayed.kind.value} {relayed.document_id} from the supplier, to the buyer",
        actor=SYSTEM,
        order_id=order.id,
    )
    return queue_to_buyer(
        session, order, connector, relayed, payload, document_id=row.id, settings=settings
    )
