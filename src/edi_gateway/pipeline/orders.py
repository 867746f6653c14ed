"""Orders in bulk: a batch of Order documents becomes order, key, line and document rows.

Plain SQLAlchemy Core inserts with one statement per table per batch: this is the hot path of
intake (see bench/intake.py). The checks that could refuse an order (duplicate, ID conflict,
partner) ran before, so every order given here is stored.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from decimal import Decimal
from operator import attrgetter
from typing import Any

from sqlalchemy import Connection

from edi_gateway.domain.documents import Document, Line, Order, Party
from edi_gateway.pipeline.history import now
from edi_gateway.pipeline.order_data import DataRows, order_columns
from edi_gateway.pipeline.work import PROCESSED, Work
from edi_gateway.store import schema
from edi_gateway.store.bulk import insert_columns, insert_keyed, insert_many

ZERO = Decimal(0)
RECEIVED = "Received"


def insert_orders(conn: Connection, works: Sequence[Work]) -> None:
    """Store the orders of ``works`` (Order documents); mark each processed with its order id."""
    stamp = now()
    orders = schema.orders
    rows = [_order_row(w, stamp) for w in works]
    order_ids = insert_keyed(conn, orders, rows, ("buyer_key", "order_number"))
    keys: list[dict[str, Any]] = []
    lines: dict[str, list[Any]] = {name: [] for name in LINE_COLUMNS}
    docs: list[dict[str, Any]] = []
    events: list[dict[str, Any]] = []
    data = DataRows()
    for work, order_id in zip(works, order_ids, strict=True):
        document = work.document
        assert isinstance(document, Order)
        # a batch redone after a rollback adds them once
        work.findings += [f for f in data.add(order_id, document) if f not in work.findings]
        keys += key_rows(order_id, document, work.invoicee)
        add_line_columns(lines, order_id, document.lines)
        docs.append(document_row(work.id, document, order_id, stamp))
        events.append(
            {
                "at": stamp,
                "order_id": order_id,
                "message_id": work.id,
                "event": "order.received",
                "detail": f"order {document.document_id} with {len(document.lines)} lines",
                "actor": work.source,
            }
        )
        work.end(PROCESSED, order_id)
    insert_many(conn, schema.order_keys, keys)
    insert_columns(conn, schema.order_lines, lines, constants=NEW_LINE)
    insert_many(conn, schema.documents, docs)
    insert_many(conn, schema.history, events)
    data.insert(conn)


def _order_row(work: Work, stamp: Any) -> dict[str, Any]:
    document = work.document
    assert isinstance(document, Order) and work.sender_key is not None
    return {
        "buyer_key": work.sender_key,
        "order_number": document.document_id,
        "buyer_name": document.buyer.name if document.buyer else None,
        "seller_key": document.seller.key() if document.seller else None,
        "seller_name": document.seller.name if document.seller else None,
        "buyer_partner": work.partner,
        "seller_partner": work.counterpart,
        "issue_date": document.issue_date,
        "currency": document.currency,
        "total_amount": document.total_amount,
        "status": RECEIVED,
        "response_code": None,
        "cancelled": False,
        "created_at": stamp,
        "updated_at": stamp,
        **order_columns(document),
    }


def key_rows(
    order_id: int, document: Document, configured: Party | None = None
) -> list[dict[str, Any]]:
    """Every buyer and seller key the order can be found by; (role ``billed``) the keys of
    the invoicee it names that are not its buyer's: its invoices name that party as buyer;
    and (role ``invoicee``) those of the buyer partner's ``invoicee:`` (``configured``) for an
    order naming none. An Order Change replaces the ``billed`` keys only."""
    rows = [
        {"order_id": order_id, "role": role, "party_key": key}
        for role, party in (("buyer", document.buyer), ("seller", document.seller))
        if party
        for key in party.keys()  # noqa: SIM118 - Party.keys() is not a dict view
    ]
    buyer = document.buyer.keys() if document.buyer else []
    billed = document.billed if isinstance(document, Order) else None
    if billed is not None:
        rows += billed_rows(order_id, buyer, billed)
    if configured is not None:
        rows += billed_rows(order_id, buyer, configured, role="invoicee")
    return rows


def billed_rows(
    order_id: int, buyer: Iterable[str], billed: Party, role: str = "billed"
) -> list[dict[str, Any]]:
    """The ``order_keys`` rows (``role``) of invoicee ``billed``: its keys that are not the
    buyer's (``buyer``), each once. None when the invoicee is the buyer."""
    known = set(buyer)
    keys = [key for key in billed.keys() if key not in known]  # noqa: SIM118 - not a dict
    return [{"order_id": order_id, "role": role, "party_key": key} for key in dict.fromkeys(keys)]


