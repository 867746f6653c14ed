"""``documents show``: any stored document as UBL, or rendered as PDF or Excel for a person.

Received documents are shown from the bytes that arrived; issued ones from the bytes queued in
the outbox. PDF and Excel are rendered from the UBL in the language of the partner the document
is for (the buyer of an issued document, the supplier of a received order).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from edi_gateway.domain.documents import DespatchAdvice, Document, Invoice, Order
from edi_gateway.errors import ErrorCode, LookupFailed
from edi_gateway.outbound.issuing import NotAllowed

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from edi_gateway.config import Settings
    from edi_gateway.store.db import Store

FORMATS = ("ubl", "pdf", "xlsx")
MEDIA = {
    "ubl": "application/xml",
    "pdf": "application/pdf",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}


@dataclass(frozen=True, slots=True)
class Shown:
    """A document's bytes in the asked format, and a file name for them."""

    payload: bytes
    filename: str
    media_type: str


def show(store: Store, settings: Settings, document_id: int, fmt: str = "ubl") -> Shown:
    """The stored document ``document_id`` (see ``orders show``) as UBL, PDF or Excel."""
    if fmt not in FORMATS:
        raise NotAllowed(f"format {fmt!r}: expected one of {', '.join(FORMATS)}")
    with store.session() as session:
        kind, number, ubl, language, label_size = _stored(session, settings, document_id)
    stem = f"{kind}-{number}".replace("/", "_")
    if fmt == "ubl":
        return Shown(ubl, f"{stem}.xml", MEDIA["ubl"])
    from edi_gateway.ubl.read import read_stored

    rendered = _render(read_stored(ubl), fmt, language, label_size)
    return Shown(rendered, f"{stem}.{fmt}", MEDIA[fmt])


def _stored(
    session: Session, settings: Settings, document_id: int
) -> tuple[str, str, bytes, str, str]:
    from edi_gateway.outbound.invoice_ledger import payload as payload_of
    from edi_gateway.outbound.packing import label_size
    from edi_gateway.store.tables import DocumentRow, Order

    row = session.get(DocumentRow, document_id)
    if row is None:
        raise LookupFailed(ErrorCode.NOT_FOUND, f"there is no document {document_id}")
    payload = payload_of(session, row)
    if payload is None:
        raise LookupFailed(ErrorCode.NOT_FOUND, f"document {document_id} has no stored bytes")
    order = session.get(Order, row.order_id) if row.order_id is not None else None
    reader = None
    if order is not None:
        reader = order.buyer_partner if row.direction == "out" else order.seller_partner
    partner = settings.partner(reader) if reader else None
    language = partner.language if partner else "en"
    size = label_size(settings, order.seller_partner if order is not None else None)
    return row.kind, row.doc_number, payload, language, size


def _render(document: Document, fmt: str, language: str, label_size: str) -> bytes:
    from edi_gateway.outbound.render import labels, pdf, xlsx

    if isinstance(document, Order) and fmt == "pdf":
        return pdf.order_pdf(document, language=language)
    if isinstance(document, Order):
        return xlsx.orders_workbook([document], language=language)
    if isinstance(document, DespatchAdvice) and fmt == "pdf":
        return labels.packing_slip_pdf(document, language=language, label_size=label_size)
    if isinstance(document, Invoice) and fmt == "pdf":
        return pdf.invoice_pdf(document, language=language)
    raise NotAllowed(
        f"{document.kind.value} {document.document_id} has no {fmt} rendering; "
        "PDF: orders, despatch advices (packing slip) and invoices; Excel: orders"
    )
