"""Recompute an order's line quantities and status from the documents attached to it.

The ledger (``document_lines``) is the truth; ``order_lines`` quantities and ``orders.status``
are derived from it here after every attached document, never typed in by hand. Documents that
take a line beyond what the ledger allows are flagged (``pipeline/discrepancies.py``); received
despatch advices give backorders and track & trace (``pipeline/shipments.py``; ADR 0024). An
order is cancelled when one of its cancellations is accepted (``pipeline/cancellations.py``); a
pending or refused one changes nothing.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from decimal import Decimal, localcontext

from sqlalchemy import and_, bindparam, or_, select
from sqlalchemy.orm import Session

from edi_gateway.domain.documents import DocumentKind
from edi_gateway.domain.status import EXACT, LineQuantities, derive_status
from edi_gateway.pipeline.cancellations import CANCELLATION, IN_EFFECT
from edi_gateway.pipeline.discrepancies import flag
from edi_gateway.pipeline.history import record
from edi_gateway.pipeline.ledger_rows import Documents, Ledger, LedgerRow
from edi_gateway.pipeline.limits import too_long
from edi_gateway.pipeline.shipments import backorders, received_advices, still_open, tracked
from edi_gateway.store.queries import order_lines
from edi_gateway.store.tables import DocumentLine, DocumentRow, Order, OrderLine
from edi_gateway.store.widths import NUMBER, decimal_text

ZERO = Decimal(0)
RESPONSES = {DocumentKind.ORDER_RESPONSE.value, DocumentKind.ORDER_RESPONSE_SIMPLE.value}
CHANGE = DocumentKind.ORDER_CHANGE.value
NO_ACTION = "4"  # an Order Change line the change does not act on (UNCL 1229, ADR 0025)
SUMMED = {
    DocumentKind.DESPATCH_ADVICE.value: "despatched",
    DocumentKind.RECEIPT_ADVICE.value: "received",
    DocumentKind.INVOICE.value: "invoiced",
    DocumentKind.CREDIT_NOTE.value: "credited",
}
# Invoice type codes that correct an earlier invoice rather than bill goods again (527: the
# self-billed debit note of Peppol Self-Billing 3.0).
CORRECTIVE_INVOICE_CODES = {"383", "384", "527"}
NOT_ACCEPTED, ACCEPTED = "7", "5"
_DERIVED = (  # what recompute derives on a line, in this order
    "qty_despatched",
    "qty_received",
    "qty_invoiced",
    "qty_credited",
    "qty_confirmed",
    "status_code",
    "unbilled",  # despatched > invoiced, exactly: what orders list --needs invoice reads
)


def recompute(
    session: Session,
    order: Order,
    actor: str,
    lines: list[OrderLine] | None = None,
    documents: Documents | None = None,
) -> None:
    """Derive every line's quantities and the order status; log a status change.

    ``lines``: the order's lines when the caller holds them already (``attach``).
    ``documents``: the order's attached documents, oldest first, with their ledger rows, when
    the caller knows them (``attach`` in a bulk batch: those the batch read, and the one it
    attaches); else read here."""
    with localcontext(EXACT):
        _recompute(session, order, actor, lines, documents)


def _recompute(
    session: Session,
    order: Order,
    actor: str,
    lines: list[OrderLine] | None,
    documents: Documents | None,
) -> None:
    if lines is None:
        lines = order_lines(session, order)
    if documents is None:
        docs = list(session.scalars(_ATTACHED, {"order_id": order.id}))
        ledger = _ledger(session, [doc.id for doc in docs])
    else:
        docs, ledger = documents
    sums = _sums(docs, ledger)
    _check_widths(sums, lines)
    changed = changed_after(docs, ledger)
    confirmed, statuses, response_code = _confirmations(docs, ledger, lines, changed)
    for line in lines:
        totals = sums.get(line.id, {})
        despatched, invoiced = totals.get("despatched", ZERO), totals.get("invoiced", ZERO)
        derived = (
            despatched,
            totals.get("received", ZERO),
            invoiced,
            totals.get("credited", ZERO),
            confirmed.get(line.id),
            statuses.get(line.id),
            despatched > invoiced,
        )
        # A line left as it was is not set again (seven sets cost ~20 us a line); "as it was"
        # down to the spelling (8.0 is set over 8, as before: it is what the session then holds)
        current = tuple(getattr(line, name) for name in _DERIVED)
        if derived != current or repr(derived) != repr(current):
            for name, value in zip(_DERIVED, derived, strict=True):
                setattr(line, name, value)
    order.response_code = response_code
    order.cancelled = any(d.kind == CANCELLATION for d in docs)
    flag(session, order, lines, (docs, ledger), actor=actor, changed=changed)
    status = _status(session, order, lines, docs, ledger)
    if status != order.status:
        record(
            session, "order.status", f"{order.status} -> {status}", actor=actor, order_id=order.id
        )
        order.status = status


def _status(
    session: Session,
    order: Order,
    lines: list[OrderLine],
    docs: list[DocumentRow],
    ledger: Ledger,
) -> str:
    """The derived status, with the backorders and track & trace of received despatches."""
    advices = received_advices(docs)
    backordered = backorders(advices, ledger, still_open(lines))
    return derive_status(
        (
            LineQuantities(
                ordered=line.qty_ordered,
                confirmed=line.qty_confirmed,
                despatched=line.qty_despatched,
                received=line.qty_received,
                invoiced=line.qty_invoiced,
                credited=line.qty_credited,
                backordered=backordered.get(line.id, ZERO),
            )
            for line in lines
        ),
        response_code=order.response_code,
        cancelled=order.cancelled,
        tracked=tracked(session, order, advices),
    ).value


def _ledger(session: Session, doc_ids: list[int]) -> Ledger:
    by_doc: dict[int, list[DocumentLine]] = defaultdict(list)
    if doc_ids:
        for row in session.scalars(_LEDGER, {"ids": doc_ids}):
            by_doc[row.document_id].append(row)
    return by_doc


# Built once, values as parameters: building a statement per call (its clauses, coercions and
# cache key) cost ~0.3 ms, several times what running it costs, on every attached document.
_COUNTED = or_(  # the documents that count: attached, and cancellations in effect
    DocumentRow.state == "attached",
    and_(DocumentRow.kind == CANCELLATION, DocumentRow.state.in_(IN_EFFECT)),
)
_ATTACHED = (
    select(DocumentRow)
    .where(DocumentRow.order_id == bindparam("order_id"), _COUNTED)
    .order_by(DocumentRow.id)
)
_LEDGER = select(DocumentLine).where(DocumentLine.document_id.in_(bindparam("ids", expanding=True)))
_ATTACHED_OF = (
    select(DocumentRow)
    .where(DocumentRow.order_id.in_(bindparam("order_ids", expanding=True)), _COUNTED)
    .order_by(DocumentRow.id)
)
_LEDGER_OF = (
    select(DocumentLine)
    .join(DocumentRow, DocumentRow.id == DocumentLine.document_id)
    .where(DocumentRow.order_id.in_(bindparam("order_ids", expanding=True)), _COUNTED)
    .order_by(DocumentLine.id)
)


def attached_of(session: Session, order_ids: list[int]) -> dict[int, Documents]:
    """What :func:`recompute` reads for each of ``order_ids`` (the documents that count, with
    their ledger rows), in two selects for all (a bulk batch: ``store.prefetch``)."""
    docs: dict[int, list[DocumentRow]] = {order_id: [] for order_id in order_ids}
    ledgers: dict[int, dict[int, list[DocumentLine]]] = {order_id: {} for order_id in order_ids}
    if order_ids:
        owner: dict[int, int] = {}
        for doc in session.scalars(_ATTACHED_OF, {"order_ids": order_ids}):
            if doc.order_id in docs:
                docs[doc.order_id].append(doc)
                owner[doc.id] = doc.order_id
        for row in session.scalars(_LEDGER_OF, {"order_ids": order_ids}):
            if row.document_id in owner:
                ledgers[owner[row.document_id]].setdefault(row.document_id, []).append(row)
    return {order_id: (docs[order_id], ledgers[order_id]) for order_id in order_ids}


def _sums(docs: list[DocumentRow], ledger: Ledger) -> dict[int, dict[str, Decimal]]:
    sums: dict[int, dict[str, Decimal]] = defaultdict(lambda: defaultdict(lambda: ZERO))
    for doc in docs:
        column = SUMMED.get(doc.kind)
        if column is None or (column == "invoiced" and doc.code in CORRECTIVE_INVOICE_CODES):
            continue
        for row in ledger.get(doc.id, []):
            if row.order_line_id is not None and row.quantity is not None:
                sums[row.order_line_id][column] += row.quantity
    return sums


def _check_widths(sums: dict[int, dict[str, Decimal]], lines: list[OrderLine]) -> None:
    """Refuse a sum its column cannot keep (each quantity fits alone: ``pipeline.limits``)."""
    for line_id, totals in sums.items():
        for column, total in totals.items():
            text = decimal_text(total) or ""
            if len(text) > NUMBER:
                line = next((x.line_id for x in lines if x.id == line_id), line_id)
                raise too_long(f"line {line}: the sum of the {column} quantities", text, NUMBER)


def _confirmations(
    docs: list[DocumentRow],
    ledger: Ledger,
    lines: list[OrderLine],
    changed: dict[int, int],
) -> tuple[dict[int, Decimal | None], dict[int, str | None], str | None]:
    """The latest decisive response wins: AP confirms all, CA states every line, RE rejects;
    then the buyer's Order Changes after it take back what they lowered (:func:`_taken_back`)."""
    confirmed: dict[int, Decimal | None] = {}
    statuses: dict[int, str | None] = {}
    code: str | None = None
    decisive = 0
    for doc in docs:
        if doc.kind not in RESPONSES or doc.code is None:
            continue
        if doc.code == "AB":
            code = code or "AB"
            continue
        code, decisive = doc.code, doc.id
        confirmed = {line.id: line.qty_ordered for line in lines} if doc.code != "RE" else {}
        statuses = {line.id: ACCEPTED for line in lines} if doc.code == "AP" else {}
        if doc.code == "CA":
            _apply_changes(ledger.get(doc.id, []), confirmed, statuses)
    _taken_back(changed, decisive, lines, confirmed, statuses)
    return confirmed, statuses, code