NEW_LINE: dict[str, Any] = {
    "status_code": None,
    "qty_confirmed": None,
    "qty_despatched": ZERO,
    "qty_received": ZERO,
    "qty_invoiced": ZERO,
    "qty_credited": ZERO,
    "unbilled": False,
}
"""The columns every new order line starts with: nothing confirmed or moved yet."""


_SAME_NAMES = (
    "line_id",
    "item_name",
    "seller_item_id",
    "buyer_item_id",
    "standard_item_id",
    "price",
    "delivery_date",
    "delivery_place",
)
"""Line attributes stored as they are, in columns of the same name."""
LINE_COLUMNS = ("order_id", "position", *_SAME_NAMES, "unit", "qty_ordered")
"""The order line columns :func:`add_line_columns` fills (the rest: :data:`NEW_LINE`)."""
_GETTERS = tuple((name, attrgetter(name)) for name in _SAME_NAMES)


def add_line_columns(
    columns: dict[str, list[Any]], order_id: int, lines: Sequence[Line], start: int = 0
) -> None:
    """Append the rows of an order's new ``lines`` (positions from ``start``) to ``columns``
    (:data:`LINE_COLUMNS`, one list each), column by column, without a dict per line (a
    20,000-line order is stored from these)."""
    columns["order_id"] += [order_id] * len(lines)
    columns["position"] += range(start, start + len(lines))
    for name, getter in _GETTERS:
        columns[name] += map(getter, lines)
    quantities = [line.quantity for line in lines]
    columns["unit"] += [q.unit if q else None for q in quantities]
    columns["qty_ordered"] += [q.value if q else ZERO for q in quantities]


def line_rows(order_id: int, lines: Sequence[Line], start: int) -> list[dict[str, Any]]:
    """Order line rows (the same values as :func:`add_line_columns`, a dict per line), without
    the :data:`NEW_LINE` columns every new line shares."""
    columns: dict[str, list[Any]] = {name: [] for name in LINE_COLUMNS}
    add_line_columns(columns, order_id, lines, start)
    return [
        dict(zip(LINE_COLUMNS, row, strict=True)) for row in zip(*columns.values(), strict=True)
    ]


def document_row(
    message_id: int | None,
    document: Document,
    order_id: int | None,
    stamp: Any,
    direction: str = "in",
) -> dict[str, Any]:
    """The ``documents`` row of a document (attached when ``order_id`` is known).

    Inbound documents come with their message; ``direction="out"`` ones the gateway issued.
    """
    code = (
        getattr(document, "response_code", None)
        or getattr(document, "type_code", None)
        or (getattr(document, "sequence_id", None) or "")[:10]  # an Order Change's sequence
        or None
    )
    amount = getattr(document, "payable_amount", None) or getattr(document, "total_amount", None)
    sender = document.sender()
    return {
        "message_id": message_id,
        "direction": direction,
        "kind": document.kind.value,
        "doc_number": document.document_id,
        "sender_key": sender.key() if sender else None,
        "order_id": order_id,
        "order_ref": document.waits_for(),
        "preceding_ref": document.preceding_ref(),
        "issue_date": document.issue_date,
        "code": code,
        "state": "attached" if order_id is not None else "orphan",
        "amount": amount,
        "created_at": stamp,
    }
