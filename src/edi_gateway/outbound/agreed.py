"""What the order's latest accepting Order Response agreed beyond the order lines, for invoicing.

The latest decisive response attached to the order (AP, CA or RE; AB decides nothing) wins, as
in the ledger (:mod:`edi_gateway.pipeline.ledger`): the gateway's own, or one received from the
supplier (UBL; its relayed copy is not attached and does not count twice). When it is a CA:

* its changed lines (status 3) with a price give the prices the order lines are billed at (a
  percentage discount, a price the supplier changed);
* its added lines (status 1: freight, packing, an amount discount; ours or the supplier's)
  become document-level allowances and charges of the order's **first** invoice only, so that
  partial invoices never bill them twice (see :mod:`edi_gateway.outbound.charges`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING

from sqlalchemy import bindparam, select

from edi_gateway.domain.billing import AllowanceCharge
from edi_gateway.domain.documents import DocumentKind, Line, OrderResponse
from edi_gateway.errors import GatewayError
from edi_gateway.outbound.charges import ADDED, Vat, allowance_charge
from edi_gateway.pipeline.ledger import CORRECTIVE_INVOICE_CODES, RESPONSES
from edi_gateway.store.schema import documents

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from edi_gateway.store.tables import DocumentRow
    from edi_gateway.store.tables import Order as OrderRow

CHANGED = "3"
DECISIVE = frozenset({"AP", "CA", "RE"})


@dataclass(frozen=True, slots=True)
class Agreed:
    """The accepting response's changed prices (per order line store ID) and added lines."""

    response: str | None = None
    prices: dict[int, Decimal] = field(default_factory=dict)
    added: tuple[Line, ...] = ()

    def allowances_charges(self, default: Vat) -> list[AllowanceCharge]:
        """The added lines as document-level allowances and charges (VAT ``default`` where
        the line's note names none)."""
        found = (allowance_charge(line, default) for line in self.added)
        return [item for item in found if item is not None]


def agreed(session: Session, order: OrderRow) -> Agreed:
    """What the order's latest decisive Order Response agreed (nothing unless it is a CA)."""
    from edi_gateway.store.prefetch import documents_now
    from edi_gateway.store.tables import DocumentLine, DocumentRow

    known = documents_now(session, order.id)  # in a bulk batch, what it read of the order
    if known is None:
        responses = [
            (row.id, row.code) for row in session.execute(_RESPONSES, {"order_id": order.id})
        ]
    else:  # the same documents: attached responses, oldest first
        responses = [
            (d.id, d.code) for d in known[0] if d.kind in RESPONSES and d.state == "attached"
        ]
    decisive = [(document_id, code) for document_id, code in responses if code in DECISIVE]
    if not decisive or decisive[-1][1] != "CA":
        return Agreed()
    latest = session.get_one(DocumentRow, decisive[-1][0])
    prices = {
        row.order_line_id: row.price
        for row in session.scalars(
            select(DocumentLine).where(DocumentLine.document_id == latest.id)
        )
        if row.order_line_id is not None and row.status_code == CHANGED and row.price is not None
    }
    return Agreed(latest.doc_number, prices, tuple(_added(session, latest)))


def _added(session: Session, row: DocumentRow) -> list[Line]:
    """The added lines of a stored response (none when it is not UBL: a supplier's CSV)."""
    from edi_gateway.outbound.invoice_ledger import payload
    from edi_gateway.ubl.read import read_stored

    data = payload(session, row)
    if not data:
        return []
    try:
        document = read_stored(data)
    except GatewayError:
        return []
    if not isinstance(document, OrderResponse):
        return []
    return [line for line in document.lines if line.status_code == ADDED]


def invoiced_before(session: Session, order: OrderRow) -> bool:
    """Whether the order already has an invoice (not a debit note): it carried the charges."""
    from edi_gateway.store.tables import DocumentRow

    codes = session.scalars(
        select(DocumentRow.code).where(
            DocumentRow.order_id == order.id,
            DocumentRow.kind == DocumentKind.INVOICE.value,
            DocumentRow.state == "attached",
        )
    )
    return any(code not in CORRECTIVE_INVOICE_CODES for code in codes)


_RESPONSES = (
    select(documents.c.id, documents.c.code)
    .where(
        documents.c.order_id == bindparam("order_id"),
        documents.c.kind.in_(sorted(RESPONSES)),
        documents.c.state == "attached",
    )
    .order_by(documents.c.id)
)
"""The order's attached responses, oldest first; built once, values as parameters (a
statement built per call cost ~0.3 ms to build)."""
