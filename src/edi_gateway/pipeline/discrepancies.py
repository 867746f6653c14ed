"""Record the discrepancies of an order's ledger and raise its ``attention`` flag (ADR 0024).

After every attached document :func:`flag` works out (``domain.discrepancy.find``) which
document lines take an order line beyond what was ordered, confirmed, despatched or invoiced.
Each one not recorded before becomes a ``discrepancies`` row, an ``order.discrepancy`` history
event naming the document, the line and the quantities, and sets ``orders.attention``. The
document itself stays attached and counted as stated: the ledger shows what the partners said,
the flag says a person must look. Only an operator clears the flag
(:func:`clear_attention`, recorded in the history); a new discrepancy raises it again.
A disagreement that is no quantity (a received response naming another seller's item ID than
the line's) is recorded the same way by :func:`flag_one`.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.orm import Session

from edi_gateway.domain import discrepancy as rules
from edi_gateway.domain.documents import DocumentKind
from edi_gateway.errors import ErrorCode, GatewayError
from edi_gateway.pipeline.history import now, record
from edi_gateway.pipeline.ledger_rows import Documents, Ledger
from edi_gateway.pipeline.limits import kept
from edi_gateway.store.tables import (
    Discrepancy,
    DocumentRow,
    Message,
    Order,
    OrderLine,
)

RESPONSE = DocumentKind.ORDER_RESPONSE.value
CANCELLATION = DocumentKind.ORDER_CANCELLATION.value
RESPONSES = {RESPONSE, DocumentKind.ORDER_RESPONSE_SIMPLE.value}
ZERO = rules.ZERO


def moves(docs: list[DocumentRow], ledger: Ledger, changed: Mapping[int, int]) -> list[rules.Move]:
    """What each document states per order line, oldest first: the quantities the ledger sums
    (a corrective invoice or a debit note moves none), and the quantities a CA confirms, but
    not on a line the buyer changed after it (``changed``: ``ledger.changed_after``; judged
    when it came, against what was ordered then: a later deletion does not make it an
    over-confirmation)."""
    from edi_gateway.pipeline.ledger import CORRECTIVE_INVOICE_CODES, NOT_ACCEPTED, SUMMED

    out: list[rules.Move] = []
    for doc in docs:
        what = SUMMED.get(doc.kind)  # the ledger's names are the rules' MOVES
        if what == rules.INVOICED and doc.code in CORRECTIVE_INVOICE_CODES:
            continue
        if doc.kind == RESPONSE and doc.code == "CA":
            what = rules.CONFIRMED
        if what is None:
            continue
        label = f"{doc.kind} {doc.doc_number}" + (
            " (issued here)" if doc.direction == "out" else ""
        )
        for row in ledger.get(doc.id, []):
            if row.order_line_id is None or row.quantity is None:
                continue
            if what == rules.CONFIRMED and (
                row.status_code == NOT_ACCEPTED or changed.get(row.order_line_id, 0) > doc.id
            ):
                continue
            out.append(rules.Move(doc.id, label, row.order_line_id, what, row.quantity))
    return out


def unit_mismatches(
    docs: list[DocumentRow], ledger: Ledger, lines: list[OrderLine], stated: list[rules.Move]
) -> list[rules.Discrepancy]:
    """Document lines the ledger counts whose unit is not their order line's (10 boxes of a
    line in pieces): counted as stated, so never silent. Units that count the same (C62, EA,
    H87, NAR) agree. One per document and order line."""
    from edi_gateway.domain.order_change import convert

    counted = {(move.document, move.line): move for move in stated}
    by_id = {line.id: line for line in lines}
    found: dict[tuple[int, int], rules.Discrepancy] = {}
    for doc in docs:
        for row in ledger.get(doc.id, []):
            move = counted.get((doc.id, row.order_line_id or 0))
            line = by_id.get(row.order_line_id or 0)
            if move is None or line is None or row.quantity is None or (doc.id, line.id) in found:
                continue
            if line.unit is None or row.unit is None:
                continue
            converted = convert(row.quantity, row.unit, line.unit)
            if converted == row.quantity:
                continue
            converted = (
                None
                if converted is None
                else kept(converted, f"line {line.line_id}: the quantity converted to its unit")
            )
            given = f"{row.quantity} {row.unit}"
            given += "" if converted is None else f" ({converted} {line.unit})"
            detail = (
                f"{move.label} line {line.line_id}: {move.what} {given}, "
                f"but the order line is in {line.unit}"
            )
            bound = row.quantity if converted is None else converted
            found[doc.id, line.id] = rules.Discrepancy(
                doc.id, line.id, "unit", row.quantity, bound, detail
            )
    return list(found.values())


def other_parties(
    session: Session,
    order: Order,
    docs: list[DocumentRow],
    lines: list[OrderLine],
    stated: list[rules.Move],
) -> list[rules.Discrepancy]:
    """Received documents the ledger counts that a partner other than the order's buyer and
    supplier sent (correlation finds an order by buyer and order number alone): counted as
    stated, so never silent. Judged only when both the sender and the supplier are partners."""
    if order.seller_partner is None:
        return []
    by_doc = {d.id: d for d in docs}
    moved = [m for m in stated if by_doc[m.document].direction == "in"]
    # only received documents that move a quantity can be another party's (the Order does not)
    received = {by_doc[m.document].message_id for m in moved} - {None}
    if not received:
        return []
    parties = {order.buyer_partner, order.seller_partner}
    query = select(Message.id, Message.partner).where(Message.id.in_(sorted(received)))
    senders: dict[int, str | None] = {row.id: row.partner for row in session.execute(query)}
    by_id = {line.id: line for line in lines}
    found: list[rules.Discrepancy] = []
    for move in moved:
        doc = by_doc[move.document]
        sender = senders.get(doc.message_id or 0)
        if sender is None or sender in parties or move.line not in by_id:
            continue
        detail = (
            f"{move.label} line {by_id[move.line].line_id}: {move.what} {move.quantity} by "
            f"{sender}, not the order's buyer or supplier"
        )
        found.append(
            rules.Discrepancy(doc.id, move.line, "other_party", move.quantity, ZERO, detail)
        )
    return found


def _ended(order: Order, docs: list[DocumentRow]) -> tuple[str, int] | None:
    """How the order ended and the document that ended it: its first cancellation in effect,
    else the supplier's RE that is its latest decisive response; None while it stands."""
    if order.cancelled:
        cut = min((doc.id for doc in docs if doc.kind == CANCELLATION), default=None)
        return None if cut is None else ("cancelled", cut)
    if order.response_code == "RE":
        rejections = (doc.id for doc in docs if doc.kind in RESPONSES and doc.code == "RE")
        cut = max(rejections, default=None)
        return None if cut is None else ("rejected", cut)
    return None


