"""Order Responses the gateway issues: on an operator's command or an auto rule.

Orders of the Peppol advanced ordering profile are answered with an Order Response Advanced
(T116), all others with an Order Response (T76) (docs/adr/0025-advanced-ordering.md).

``respond`` composes the response from the stored order and the decision, writes the UBL,
checks it against the UBL 2.1 XSD (a document that fails is an internal error and is never
queued), records it as an outgoing document of the order (its line statuses and quantities
move the order's status like a received response would) and queues it in the outbox for the
buyer's outbound connector, all in one transaction.

Charges (freight, packing ...) and discounts go as lines of a CA response (T76 has no
document-level allowances or charges): see :mod:`edi_gateway.outbound.charges`. An acceptance
(AP) with charges or a discount is therefore sent as CA, every order line accepted (5).

The seller's item IDs of lines the Order named without one (``item_ids``, ``--item-id``) go
as ``cac:Item/cac:SellersItemIdentification`` of their lines, which T76 and T116 allow (0..1)
on a CA only (AP, RE and AB carry no lines: PEPPOL-T76-R007..R010): an AP stating them is
sent as CA, their lines changed (3) as in the official ``OrderResponse_sc1.xml`` ("added
Sellers item identification"), the others accepted (5). They are kept on the order lines as a
received response's are (:mod:`edi_gateway.pipeline.item_ids`).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import TYPE_CHECKING

from edi_gateway.domain.billing import money
from edi_gateway.domain.documents import DocumentKind, Line, OrderResponse, Quantity, Substitute
from edi_gateway.domain.status import OrderStatus
from edi_gateway.outbound import charges as terms
from edi_gateway.outbound.bulk import ADDED_LATER
from edi_gateway.outbound.charges import Charge, Discount, Vat
from edi_gateway.outbound.issuing import (
    Issued,
    NotAllowed,
    QuantityExceeded,
    buyer_connector,
    next_number,
    on_order,
    original_parties,
    record_and_queue,
    written,
)
from edi_gateway.pipeline.item_ids import check as check_item_ids
from edi_gateway.pipeline.item_ids import give
from edi_gateway.ubl.write_order_response import advanced_ids, is_advanced

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from edi_gateway.config import Settings
    from edi_gateway.store.db import Store
    from edi_gateway.store.tables import Order as OrderRow
    from edi_gateway.store.tables import OrderLine

CODES = ("AB", "AP", "RE", "CA")
ACCEPTED, CHANGED, NOT_ACCEPTED = "5", "3", "7"
FINAL = {OrderStatus.CANCELLED.value, OrderStatus.CLOSED.value}
MOVED_ON = {
    OrderStatus.PARTIALLY_DELIVERED.value,
    OrderStatus.PARTIALLY_BACKORDERED.value,
    OrderStatus.SHIPPED.value,
    OrderStatus.FULLY_DELIVERED.value,
    OrderStatus.PARTIALLY_INVOICED.value,
    OrderStatus.FULLY_INVOICED.value,
    OrderStatus.REJECTED.value,
}


class ResponseRefused(NotAllowed):
    """The order's state or the request does not allow this response."""


@dataclass(frozen=True, slots=True)
class LineChange:
    """A changed line: its new quantity (0 = not accepted) and, optionally, a new date."""

    line_id: str
    quantity: Decimal
    delivery_date: date | None = None


@dataclass(frozen=True, slots=True)
class Decision:
    """What to answer: AB, AP, RE (with a reason) or CA (with the changed lines)."""

    code: str
    reason: str | None = None
    changes: tuple[LineChange, ...] = field(default_factory=tuple)
    notes: tuple[tuple[str, str], ...] = field(default_factory=tuple)
    """(order line, note) pairs, e.g. ("3", "temporarily out of stock"); CA only."""
    substitutes: tuple[tuple[str, str, str], ...] = ()
    """(order line, seller item ID, item name) triples: the seller delivers that item instead
    (T76 ``SellerSubstitutedLineItem``; the line goes with status 3, changed); CA only."""
    charges: tuple[Charge, ...] = ()
    """Charges on the whole order (freight ...): added lines (status 1); AP or CA (sent as CA)."""
    discount: Discount | None = None
    """A percentage off every accepted line's price (status 3), or an amount as an added line
    with a negative price; AP or CA (sent as CA)."""
    item_ids: tuple[tuple[str, str], ...] = field(default_factory=tuple, metadata=ADDED_LATER)
    """(order line, the seller's item ID) for lines the Order named without one; AP or CA
    (sent as CA, those lines changed)."""

    @property
    def extras(self) -> bool:
        """Whether the response carries charges or a discount (which make it a CA)."""
        return bool(self.charges) or self.discount is not None

    @property
    def with_lines(self) -> bool:
        """Whether an acceptance must carry lines (extras or item IDs): it goes as CA."""
        return self.extras or bool(self.item_ids)


