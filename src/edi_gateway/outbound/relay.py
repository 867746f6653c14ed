"""Supplier replies passed on to the buyer (``partners[].relay_replies``): faithful relays.

A supplier's **UBL document** (Order Response, Despatch Advice, Invoice, Credit Note) that was
correlated to an order goes to the order's buyer as the very bytes the supplier sent, kept in
its message: never parsed and written again, never re-signed (docs/adr/0026-faithful-relays.md).
Before it is queued it passes the checks of its type: the UBL 2.1 XSD at intake, and here the
official Peppol rules of its CustomizationID at the official severities (when a release is
installed; the outbox checks it again before each delivery). A fatal finding, a document that
came from another supplier than the order's, or a buyer this gateway signs for, stops the relay:
nothing is queued and the order's history says why with the error code (``relay.refused``).

A reply in the supplier's own **CSV / Excel layout** (:mod:`edi_gateway.replies`) is the only
thing built into UBL: a Peppol T76 / T16 / Billing 3.0 document carrying what the supplier's
rows say, the parties as on the buyer's order. An invoice built so takes every amount, account,
reference and note from the supplier's rows (the layout must provide them, see
:data:`edi_gateway.replies.columns.REQUIRED`), never from gateway.yaml.

A relayed copy is recorded as an outgoing document with state ``relayed``: it is listed with
the order but does not move the ledger a second time.
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
    Order,
    OrderResponse,
    Party,
)
from edi_gateway.domain.findings import fatal
from edi_gateway.errors import ErrorCode, GatewayError
from edi_gateway.outbound.issuing import (
    NotAllowed,
    bill_recipient,
    buyer_connector,
    original_order,
    queue_to_buyer,
    written,
)
from edi_gateway.pipeline.cancellations import LATE
from edi_gateway.pipeline.history import SYSTEM, now, record
from edi_gateway.rules.evaluate import RulesFailed

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from edi_gateway.config import Settings
    from edi_gateway.store.db import Store
    from edi_gateway.store.tables import DocumentRow
    from edi_gateway.store.tables import Order as OrderRow

RELAYED = "relayed"
REFUSED = "refused"
"""A supplier's document the official rules refused: outside the ledger, its number free."""
KINDS = (
    DocumentKind.ORDER_RESPONSE.value,
    DocumentKind.DESPATCH_ADVICE.value,
    DocumentKind.INVOICE.value,
    DocumentKind.CREDIT_NOTE.value,
)


def relay_replies(
    store: Store,
    settings: Settings,
    message_ids: Sequence[int],
    reread: Callable[[int], list[Document]],
    layout: Callable[[str, str], bool],
) -> list[int]:
    """Relay the supplier replies among these messages; return the outbox ids queued.

    ``reread(message_id)``: the documents of a stored message; ``layout(source, filename)``:
    whether a message is in a supplier's own CSV / Excel layout (else it is UBL)."""
    suppliers = {p.id for p in settings.partners if p.relay_replies}
    if not suppliers or not message_ids:
        return []
    queued: list[int] = []
    with store.session() as session:
        rows = _replies(session, message_ids, suppliers)
        documents: dict[int, list[Document]] = {}
        for row, order, partner, source, filename in rows:
            assert row.message_id is not None
            built = layout(source, filename or "")
            if order is None and built:
                continue  # a layout's rows are built on the order they name: it must be known
            if row.message_id not in documents:
                documents[row.message_id] = reread(row.message_id)
            document = next(
                (d for d in documents[row.message_id] if d.document_id == row.doc_number), None
            )
            if document is None:
                continue
            try:
                with session.begin_nested():
                    queued += _relay(
                        session,
                        settings,
                        row,
                        order,
                        partner=partner,
                        document=document,
                        built=built,
                    )
            except GatewayError as exc:
                record(
                    session,
                    "relay.refused",
                    f"{row.kind} {row.doc_number} from {partner} not relayed: {exc}"[:2000],
                    order_id=order.id if order is not None else None,
                    message_id=row.message_id,
                )
                if isinstance(exc, RulesFailed) and not built:
                    _refuse(session, row, order, exc)
    return queued


def _refuse(session: Session, row: DocumentRow, order: OrderRow | None, exc: RulesFailed) -> None:
    """A supplier's document the official rules refuse is not taken either: its message fails
    with ``RULES_FAILED`` (its findings kept), the document leaves the ledger (``refused``), and
    the supplier may send a corrected one under the same number (docs/adr/0026)."""
    from edi_gateway.pipeline.ledger import recompute
    from edi_gateway.pipeline.work import replace_findings
    from edi_gateway.store.tables import Message

    assert row.message_id is not None
    row.state = REFUSED
    message = session.get(Message, row.message_id)
    if message is not None:
        message.state, message.error_code = "failed", str(exc.code)
        message.error_detail, message.error_line = f"not relayed: {exc.message}"[:2000], exc.line
        message.updated_at = now()
        replace_findings(
            session.connection(), "message_id", {message.id: exc.failing}, [message.id]
        )
    if order is not None:
        recompute(session, order, SYSTEM)


