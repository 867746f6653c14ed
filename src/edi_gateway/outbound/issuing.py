"""What every document the gateway issues on an order goes through.

Composed from the stored order -> written as UBL -> checked against the UBL 2.1 XSD (a document
that fails is an internal error and is never queued) -> recorded as an outgoing document of the
order (its lines move the ledger and the status like a received one would) -> queued in the
outbox for the buyer's outbound connector. All in the caller's transaction.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

from sqlalchemy import bindparam, func, insert, select

from edi_gateway.domain.documents import Document, DocumentKind, Order, Party
from edi_gateway.errors import ErrorCode, GatewayError
from edi_gateway.errors import NotAllowed as NotAllowed  # noqa: PLC0414 (re-exported)
from edi_gateway.outbound.outbox import Outgoing, enqueue
from edi_gateway.store.schema import documents

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from edi_gateway.config import Settings
    from edi_gateway.store.db import Store
    from edi_gateway.store.tables import Order as OrderRow
    from edi_gateway.store.tables import OrderLine
    from edi_gateway.ubl.read import OrderParties


D = TypeVar("D", bound=Document)


class QuantityExceeded(NotAllowed):
    """A document would take an order line beyond what the ledger allows (ADR 0024); the
    message names each line, what was asked and what there is room for."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.code = ErrorCode.QUANTITY_EXCEEDED


@dataclass(frozen=True, slots=True)
class Issued:
    """A document the gateway issued: where it is recorded and queued, and the order's status."""

    order_id: int
    document_id: int
    doc_number: str
    outbox_id: int
    status: str


def on_order(store: Store, order_ref: str, action: Callable[[Session, OrderRow], Issued]) -> Issued:
    """Run ``action`` on the order ``order_ref`` (see ``store.queries.find_order``) in one
    transaction, the order locked (``store.queries.lock_orders``): the entry point of every
    command that issues a document. Run again when PostgreSQL rolls it back to break a circle
    of lock waits (``store.db.again_after_deadlocks``)."""
    from edi_gateway.pipeline.history import together
    from edi_gateway.store.db import again_after_deadlocks
    from edi_gateway.store.queries import locked_order

    def once() -> Issued:
        with store.session() as session, together(session):
            return action(session, locked_order(session, order_ref))

    return again_after_deadlocks(once, f"issuing on order {order_ref}")


def bill_recipient(settings: Settings, order: OrderRow, billed: Party | None) -> tuple[str, str]:
    """Who a bill (invoice, credit or debit note) goes to, and through which connector.

    Its Buyer (EN 16931 BG-7, ``cac:AccountingCustomerParty``) is the party it is delivered to:
    BT-49, the Buyer's electronic address, is where a bill goes. When that is not the order's
    buyer but a partner of its own with an outbound connector (the invoicee an Order or Order
    Change names: a central accounts-payable department), the bill goes there; otherwise the
    order's buyer's connector carries it (``buyer_connector``), as for every other document.
    Never to a partner that is only a supplier (``Settings.bill_recipient``): a supplier's
    invoice naming another supplier as its Buyer must not be relayed to it."""
    partner = settings.bill_recipient(billed.keys()) if billed is not None else None
    if partner is not None and partner.outbound and partner.id != order.buyer_partner:
        return partner.id, partner.outbound
    return order.buyer_partner or "", buyer_connector(settings, order)


def buyer_connector(settings: Settings, order: OrderRow) -> str:
    """The outbound connector of the order's buyer, or NotAllowed saying what to configure."""
    partner = settings.partner(order.buyer_partner) if order.buyer_partner else None
    if partner is None:
        raise NotAllowed(
            f"the buyer of order {order.order_number} ({order.buyer_key}) is not a partner in "
            f"{settings.path}; add it with an outbound connector first"
        )
    if partner.outbound is None:
        raise NotAllowed(
            f"partner {partner.id!r} has no outbound connector: set partners[].outbound "
            f"in {settings.path}"
        )
    return partner.outbound


def original_order(session: Session, order: OrderRow) -> Order:
    """The order document as received (parties with their endpoints come from it)."""
    return stored_order(original_bytes(session, order.id))


def stored_order(payload: bytes) -> Order:
    """The Order document in ``payload``, the bytes of one as received (what a caller that
    read them for many orders at once holds: :func:`store.queries.order_payloads`)."""
    from edi_gateway.ubl.read import read_stored

    document = read_stored(payload)
    assert isinstance(document, Order)
    return document


def original_parties(session: Session, order: OrderRow) -> OrderParties:
    """The profile, buyer and seller of the order document as received (what a response, a
    despatch advice and an invoice take from it), without reading its lines."""
    from edi_gateway.ubl.read import read_stored_parties

    return read_stored_parties(original_bytes(session, order.id))


def original_bytes(session: Session, order_id: int) -> bytes:
    """The bytes of the Order document that created the order, exactly as received."""
    from edi_gateway.store.queries import order_payload

    payload = order_payload(session, order_id)
    if payload is None:
        raise GatewayError(ErrorCode.INTERNAL_ERROR, f"order {order_id} has no stored Order")
    return payload