def _despatched_before(stated: list[rules.Move], cut: int) -> dict[int, Decimal]:
    """Per order line, what its despatch advices recorded before document ``cut`` stated: all
    an order that ended there still delivers (ADR 0008 accepts a cancellation after a partial
    delivery; what left before it stands, anything sent or billed beyond is flagged)."""
    kept: dict[int, Decimal] = defaultdict(lambda: ZERO)
    for move in stated:
        if move.what == rules.DESPATCHED and move.document < cut:
            kept[move.line] += move.quantity
    return kept


def _bounds(
    line: OrderLine, ended: tuple[str, int] | None, kept: dict[int, Decimal]
) -> rules.LineBounds:
    """A line's bounds: on an order that ended, what left before the end, but never more than
    ordered or confirmed (a despatch over those was over before the end and stays so); a line
    all of whose goods left before the end is bounded as on an order that stands."""
    effective = line.qty_ordered if line.qty_confirmed is None else line.qty_confirmed
    before = kept.get(line.id, ZERO)
    if ended is None or before >= effective:
        return rules.LineBounds(line.line_id, line.qty_ordered, effective)
    return rules.LineBounds(line.line_id, line.qty_ordered, before, ended[0])


def flag(
    session: Session,
    order: Order,
    lines: list[OrderLine],
    documents: Documents,
    *,
    actor: str,
    changed: Mapping[int, int],
) -> None:
    """Record each new discrepancy of the order's documents (with their ledger rows); raise
    the order's attention. ``changed``: ``ledger.changed_after`` of those documents."""
    docs, ledger = documents
    stated = moves(docs, ledger, changed)
    ended = _ended(order, docs)
    kept = _despatched_before(stated, ended[1]) if ended else {}
    bounds = {line.id: _bounds(line, ended, kept) for line in lines}
    found = rules.find(stated, bounds) + unit_mismatches(docs, ledger, lines, stated)
    found += other_parties(session, order, docs, lines, stated)
    if not found:
        return
    known = set(
        session.execute(
            select(Discrepancy.document_id, Discrepancy.order_line_id, Discrepancy.kind).where(
                Discrepancy.order_id == order.id
            )
        ).all()
    )
    stamp = now()
    for item in found:
        if (item.document, item.line, item.kind) not in known:
            flag_one(session, order, item, stamp, actor=actor)
    session.flush()


def flag_one(
    session: Session,
    order: Order,
    item: rules.Discrepancy,
    stamp: datetime | None = None,
    *,
    actor: str,
) -> None:
    """Record ``item``: its row, an ``order.discrepancy`` history event, the order's
    attention. :func:`flag` records the ledger's with it; ``pipeline.item_ids`` one that is no
    quantity (a received response naming another seller's item ID than the line's), found
    once as its document is attached once."""
    session.add(
        Discrepancy(
            order_id=order.id,
            document_id=item.document,
            order_line_id=item.line,
            kind=item.kind,
            quantity=item.quantity,
            bound=item.bound,
            detail=item.detail,
            found_at=stamp or now(),
        )
    )
    record(session, "order.discrepancy", item.detail, actor=actor, order_id=order.id)
    order.attention = True


def clear_attention(session: Session, order: Order, reason: str, *, actor: str) -> int:
    """Clear the order's attention flag for ``reason``; the discrepancies stay recorded.
    Returns how many discrepancies the order has."""
    from edi_gateway.store.queries import discrepancies_of

    if not reason.strip():
        raise GatewayError(ErrorCode.USAGE, "give the reason the discrepancies are settled")
    if not order.attention:
        raise GatewayError(
            ErrorCode.NOT_ALLOWED, f"order {order.order_number} does not need attention"
        )
    order.attention = False
    order.updated_at = now()
    count = len(discrepancies_of(session, order.id))
    record(session, "order.attention_cleared", reason.strip(), actor=actor, order_id=order.id)
    return count