def _relay(
    session: Session,
    settings: Settings,
    row: DocumentRow,
    order: OrderRow | None,
    *,
    partner: str | None,
    document: Document,
    built: bool,
) -> list[int]:
    """Relay one document (``built``: from a supplier's layout); the outbox ids queued."""
    if order is None:
        return _relay_orphan(session, settings, row, document)
    _same_supplier(order, partner, row)
    if built:
        return [_relay_built(session, settings, order, document)]
    return _relay_bytes(session, settings, order, row, document)


def _replies(
    session: Session, message_ids: Sequence[int], suppliers: set[str]
) -> list[tuple[DocumentRow, OrderRow | None, str | None, str, str | None]]:
    """The relayable documents of these messages from these suppliers, with their order (None
    for an orphan), the sending partner and the message's source and file name."""
    from edi_gateway.store.tables import DocumentRow, Message, Order

    found = session.execute(
        select(DocumentRow, Order, Message.partner, Message.source, Message.filename)
        .join(Message, Message.id == DocumentRow.message_id)
        .outerjoin(Order, Order.id == DocumentRow.order_id)
        .where(
            DocumentRow.message_id.in_(list(message_ids)),
            DocumentRow.direction == "in",
            DocumentRow.state.in_(["attached", "orphan", LATE]),
            DocumentRow.kind.in_(KINDS),
            Message.partner.in_(list(suppliers)),
        )
        .order_by(DocumentRow.id)
    )
    return [(row, order, partner, source, name) for row, order, partner, source, name in found]


def _same_supplier(order: OrderRow, partner: str | None, row: DocumentRow) -> None:
    """A supplier relays only on its own orders (correlation may match an order of another
    supplier by the buyer and the order number alone)."""
    if order.seller_partner is not None and order.seller_partner != partner:
        raise NotAllowed(
            f"order {order.order_number} is with supplier {order.seller_partner}, not {partner}: "
            f"the {row.kind} is not relayed on another supplier's order"
        )


# --- UBL: the supplier's bytes ----------------------------------------------------------------


def _relay_bytes(
    session: Session, settings: Settings, order: OrderRow, row: DocumentRow, document: Document
) -> list[int]:
    """Queue the supplier's own bytes for the order's buyer (a bill's invoicee: :func:`_to`),
    after the rules of its type."""
    partner, connector = _to(settings, order, document)
    payload = _checked_bytes(session, settings, partner, row)
    if payload is None:
        return []
    return [_record(session, order, document, payload, (partner, connector), settings=settings)]


def _to(settings: Settings, order: OrderRow, document: Document) -> tuple[str, str]:
    """The partner a relayed document goes to and its connector: a bill to its Buyer
    (``issuing.bill_recipient``: the invoicee, when a partner of its own), anything else to
    the order's buyer."""
    if isinstance(document, Invoice):
        return bill_recipient(settings, order, document.buyer)
    return order.buyer_partner or "", buyer_connector(settings, order)


def _relay_orphan(
    session: Session, settings: Settings, row: DocumentRow, document: Document
) -> list[int]:
    """A supplier's UBL document no known order matches (an invoice naming only a buyer
    reference, a reply ahead of its order): its bytes to the partner it names as the buyer."""
    from edi_gateway.outbound.outbox import Outgoing, enqueue

    keys = document.buyer.keys() if document.buyer else []
    buyer = settings.bill_recipient(keys)
    if buyer is None or buyer.outbound is None:
        named = ", ".join(keys) or "no buyer party"
        raise GatewayError(
            ErrorCode.UNKNOWN_PARTNER,
            f"it matches no order and names {named}, which is no buyer with an outbound "
            f"connector in {settings.path}: add the buyer, then redrive the message",
        )
    payload = _checked_bytes(session, settings, buyer.id, row)
    if payload is None:
        return []
    item = Outgoing(buyer.id, buyer.outbound, row.kind, row.doc_number, payload)
    outbox_id = enqueue(session, item, settings)
    record(
        session,
        "document.relayed",
        f"{row.kind} {row.doc_number} from the supplier, to {buyer.id} (no order matched)",
        message_id=row.message_id,
    )
    return [outbox_id]