def changed_after(docs: list[DocumentRow], ledger: Ledger) -> dict[int, int]:
    """Order line -> the latest attached Order Change that acted on it (any action but 4).
    A refused change is not attached, so it takes nothing back (ADR 0025)."""
    latest: dict[int, int] = {}
    for doc in docs:
        if doc.kind == CHANGE:
            for row in ledger.get(doc.id, []):
                if row.order_line_id is not None and row.status_code != NO_ACTION:
                    latest[row.order_line_id] = doc.id
    return latest


def _taken_back(
    changed: dict[int, int],
    decisive: int,
    lines: list[OrderLine],
    confirmed: dict[int, Decimal | None],
    statuses: dict[int, str | None],
) -> None:
    """A line the buyer's Order Change deleted or lowered below what the latest decisive
    response (document ``decisive``) confirmed no longer counts that confirmation: the buyer
    removed the rest from the order (T114 code 2, "removing an existing order line from the
    order"), and the change applies on arrival (ADR 0025), so the line expects what is still
    ordered until a later response states it again. A change cannot raise a confirmation: more
    than the seller confirmed waits for the seller's answer."""
    for line in lines:
        was = confirmed.get(line.id)
        if was is not None and changed.get(line.id, 0) > decisive and line.qty_ordered < was:
            del confirmed[line.id]
            statuses.pop(line.id, None)


def _apply_changes(
    rows: Sequence[DocumentLine | LedgerRow],
    confirmed: dict[int, Decimal | None],
    statuses: dict[int, str | None],
) -> None:
    for row in rows:
        if row.order_line_id is None:
            continue
        statuses[row.order_line_id] = row.status_code
        if row.status_code == NOT_ACCEPTED:
            confirmed[row.order_line_id] = ZERO
        elif row.quantity is not None:
            confirmed[row.order_line_id] = row.quantity
