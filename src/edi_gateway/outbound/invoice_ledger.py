"""What an order's ledger lets an invoice, credit note or debit note bill, and at which price.

Part of :mod:`edi_gateway.outbound.invoice`: the quantities each order line may still be billed
(despatched and not yet invoiced, net of credits; or what one invoice billed and was not credited
yet), the stored documents of the order, and the VAT and base quantity the buyer's Order (and its
Order Changes) gave each line.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation, localcontext
from typing import TYPE_CHECKING, Protocol

from sqlalchemy import select

from edi_gateway.domain.billing import AllowanceCharge
from edi_gateway.domain.documents import DocumentKind, Invoice
from edi_gateway.domain.status import EXACT
from edi_gateway.outbound.issuing import NotAllowed
from edi_gateway.ubl.namespaces import cac, cbc
from edi_gateway.ubl.read_charges import read_allowance_charge

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from edi_gateway.store.tables import DocumentRow, OrderLine
    from edi_gateway.store.tables import Order as OrderRow
    from edi_gateway.ubl.read_values import Element

ZERO = Decimal(0)


class Asked(Protocol):
    """What :func:`chosen` needs of a requested line (``invoice.LineRequest``)."""

    @property
    def line_id(self) -> str: ...
    @property
    def quantity(self) -> Decimal | None: ...
    @property
    def price(self) -> Decimal | None: ...


@dataclass(frozen=True, slots=True)
class Room:
    """How much each order line may be billed now, and at which price by default."""

    quantity: dict[int, Decimal]
    price: dict[int, Decimal | None]
    what: str
    invoice: str | None = None


def room(
    session: Session,
    order: OrderRow,
    lines: list[OrderLine],
    number: str | None,
    *,
    debit: bool = False,
    prices: Mapping[int, Decimal] | None = None,
    rebill_credited: bool = False,
) -> Room:
    """The room on each line: for an invoice (``number`` None) what was despatched and not yet
    invoiced, at ``prices`` (the agreed ones) else the order line's price; for a credit or
    debit note of invoice ``number`` what it billed (less earlier credits), at its prices.

    A credited quantity is settled: it is never billed again, unless ``rebill_credited`` (the
    operator's explicit ``--rebill-credited``) gives it back to the invoice's room (ADR 0024).
    """
    if number is None:
        with localcontext(EXACT):  # every digit the ledger keeps (ADR 0024)
            left = {
                line.id: line.qty_despatched
                - line.qty_invoiced
                + (line.qty_credited if rebill_credited else ZERO)
                for line in lines
            }
        agreed = prices or {}
        what = "was despatched and not yet invoiced"
        if rebill_credited:
            what = "was despatched and not yet invoiced, or credited"
        return Room(left, {line.id: agreed.get(line.id, line.price) for line in lines}, what)
    found = {row.doc_number: row for row in rows(session, order, DocumentKind.INVOICE)}
    if number not in found:
        known = ", ".join(found) or "none"
        raise NotAllowed(f"order {order.order_number} has no invoice {number}; it has: {known}")
    billed, billed_prices = ledger(session, found[number].id)
    if debit:
        return Room(billed, billed_prices, f"invoice {number} billed", number)
    for note in rows(session, order, DocumentKind.CREDIT_NOTE):
        if number in stored(session, note).billing_refs:
            for line_id, quantity in ledger(session, note.id)[0].items():
                billed[line_id] = EXACT.subtract(billed.get(line_id, ZERO), quantity)
    return Room(billed, billed_prices, f"invoice {number} billed and was not credited yet", number)


def rows(session: Session, order: OrderRow, kind: DocumentKind) -> list[DocumentRow]:
    """The order's attached documents of ``kind``, oldest first."""
    from edi_gateway.store.tables import DocumentRow

    query = select(DocumentRow).where(
        DocumentRow.order_id == order.id,
        DocumentRow.kind == kind.value,
        DocumentRow.state == "attached",
    )
    return list(session.scalars(query.order_by(DocumentRow.id)))


def ledger(
    session: Session, document_id: int
) -> tuple[dict[int, Decimal], dict[int, Decimal | None]]:
    """Per order line, the quantity a document moved and its price."""
    from edi_gateway.store.tables import DocumentLine

    quantities: dict[int, Decimal] = {}
    prices: dict[int, Decimal | None] = {}
    for row in session.scalars(select(DocumentLine).where(DocumentLine.document_id == document_id)):
        if row.order_line_id is not None and row.quantity is not None:
            quantities[row.order_line_id] = quantities.get(row.order_line_id, ZERO) + row.quantity
            prices[row.order_line_id] = row.price
    return quantities, prices


def payload(session: Session, row: DocumentRow) -> bytes | None:
    """The bytes of a document: its received message, or the outbox row the gateway queued."""
    from edi_gateway.store.tables import Message, OutboxRow

    if row.message_id is not None:
        return session.scalar(select(Message.payload).where(Message.id == row.message_id))
    query = select(OutboxRow.payload).where(OutboxRow.document_id == row.id)
    return session.scalar(query.limit(1))


def stored(session: Session, row: DocumentRow) -> Invoice:
    """The stored billing document of ``row``, interpreted."""
    from edi_gateway.ubl.read import read_stored

    data = payload(session, row)
    document = read_stored(data) if data else None
    if not isinstance(document, Invoice):
        raise NotAllowed(f"{row.kind} {row.doc_number} has no readable stored copy")
    return document


def chosen(
    lines: list[OrderLine], asked_lines: tuple[Asked, ...], space: Room
) -> tuple[list[tuple[OrderLine, Decimal, Decimal | None]], list[str]]:
    """The (order line, quantity, price) to bill and, for each line asked beyond its room, why."""
    if not asked_lines:
        picked = [
            (line, space.quantity[line.id], space.price.get(line.id))
            for line in lines
            if space.quantity.get(line.id, ZERO) > ZERO
        ]
        if not picked:
            raise NotAllowed(f"nothing to bill: no line has more than {space.what}")
        return picked, []
    by_id = {line.line_id: line for line in lines}
    unknown = [r.line_id for r in asked_lines if r.line_id not in by_id]
    if unknown:
        raise NotAllowed(f"no order line {', '.join(unknown)}; the lines are: {', '.join(by_id)}")
    out: list[tuple[OrderLine, Decimal, Decimal | None]] = []
    over: list[str] = []
    for asked in asked_lines:
        line = by_id[asked.line_id]
        if line.id not in space.quantity:
            raise NotAllowed(f"line {asked.line_id} is not on the invoice {space.invoice}")
        available = max(space.quantity[line.id], ZERO)
        quantity = available if asked.quantity is None else asked.quantity
        if quantity > available or quantity <= ZERO:
            over.append(f"{asked.line_id}: {quantity} asked, {available} {space.what}")
        price = space.price.get(line.id) if asked.price is None else asked.price
        out.append((line, quantity, price))
    return out, over


@dataclass(frozen=True, slots=True)
class OrderItem:
    """What the buyer's Order (or a later Order Change) said of one line that a billing line
    needs: its item's VAT category and rate, the quantity its price is for
    (``cac:Price/cbc:BaseQuantity``), and, for its own allowances and charges (ADR 0048),
    the quantity and price it states and those allowances and charges."""

    vat: tuple[str, Decimal | None] | None = None
    base_quantity: Decimal | None = None
    quantity: Decimal | None = None
    price: Decimal | None = None
    allowances_charges: tuple[AllowanceCharge, ...] = ()


def order_items(session: Session, order: OrderRow) -> dict[str, OrderItem]:
    """Per order line ID, what :func:`order_terms` says of it."""
    return order_terms(session, order)[0]


def order_terms(
    session: Session, order: OrderRow
) -> tuple[dict[str, OrderItem], tuple[AllowanceCharge, ...]]:
    """Per order line ID, the VAT, base quantity, quantity, price and allowances and charges
    the received Order gave the line, as the buyer's attached Order Changes (oldest first)
    restated them for the lines they add or change: a line added or changed by a change has its
    own VAT, price basis and allowances and charges. Then the order's document-level
    allowances and charges: those of the latest of these documents that states any.

    Read from the stored documents, as the ledger keeps none of it: a price of 12.34 for 3
    units billed as 12.34 per unit would triple the line (BT-146 is per BT-149 base quantity)."""
    from edi_gateway.store.queries import order_payload
    from edi_gateway.ubl.parse import parse

    found: dict[str, OrderItem] = {}
    document_level: tuple[AllowanceCharge, ...] = ()
    changes = rows(session, order, DocumentKind.ORDER_CHANGE)
    stored = [order_payload(session, order.id), *(payload(session, row) for row in changes)]
    path = f"{cac('OrderLine')}/{cac('LineItem')}"
    for data in stored:
        root = parse(data, max_size=len(data) + 1) if data else None
        if root is None:
            continue
        stated = allowances_charges_of(root)
        document_level = stated or document_level
        for item in root.iterfind(path):
            line_id = (item.findtext(cbc("ID")) or "").strip()
            if not line_id or (item.findtext(cbc("LineStatusCode")) or "").strip() in _KEPT:
                continue
            before = found.get(line_id, OrderItem())
            category = item.find(f"{cac('Item')}/{cac('ClassifiedTaxCategory')}")
            code = (category.findtext(cbc("ID")) or "").strip() if category is not None else ""
            vat = before.vat
            if category is not None and code:
                vat = (code, _decimal(category.findtext(cbc("Percent"))))
            price = item.find(cac("Price"))
            base, amount = before.base_quantity, before.price  # a restated price: its own basis
            if price is not None:
                base = _decimal(price.findtext(cbc("BaseQuantity")))
                amount = _decimal(price.findtext(cbc("PriceAmount")))
            quantity = _decimal(item.findtext(cbc("Quantity")))
            found[line_id] = OrderItem(vat, base, quantity, amount, allowances_charges_of(item))
    return found, document_level


def allowances_charges_of(el: Element) -> tuple[AllowanceCharge, ...]:
    """The ``cac:AllowanceCharge`` children of ``el`` (a document or one of its lines); one
    look at the children for the many lines without any."""
    children = el.findall(_ALLOWANCE_CHARGE)
    if not children:
        return ()
    found = (read_allowance_charge(child) for child in children)
    return tuple(item for item in found if item is not None)


_ALLOWANCE_CHARGE = cac("AllowanceCharge")


_KEPT = frozenset({"2", "4"})
"""Order Change line status codes (UNCL 1229) that restate nothing: deleted, no action."""


def order_vat(session: Session, order: OrderRow) -> dict[str, tuple[str, Decimal | None]]:
    """Per order line ID, the VAT category and rate the received Order gave the item, if any."""
    return stated_vat(order_items(session, order))


def stated_vat(items: dict[str, OrderItem]) -> dict[str, tuple[str, Decimal | None]]:
    """Of :func:`order_items`, the lines that state a VAT category and rate, with it."""
    return {line_id: item.vat for line_id, item in items.items() if item.vat}


def _decimal(text: str | None) -> Decimal | None:
    try:
        return Decimal(text.strip()) if text and text.strip() else None
    except InvalidOperation:
        return None