def next_number(session: Session, order: OrderRow, kind: DocumentKind, prefix: str) -> str:
    """``<order>-<prefix><n>``: the n-th document of this kind the gateway issues on the order
    (in a bulk batch, counted from what the batch read: ``store.prefetch.issued_before``)."""
    from edi_gateway.store.prefetch import issued_before

    issued = issued_before(session, order.id, kind.value)
    if issued is None:
        issued = session.scalar(_ISSUED, {"order_id": order.id, "kind": kind.value})
    return f"{order.order_number}-{prefix}{(issued or 0) + 1}"


_DOCUMENT = insert(documents).returning(documents.c.id)
_ISSUED = select(func.count()).where(
    documents.c.order_id == bindparam("order_id"),
    documents.c.direction == "out",
    documents.c.kind == bindparam("kind"),
)
"""Built once, values as parameters (a statement built per call cost ~0.3 ms to build)."""


def written(document: D, write: Callable[[D], bytes]) -> bytes:
    """The UBL bytes of ``document``, checked against the UBL 2.1 XSD before anything leaves."""
    from edi_gateway.ubl.validate import validate_document
    from edi_gateway.ubl.write import WriteError

    what = f"{document.kind.value} {document.document_id}"
    try:
        payload = write(document)
        validate_document(payload, max_size=len(payload) + 1)
    except (WriteError, GatewayError) as exc:
        raise GatewayError(
            ErrorCode.INTERNAL_ERROR,
            f"the generated {what} is not valid UBL ({exc}); nothing was sent",
        ) from exc
    return payload


def record_and_queue(
    session: Session,
    order: OrderRow,
    document: Document,
    payload: bytes,
    *,
    connector: str,
    actor: str,
    settings: Settings,
    lines: list[OrderLine],
    recipient: str | None = None,
) -> Issued:
    """Record ``document`` as an outgoing document of ``order`` and queue ``payload`` for the
    order's buyer (or the partner ``recipient``: a self-billed supplier). ``lines``: the
    order's lines as the caller loaded them (``store.queries.order_lines``): the ledger
    and the recompute use them rather than reading them again."""
    from edi_gateway.pipeline.correlate import MessageRef, attach
    from edi_gateway.pipeline.history import now
    from edi_gateway.pipeline.limits import check_lengths
    from edi_gateway.pipeline.orders import document_row
    from edi_gateway.store.prefetch import documents_before
    from edi_gateway.store.tables import DocumentRow

    # In a bulk batch, the order's documents as the batch read them, taken before this one is
    # written (the first document on the order in the batch; else None, and the recompute
    # reads them): the recompute counts them and this one's rows without reading them again.
    before = documents_before(session, order.id)
    # Measured as a partner's document is (VALUE_TOO_LONG): a quantity an operator typed, or
    # all that is open on a line, may be longer than its column, which PostgreSQL refuses
    # uncoded (DataError) and SQLite keeps.
    check_lengths(document)
    # The document row with Core (its unit of work cost more than the INSERT), and in memory
    # an object the session never holds: attaching reads its columns, nothing changes it. A
    # detached object handed to the session instead stayed in its identity map when a refused
    # bulk item's savepoint rolled back, and met the id SQLite gives the next order's document
    # (InvalidRequestError, the rest refused); one never in it leaves nothing there. A count
    # of the ledger from the store loads the row as usual.
    values = document_row(None, document, order.id, now(), direction="out")
    session.flush()  # what the caller changed goes first, as it always did
    row = DocumentRow(id=session.execute(_DOCUMENT, values).scalar_one(), **values)
    ref = MessageRef(None, "gateway", None)
    # Nothing read from here on needs a pending change (the document row is written, its
    # ledger rows and history are plain inserts, shipments and discrepancies flush themselves),
    # so the order's and its lines' changes go in the outbox row's flush: one UPDATE of the
    # order instead of one per autoflush.
    with session.no_autoflush:
        attach(session, order, row, document, ref, actor=actor, lines=lines, before=before)
        outbox_id = queue_to_buyer(
            session,
            order,
            connector,
            document,
            payload,
            document_id=row.id,
            settings=settings,
            partner=recipient,
        )
    return Issued(order.id, row.id, document.document_id, outbox_id, order.status)


def queue_to_buyer(
    session: Session,
    order: OrderRow,
    connector: str,
    document: Document,
    payload: bytes,
    *,
    document_id: int,
    settings: Settings,
    partner: str | None = None,
) -> int:
    """Queue a document's bytes for the order's buyer (or ``partner``) through ``connector``;
    its outbox id."""
    return enqueue(
        session,
        Outgoing(
            partner=partner or order.buyer_partner or "",
            connector=connector,
            kind=document.kind.value,
            doc_number=document.document_id,
            payload=payload,
            document_id=document_id,
            order_id=order.id,
        ),
        settings,
    )