def respond(
    store: Store,
    settings: Settings,
    order_ref: str,
    decision: Decision,
    *,
    actor: str,
    force: bool = False,
) -> Issued:
    """Issue an Order Response for the order ``order_ref`` (see ``store.queries.resolve_order``)."""
    check_decision(decision)
    return on_order(
        store, order_ref, lambda s, o: issue(s, settings, o, decision, actor=actor, force=force)
    )


def issue(
    session: Session,
    settings: Settings,
    order: OrderRow,
    decision: Decision,
    *,
    actor: str,
    force: bool = False,
) -> Issued:
    """``respond`` inside the caller's transaction, for an order row already loaded."""
    from edi_gateway.pipeline.history import record
    from edi_gateway.store.queries import order_lines
    from edi_gateway.ubl.write import write_order_response

    decision = promoted(decision)
    _check_decision(decision)
    _check_state(order, decision, force)
    connector = buyer_connector(settings, order)
    lines = order_lines(session, order)
    _check_not_deleted(session, order, lines, decision)
    _check_quantities(lines, decision)
    given = "stated in an Order Response issued here"
    give(session, order, lines, decision.item_ids, given, actor=actor)
    response = compose_response(session, order, lines, decision)
    payload = written(response, write_order_response)
    status_before = order.status
    issued = record_and_queue(
        session,
        order,
        response,
        payload,
        connector=connector,
        actor=actor,
        settings=settings,
        lines=lines,
    )
    if force and status_before in MOVED_ON:
        record(
            session,
            "response.forced",
            f"{decision.code} despite {status_before}",
            actor=actor,
            order_id=order.id,
        )
    return issued


def _check_not_deleted(
    session: Session, order: OrderRow, lines: list[OrderLine], decision: Decision
) -> None:
    """A line the buyer deleted by an Order Change is not changed, noted or substituted."""
    from edi_gateway.store.queries import deleted_lines

    deleted = deleted_lines(session, order.id)
    gone = {line.line_id for line in lines if line.id in deleted}
    named = {c.line_id for c in decision.changes} | {n for n, _ in decision.notes}
    named |= {s for s, _, _ in decision.substitutes} | {i for i, _ in decision.item_ids}
    hit = sorted(gone & named)
    if hit:
        raise ResponseRefused(
            f"line {', '.join(hit)} was deleted by the buyer's Order Change; it is not answered"
        )


def check_decision(decision: Decision) -> None:
    """ResponseRefused when ``decision`` can never be sent, whatever the order (bulk CSVs are
    checked with it before anything is issued)."""
    _check_decision(promoted(decision))


def promoted(decision: Decision) -> Decision:
    """An acceptance (AP) with charges, a discount or item IDs goes as CA: T76 has lines on CA
    only."""
    return (
        replace(decision, code="CA") if decision.code == "AP" and decision.with_lines else decision
    )


def _check_decision(decision: Decision) -> None:
    if decision.code not in CODES:
        raise ResponseRefused(f"response code {decision.code!r}: expected one of {CODES}")
    if decision.code == "RE" and not (decision.reason or "").strip():
        raise ResponseRefused("a rejection needs a reason (--reason TEXT)")
    if decision.code == "CA" and not (
        decision.changes or decision.substitutes or decision.with_lines
    ):
        raise ResponseRefused("accepting with changes needs at least one --change LINE:QTY[:DATE]")
    if decision.extras and decision.code != "CA":
        raise ResponseRefused(
            "charges and discounts go only with an acceptance (--accept, or --change ...)"
        )
    problem = terms.problem(decision.charges, decision.discount)
    if problem is not None:
        raise ResponseRefused(problem)
    if decision.code != "CA" and (decision.changes or decision.notes or decision.substitutes):
        raise ResponseRefused(
            "line changes, line notes and substitutes go only with an acceptance with changes (CA)"
        )
    if decision.code != "CA" and decision.item_ids:
        raise ResponseRefused(
            "the seller's item IDs go only with an acceptance (--accept, or --change ...): an "
            "Order Response AB or RE carries no lines"
        )
    seen = [c.line_id for c in decision.changes]
    if len(seen) != len(set(seen)):
        raise ResponseRefused("a line is changed twice; give each line once")
    if any(c.quantity < 0 for c in decision.changes):
        raise ResponseRefused("a changed quantity cannot be negative (0 = line not accepted)")
    _check_substitutes(decision)
    check_item_ids(decision.item_ids)