def _checked_bytes(
    session: Session, settings: Settings, buyer_id: str, row: DocumentRow
) -> bytes | None:
    """The message's bytes, exactly as the supplier sent them, once they may be relayed to
    ``buyer_id``; None when they were relayed to it already (a redriven message)."""
    from edi_gateway.outbound.checks import rules_findings
    from edi_gateway.store.tables import Message, OutboxRow

    buyer = settings.partner(buyer_id)
    if buyer is not None and buyer.signature is not None and buyer.signature.sign:
        raise NotAllowed(
            f"partner {buyer.id!r} has signature.sign: a relayed document goes out as the "
            "supplier made it and is never re-signed by this gateway"
        )
    payload = session.scalar(select(Message.payload).where(Message.id == row.message_id))
    if payload is None:
        raise GatewayError(
            ErrorCode.NOT_ALLOWED,
            f"message {row.message_id} was kept without its bytes: there is nothing to relay",
        )
    try:
        found = rules_findings(payload, settings, signed=True)
    except GatewayError as exc:
        if exc.code is not ErrorCode.RULES_UNAVAILABLE:
            raise
        found = None  # the outbox checks it before each attempt, retried until one verifies
    failing = fatal(found or [])
    if failing:
        raise RulesFailed(failing)
    earlier = session.scalars(
        select(OutboxRow.payload).where(
            OutboxRow.partner == buyer_id,
            OutboxRow.kind == row.kind,
            OutboxRow.doc_number == row.doc_number,
        )
    )
    return None if any(p == payload for p in earlier) else payload


# --- a supplier's own layout: built into UBL --------------------------------------------------


def _relay_built(session: Session, settings: Settings, order: OrderRow, source: Document) -> int:
    from edi_gateway.ubl.write import write_despatch_advice, write_invoice, write_order_response

    original = original_order(session, order)
    relayed = copy.deepcopy(source)
    relayed.buyer, relayed.seller = original.buyer, original.seller
    relayed.order_refs = [order.order_number]
    relayed.customization_id = relayed.profile_id = None  # the writers use Peppol's
    if isinstance(relayed, Invoice):
        relayed.seller, relayed.buyer = _billing_parties(session, settings, order, original)
        payload = written(relayed, write_invoice)
    else:
        relayed.issue_date = relayed.issue_date or datetime.now(UTC).date()
        relayed.currency = relayed.currency or order.currency
        if isinstance(relayed, OrderResponse):
            payload = written(relayed, write_order_response)
        elif isinstance(relayed, DespatchAdvice):
            payload = written(relayed, write_despatch_advice)
        else:  # pragma: no cover - a layout makes only these and invoices
            raise TypeError(relayed.kind)
    return _record(
        session, order, relayed, payload, _to(settings, order, relayed), settings=settings
    )


def _billing_parties(
    session: Session, settings: Settings, order: OrderRow, original: Order
) -> tuple[Party, Party]:
    """Seller and buyer of an invoice built from a supplier's layout: who they are (name,
    address, VAT number: the ``legal`` profiles, as on the gateway's own invoices). What the
    invoice bills and where it is paid come from the supplier's rows, never from here."""
    from edi_gateway.outbound import invoice_parties as parties

    partner = settings.partner(order.seller_partner or "")
    if partner is None or partner.legal is None:
        raise NotAllowed(
            f"the supplier of order {order.order_number} needs a legal profile (partners[]."
            f"legal: registration name, country, VAT number) in {settings.path}: an invoice "
            "built from its file names the seller with it"
        )
    buyer = settings.partner(order.buyer_partner or "")
    return (
        parties.seller(original, partner, partner.legal),
        parties.buyer(session, original, buyer, order, settings),
    )


def _record(
    session: Session,
    order: OrderRow,
    relayed: Document,
    payload: bytes,
    to: tuple[str, str],
    *,
    settings: Settings,
) -> int:
    """Record the relayed copy (listed with the order, outside the ledger) and queue it for
    partner ``to[0]`` through connector ``to[1]``."""
    from edi_gateway.pipeline.orders import document_row
    from edi_gateway.store.tables import DocumentRow

    partner, connector = to
    whom = "the buyer" if partner == order.buyer_partner else f"the invoicee {partner}"
    values = document_row(None, relayed, order.id, now(), direction="out")
    values["state"] = RELAYED
    row: DocumentRow = DocumentRow(**values)
    session.add(row)
    session.flush()
    record(
        session,
        "document.relayed",
        f"{relayed.kind.value} {relayed.document_id} from the supplier, to {whom}",
        actor=SYSTEM,
        order_id=order.id,
    )
    return queue_to_buyer(
        session,
        order,
        connector,
        relayed,
        payload,
        document_id=row.id,
        settings=settings,
        partner=partner,
    )