def _check_quantities(lines: list[OrderLine], decision: Decision) -> None:
    """A response confirms at most what was ordered (ADR 0024): more would be a discrepancy."""
    ordered = {line.line_id: line.qty_ordered for line in lines}
    over = [
        f"line {c.line_id}: {c.quantity} confirmed, {ordered[c.line_id]} ordered"
        for c in decision.changes
        if c.line_id in ordered and c.quantity > ordered[c.line_id]
    ]
    if over:
        raise QuantityExceeded("a response confirms at most what was ordered: " + "; ".join(over))


def _check_substitutes(decision: Decision) -> None:
    substituted = [line_id for line_id, _, _ in decision.substitutes]
    if len(substituted) != len(set(substituted)):
        raise ResponseRefused("a line is substituted twice; give each line one substitute")
    if any(not (item.strip() and name.strip()) for _, item, name in decision.substitutes):
        raise ResponseRefused("a substitute needs a seller item ID and a name (LINE:ITEM:NAME)")
    refused = sorted(c.line_id for c in decision.changes if c.quantity == 0)
    both = [line_id for line_id in refused if line_id in substituted]
    if both:
        raise ResponseRefused(
            f"line {', '.join(both)} is not accepted (quantity 0) and cannot be substituted"
        )


def _check_state(order: OrderRow, decision: Decision, force: bool) -> None:
    if order.status in FINAL or (order.status in MOVED_ON and not force):
        raise ResponseRefused(
            f"order {order.order_number} is {order.status}: an Order Response no longer fits"
            + ("" if order.status in FINAL else "; use --force to send one anyway")
        )


def compose_response(
    session: Session,
    order: OrderRow,
    lines: list[OrderLine],
    decision: Decision,
    *,
    advanced: bool | None = None,
) -> OrderResponse:
    """The Order Response for ``decision`` on ``order`` (not yet written or queued).

    A T116 Order Response Advanced when ``advanced``, else a T76; by default (None) the
    order's own profile decides: advanced ordering orders are answered with T116, and the
    response then names the buyer's latest Order Change it answers, if any, in a note
    (docs/adr/0025-advanced-ordering.md).
    """
    original = original_parties(session, order)
    answers_change = advanced is None
    if advanced is None:
        advanced = is_advanced(original.profile_id)
    response = OrderResponse(
        kind=DocumentKind.ORDER_RESPONSE,
        document_id=next_number(session, order, DocumentKind.ORDER_RESPONSE, "OR"),
        issue_date=datetime.now(UTC).date(),
        currency=order.currency,
        buyer=original.buyer,
        seller=original.seller,
        order_refs=[order.order_number],
        response_code=decision.code,
        reason=decision.reason,
        notes=[decision.reason] if decision.reason else [],
    )
    if advanced:
        response.customization_id, response.profile_id = advanced_ids()
        change = unanswered_change(session, order) if answers_change else None
        if change is not None:
            response.notes.append(f"Answers order change {change}")
    if decision.code == "CA":
        substitutes = {
            line_id: Substitute(item.strip(), name.strip())
            for line_id, item, name in decision.substitutes
        }
        stated = set(substitutes) | {line_id for line_id, _ in decision.item_ids}
        response.lines = _changed_lines(lines, decision.changes, dict(decision.notes), stated)
        _base_quantities(session, order, response.lines)
        response.substitutes = substitutes
        if decision.discount is not None and decision.discount.percent is not None:
            _discount_prices(response.lines, decision.discount.percent)
        response.lines += _added_lines(session, order, lines, response.lines, decision)
    return response


def unanswered_change(session: Session, order: OrderRow) -> str | None:
    """The ID of the buyer's latest Order Change applied to ``order`` after its latest Order
    Response (received or issued), if any: the change a new response answers."""
    from sqlalchemy import select

    from edi_gateway.store.tables import DocumentRow

    latest = session.execute(
        select(DocumentRow.kind, DocumentRow.doc_number)
        .where(
            DocumentRow.order_id == order.id,
            DocumentRow.state == "attached",
            DocumentRow.kind.in_(
                (DocumentKind.ORDER_CHANGE.value, DocumentKind.ORDER_RESPONSE.value)
            ),
        )
        .order_by(DocumentRow.id.desc())
        .limit(1)
    ).first()
    if latest is None or latest.kind != DocumentKind.ORDER_CHANGE.value:
        return None
    return str(latest.doc_number)


def _discount_prices(lines: list[Line], percent: Decimal) -> None:
    """Every line the response accepts gets its price less ``percent`` % and status 3."""
    for line in lines:
        if line.status_code == NOT_ACCEPTED:
            continue
        if line.price is None:
            raise ResponseRefused(f"order line {line.line_id} has no price to take {percent}% off")
        line.price = terms.discounted(line.price, percent)
        line.status_code = CHANGED


def _added_lines(
    session: Session,
    order: OrderRow,
    order_lines: list[OrderLine],
    lines: list[Line],
    decision: Decision,
) -> list[Line]:
    """The added lines (status 1) of the charges and of an amount discount."""
    wanted: list[tuple[bool, Decimal, str, Vat | None]] = [
        (True, c.amount, c.kind, c.vat) for c in decision.charges
    ]
    discount = decision.discount
    if discount is not None and discount.amount is not None:
        total = sum((_amount(line) for line in lines), start=Decimal(0))
        if discount.amount > total:
            raise ResponseRefused(
                f"a discount of {discount.amount} is more than the accepted lines' total {total}"
            )
        wanted.append((False, discount.amount, "discount", discount.vat))
    if not wanted:
        return []
    default: Vat | None = None
    if any(vat is None for *_, vat in wanted):
        unset = [kind for _, _, kind, vat in wanted if vat is None]
        default = _lines_vat(session, order, order_lines, unset)
    ids = terms.next_line_ids((line.line_id for line in lines), len(wanted))
    return [
        terms.added_line(line_id, charge=charge, amount=value, kind=kind, vat=vat or default)
        for line_id, (charge, value, kind, vat) in zip(ids, wanted, strict=True)
    ]


def _amount(line: Line) -> Decimal:
    if line.status_code == NOT_ACCEPTED or line.quantity is None or line.price is None:
        return Decimal(0)
    if line.base_quantity:  # the price is for that many units: the line's net, to 0.01
        return money(line.quantity.value * line.price / line.base_quantity)
    return line.quantity.value * line.price


def _base_quantities(session: Session, order: OrderRow, lines: list[Line]) -> None:
    """Each line's price is for the base quantity the Order gave it (12.34 per 3 units): the
    response says so, or the buyer reads a price per unit (T76/T116 ``cbc:BaseQuantity``)."""
    from edi_gateway.outbound.invoice_ledger import order_items

    items = order_items(session, order)
    for line in lines:
        item = items.get(line.line_id)
        line.base_quantity = item.base_quantity if item is not None else None


def _lines_vat(
    session: Session, order: OrderRow, order_lines: list[OrderLine], kinds: list[str]
) -> Vat | None:
    """The VAT the order's lines agree on (None: they state none, the invoice's default)."""
    from edi_gateway.outbound.invoice_ledger import order_vat

    stated = order_vat(session, order)
    agree, vat = terms.common_vat(
        Vat(*stated[line.line_id]) if line.line_id in stated else None for line in order_lines
    )
    if not agree:
        raise ResponseRefused(
            f"the order lines do not all state the same VAT: give the VAT of {', '.join(kinds)} "
            "(KIND:AMOUNT:VATCAT:RATE, e.g. freight:25.00:S:25; a discount AMOUNT:VATCAT:RATE)"
        )
    return vat


def _changed_lines(
    lines: list[OrderLine],
    changes: tuple[LineChange, ...],
    notes: dict[str, str],
    restated: set[str],
) -> list[Line]:
    """The response's lines; ``restated``: lines whose item it names otherwise (a substitute,
    an added seller's item ID), changed (3) even at their ordered quantity."""
    by_id = {c.line_id: c for c in changes}
    unknown = sorted((set(by_id) | set(notes) | restated) - {line.line_id for line in lines})
    if unknown:
        known = ", ".join(line.line_id for line in lines)
        raise ResponseRefused(f"no order line {', '.join(unknown)}; the lines are: {known}")
    out: list[Line] = []
    for line in lines:
        change = by_id.get(line.line_id)
        quantity = line.qty_ordered if change is None else change.quantity
        # 0 (changed to 0, or a line the buyer deleted by an Order Change): not accepted
        status = NOT_ACCEPTED if quantity == 0 else (ACCEPTED if change is None else CHANGED)
        if line.line_id in restated and quantity != 0:
            status = CHANGED
        composed = Line(line_id=line.line_id, quantity=Quantity(quantity, line.unit))
        composed.order_line_ref = line.line_id
        composed.item_name = line.item_name
        composed.seller_item_id = line.seller_item_id
        composed.price = line.price
        composed.status_code = status
        composed.delivery_date = change.delivery_date if change else None
        composed.note = notes.get(line.line_id)
        out.append(composed)
    return out
