"""Read-side queries for the CLI. Each returns plain dicts: the ``--json`` schema.

The shapes here are the stable JSON schema documented in the README; add keys, never rename.

The lists and the ``show`` of orders, messages and outbox rows read with SQLAlchemy Core, on a
:data:`Reader`: a Core connection (the CLI's read-only commands, which so never import the
ORM, ~0.1 s of their start-up) or an ORM session (the console, the outbound commands). What
they read are rows, whose attributes are named as the ORM classes' (``tables.py`` maps each
class onto its table's columns), so the summaries take either. Only the functions that hand
out ORM objects to change (``resolve_order``, ``get_order``, ``get_message``, ``order_lines``,
``orders_created_by``) import ``tables.py``, when called.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, TypeAlias

from sqlalchemy import (
    ColumnElement,
    Connection,
    Numeric,
    Row,
    Select,
    and_,
    cast,
    func,
    or_,
    select,
    true,
    union,
)

from edi_gateway.domain.status import EXACT, NEEDS, OrderStatus
from edi_gateway.errors import ErrorCode, GatewayError, LookupFailed
from edi_gateway.store import schema
from edi_gateway.store.order_data import order_data_detail, type_condition
from edi_gateway.store.search import search_condition

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from edi_gateway.store.tables import Message, Order, OrderLine, OutboxRow

Json = dict[str, Any]
Reader: TypeAlias = "Session | Connection"
"""What the read queries run on: a Core connection or an ORM session."""
Record: TypeAlias = "Row[*tuple[Any, ...]]"
"""A Core row of any width, read by attribute (column name) like the ORM object it stands for."""
MAX_STORE_ID = 2**31 - 1  # an INTEGER key on every backend; larger numbers are order numbers


def utc_text(value: datetime | None) -> str | None:
    """The one time format of the CLI and its JSON: ISO 8601 in UTC to the second,
    ``2026-11-01T09:30:00Z``."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if value else None


@dataclass(frozen=True, slots=True)
class Filters:
    """The filters every list takes (each list uses those that apply to it)."""

    state: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    partner: str | None = None
    order: str | None = None
    """An order reference (store ID, BUYER:ORDER_ID, order ID), as :func:`resolve_order`."""
    code: str | None = None
    connector: str | None = None
    search: str | None = None
    order_type: str | None = None
    """An order type name or code (``orders list --type``; store/order_data.py)."""
    overdue: bool = False
    """Only orders whose response or despatch is overdue now (clocks/sla.py)."""
    attention: bool | None = None
    """Orders only: True for those whose ledger has a discrepancy not cleared yet (ADR 0024)."""
    needs: str | None = None
    """Orders only: what the supplier still owes (:data:`NEEDS`): response, despatch, invoice."""


@dataclass(frozen=True, slots=True)
class Page:
    """One page of a list: its rows, how many match in all, and where it starts."""

    rows: list[Json]
    total: int
    offset: int

    @classmethod
    def of(cls, rows: list[Json], limit: int, offset: int) -> Page:
        """A page of a list already in memory."""
        return cls(rows[offset : offset + limit], len(rows), offset)

    @property
    def more(self) -> int:
        """Matching rows after this page."""
        return max(0, self.total - self.offset - len(self.rows))

    def more_text(self, offset: int) -> str:
        """``N more (--offset M)``, or "" when this page is the last."""
        if not self.more:
            return ""
        return f"{self.more} more (--offset {offset + len(self.rows)})"


def _page(
    reader: Reader,
    query: Select[Any],
    limit: int,
    offset: int,
    among: ColumnElement[bool] | None = None,
) -> tuple[list[Record], int]:
    """One page of ``query`` and how many rows it selects in all; ``among``: a condition
    that narrows the page's rows to those the page can hold (the total is not narrowed)."""
    total = reader.scalar(select(func.count()).select_from(query.order_by(None).subquery()))
    paged = query if among is None else query.where(among)
    return list(reader.execute(paged.limit(limit).offset(offset))), int(total or 0)


def _dialect(reader: Reader) -> str:
    """The name of the database's dialect (``sqlite``, ``postgresql``)."""
    if isinstance(reader, Connection):
        return reader.dialect.name
    return reader.get_bind().dialect.name


def _newest_first(stamp: Any, key: Any, filters: Filters) -> tuple[Any, ...]:
    """Newest first: by ``key`` (the id), or with a time filter by ``stamp`` then ``key``,
    walking the time index from the newest end. Ordered by id alone, SQLite reads the table
    in id order and tests the time of every row until the page is full: the whole table when
    fewer rows than a page match (``--since`` today, the console's Today) (docs/adr/0036)."""
    if filters.since or filters.until:
        return (stamp.desc(), key.desc())
    return (key.desc(),)


def _num(value: Decimal | None) -> str | None:
    """A quantity as text without trailing zeros ("10", "2.5"), every digit kept (``normalize``
    rounds to its context: 28 digits by default)."""
    return None if value is None else format(value.normalize(EXACT), "f")


def _money(value: Decimal | None) -> str | None:
    """An amount exactly as stated ("24354.00")."""
    return None if value is None else format(value, "f")


def message_summary(message: Message | Record) -> Json:
    """One message as a listing row."""
    return {
        "id": message.id,
        "received_at": utc_text(message.received_at),
        "source": message.source,
        "filename": message.filename,
        "size": message.size,
        "sha256": message.sha256,
        "state": message.state,
        "error_code": message.error_code,
        "document_type": message.doc_kind,
        "document_id": message.doc_id,
        "number": message.doc_id,
        "partner": message.partner,
        "order_id": message.order_id,
    }


def list_messages(
    reader: Reader, *, state: str | None = None, since: datetime | None = None, limit: int = 500
) -> list[Json]:
    """Messages, newest first, optionally by state and arrival time."""
    return page_messages(reader, Filters(state=state, since=since), limit).rows


def page_messages(reader: Reader, filters: Filters, limit: int = 500, offset: int = 0) -> Page:
    """Messages, newest first, by state, arrival time, partner, order, error code, connector."""
    f, m = filters, schema.messages.c
    query = select(schema.messages).order_by(*_newest_first(m.received_at, m.id, f))
    conditions = [
        m.state == f.state if f.state else None,
        m.received_at >= f.since if f.since else None,
        m.received_at < f.until if f.until else None,
        m.partner == f.partner if f.partner else None,
        m.error_code == f.code.upper() if f.code else None,
        m.source.in_(connector_sources(f.connector)) if f.connector else None,
        m.order_id == find_order(reader, f.order).id if f.order else None,
    ]
    query = query.where(*(c for c in conditions if c is not None))
    found, total = _page(reader, query, limit, offset)
    return Page([message_summary(m) for m in found], total, offset)


def connector_sources(name: str) -> list[str]:
    """What ``messages.source`` says for what came through connector ``name``: each inbound
    transport writes ``TYPE:NAME`` (TYPE a key of the connector registry), the CLI ``cli``.
    Listed in full, the filter runs on the source index; a suffix ``LIKE '%:NAME'`` read every
    message (docs/adr/0036)."""
    from edi_gateway.config.connectors import CONNECTOR_TYPES

    return [name, *(f"{kind}:{name}" for kind in CONNECTOR_TYPES)]


def get_message(session: Session, message_id: int, *, lock: bool = False) -> Message:
    """The message with this id, or LookupFailed(NOT_FOUND); ``lock``: its row locked until
    the transaction ends (PostgreSQL), read as the one that changed it before committed it."""
    from edi_gateway.store.tables import Message

    message = session.get(Message, message_id, with_for_update=lock)
    if message is None:
        raise _no_message(message_id)
    return message


def _no_message(message_id: int) -> LookupFailed:
    return LookupFailed(ErrorCode.NOT_FOUND, f"there is no message {message_id}")


def message_detail(reader: Reader, message_id: int) -> Json:
    """A message with its error and history."""
    m = schema.messages
    message = reader.execute(select(m).where(m.c.id == message_id)).first()
    if message is None:
        raise _no_message(message_id)
    out = message_summary(message)
    out.update(
        {
            "source_ref": message.source_ref,
            "error_detail": message.error_detail,
            "error_line": message.error_line,
            "sender_key": message.sender_key,
            "duplicate_of": message.duplicate_of,
            "attempts": message.attempts,
            "findings": findings_of(reader, message_id=message_id),
            "history": _history(reader, schema.history.c.message_id == message_id),
        }
    )
    return out


def findings_of(
    reader: Reader, *, message_id: int | None = None, outbox_id: int | None = None
) -> list[Json]:
    """What the latest check of a message or an outbox row found, in the order found."""
    c = schema.findings.c
    column, value = (
        (c.message_id, message_id) if message_id is not None else (c.outbox_id, outbox_id)
    )
    rows = reader.execute(
        select(c.rule_set, c.rule_id, c.flag, c.location, c.line, c.text)
        .where(column == value)
        .order_by(c.seq)
    )
    return [dict(row._mapping) for row in rows]


def _history(reader: Reader, condition: Any) -> list[Json]:
    h = schema.history
    rows = reader.execute(select(h).where(condition).order_by(h.c.id))
    return [
        {
            "at": utc_text(h.at),
            "event": h.event,
            "detail": h.detail,
            "actor": h.actor,
            "message_id": h.message_id,
        }
        for h in rows
    ]


_CLOSED = ("Cancelled", "Rejected")  # domain/status.py: nothing more is owed on these


def needs_condition(needs: str) -> Any:
    """The orders that still need ``needs`` from their supplier (docs/adr/0031, second part):

    - ``response``: no Order Response yet, or only an acknowledgement (AB), and neither
      cancelled nor rejected;
    - ``despatch``: accepted (AP, or CA with changes) and nothing despatched on any line yet;
    - ``invoice``: a line despatched beyond what was invoiced (the room ``invoice ORDER``
      bills: a credited quantity is settled, ADR 0024), neither cancelled nor rejected; read
      from ``order_lines.unbilled``, which the ledger sets comparing exact Decimals (a cast
      to NUMERIC is a float on SQLite, 0029).

    ``despatch`` compares ``CAST(qty_despatched AS NUMERIC)`` with 0: only its sign counts,
    and a float keeps the sign of any 48-character quantity (its smallest, 1E-46, is far
    from a float's underflow), so that is exact on both backends.

    Anything else is LookupFailed(USAGE)."""
    o, line = schema.orders.c, schema.order_lines.c
    open_order = (o.cancelled.is_(False), o.status.not_in(_CLOSED))
    if needs == "response":
        return and_(or_(o.response_code.is_(None), o.response_code == "AB"), *open_order)
    if needs == "despatch":
        despatched = select(line.id).where(line.order_id == o.id, _number(line.qty_despatched) > 0)
        return and_(o.response_code.in_(("AP", "CA")), ~despatched.exists(), *open_order)
    if needs == "invoice":  # IN, not a correlated EXISTS: one pass over the lines (2x faster)
        # the ledger's exact flag, as its partial index states it (schema.UNBILLED)
        unbilled = select(line.order_id).where(line.unbilled == true())
        return and_(o.id.in_(unbilled), *open_order)
    raise LookupFailed(ErrorCode.USAGE, f"needs {needs!r}: expected one of {', '.join(NEEDS)}")


def order_summary(order: Order | Record) -> Json:
    """One order as a listing row."""
    return {
        "id": order.id,
        "ref": f"{order.buyer_partner or order.buyer_key}:{order.order_number}",
        "order_number": order.order_number,
        "buyer": order.buyer_partner or order.buyer_key,
        "buyer_name": order.buyer_name,
        "seller": order.seller_partner or order.seller_key,
        "seller_name": order.seller_name,
        "issue_date": order.issue_date.isoformat() if order.issue_date else None,
        "currency": order.currency,
        "total_amount": _money(order.total_amount),
        "status": order.status,
        "attention": order.attention,
        "updated_at": utc_text(order.updated_at),
        "received_at": utc_text(order.created_at),
        "number": order.order_number,
        "type": order.order_type,
        "response_due_at": utc_text(order.response_due_at),
        "despatch_due_at": utc_text(order.despatch_due_at),
    }


def list_orders(
    reader: Reader,
    *,
    status: str | None = None,
    partner: str | None = None,
    search: str | None = None,
    limit: int = 500,
) -> list[Json]:
    """Orders, newest first, by status, partner (id or party key) or free text."""
    return page_orders(reader, Filters(state=status, partner=partner, search=search), limit).rows


def page_orders(reader: Reader, filters: Filters, limit: int = 500, offset: int = 0) -> Page:
    """Orders, newest first, by status (``state``), arrival, partner (id or party key), order
    reference or free text."""
    query = orders_query(reader, filters)
    if not filters.search:
        paged = _partner_page(reader, filters, limit, offset) if filters.partner else None
        found, total = _page(reader, query, limit, offset, paged)
        return Page(_with_requested(reader, found), total, offset)
    # the search runs on its trigram indexes (store/search.py, ADR 0035); its matches are few
    # next to the store, so their ids are read once, giving both the count and the page
    o = schema.orders
    ids = list(reader.scalars(query.with_only_columns(o.c.id)))
    wanted = ids[offset : offset + limit]
    by_id = {r.id: r for r in reader.execute(select(o).where(o.c.id.in_(wanted)))}
    return Page(_with_requested(reader, [by_id[i] for i in wanted]), len(ids), offset)


def _partner_page(reader: Reader, filters: Filters, limit: int, offset: int) -> ColumnElement[bool]:
    """``orders.id`` among the first ``offset + limit`` orders of each side of the partner
    filter (buyer or seller, partner id or party key), every other filter and the list's
    order applied: the page is among them. The partner filter is an OR of four indexed
    columns, which no index returns in the list's order, so the page query otherwise sorted
    every order of the partner (half the store for a big buyer: 27 ms at 50,000 orders on
    SQLite); each side walks its own index and stops (docs/adr/0036)."""
    from dataclasses import replace

    o = schema.orders.c
    others = orders_query(reader, replace(filters, partner=None, search=None))
    first = others.with_only_columns(o.id).limit(offset + limit)
    sides = [
        select(first.where(side == filters.partner).subquery().c.id) for side in _partner_sides()
    ]
    return o.id.in_(union(*sides))


def _partner_sides() -> tuple[ColumnElement[Any], ...]:
    """The columns the partner filter matches: buyer or seller, partner id or party key."""
    o = schema.orders.c
    return (o.buyer_partner, o.seller_partner, o.buyer_key, o.seller_key)


def order_ids(reader: Reader, filters: Filters) -> list[int]:
    """The store IDs of every order ``filters`` select, oldest first (bulk outbound)."""
    o = schema.orders.c
    query = orders_query(reader, filters).with_only_columns(o.id).order_by(None)
    return list(reader.scalars(query.order_by(o.id)))


def orders_query(reader: Reader, filters: Filters) -> Select[Any]:
    """The orders ``filters`` select, newest first: the query of ``orders list``."""
    status, partner, search = filters.state, filters.partner, filters.search
    o = schema.orders.c
    query = select(schema.orders).order_by(*_newest_first(o.created_at, o.id, filters))
    if status:
        query = query.where(o.status == _status(status))
    if filters.attention is not None:
        query = query.where(o.attention == filters.attention)
    if filters.since:
        query = query.where(o.created_at >= filters.since)
    if filters.until:
        query = query.where(o.created_at < filters.until)
    if filters.order:
        query = query.where(o.id == find_order(reader, filters.order).id)
    if filters.order_type:
        query = query.where(type_condition(filters.order_type))
    if filters.needs:
        query = query.where(needs_condition(filters.needs))
    if filters.overdue:
        from edi_gateway.clocks.sla import overdue

        query = query.where(overdue(datetime.now(UTC)))
    if partner:
        query = query.where(or_(*(side == partner for side in _partner_sides())))
    if not search:
        return query
    if "\x00" in search:  # PostgreSQL refuses it in any text; no value holds one
        raise GatewayError(ErrorCode.USAGE, "the search text contains a NUL character")
    return query.where(search_condition(_dialect(reader), search))


def _number(column: Any) -> ColumnElement[Decimal]:
    """A quantity stored as exact text (``ExactDecimal``), compared as a number."""
    return cast(column, Numeric)


_STATUSES = {s.value.lower(): s.value for s in OrderStatus}


def _status(text: str) -> str:
    """An order status named in any case, as stored: compared with ``=`` it runs on the
    status index (``ILIKE`` read every order, docs/adr/0036); unknown is a USAGE error."""
    found = _STATUSES.get(text.lower())
    if found is None:
        raise GatewayError(
            ErrorCode.USAGE,
            f"unknown order status {text!r}: expected one of {', '.join(_STATUSES.values())}",
        )
    return found


def _with_requested(reader: Reader, found: Sequence[Order | Record]) -> list[Json]:
    """Listing rows with ``requested_delivery``: the requested period's end, else its start,
    else the earliest line delivery date (as the SLA clock reads it); one query per page."""
    from edi_gateway.store.schema import order_delivery, order_lines

    ids = [o.id for o in found]
    d, line = order_delivery.c, order_lines.c
    wanted: dict[int, Any] = {}
    if ids:
        earliest = (
            select(line.order_id, func.min(line.delivery_date).label("day"))
            .where(line.order_id.in_(ids))
            .group_by(line.order_id)
            .subquery()
        )
        rows = reader.execute(
            select(
                earliest.c.order_id, func.coalesce(d.end_date, d.start_date, earliest.c.day)
            ).outerjoin(order_delivery, d.order_id == earliest.c.order_id)
        )
        wanted = {order_id: day for order_id, day in rows}
    return [order_summary(o) | {"requested_delivery": _day(wanted.get(o.id))} for o in found]


def _day(value: Any) -> str | None:
    if value is None:
        return None
    return value.isoformat() if hasattr(value, "isoformat") else str(value)


def outbox_summary(row: OutboxRow | Record) -> Json:
    """One outbox row as a listing row (``document_id`` and ``number``: the document number)."""
    return {
        "id": row.id,
        "created_at": utc_text(row.created_at),
        "partner": row.partner,
        "connector": row.connector,
        "type": row.kind,
        "document_id": row.doc_number,
        "number": row.doc_number,
        "filename": row.filename,
        "state": row.state,
        "attempts": row.attempts,
        "next_attempt_at": utc_text(row.next_attempt_at),
        "last_error": row.last_error,
        "delivered_to": row.delivered_to,
        "order_id": row.order_id,
    }


_OUTBOX_ROW = list(schema.outbox.c)
"""An outbox row (its bytes are kept apart, in outbox_payloads)."""


def page_outbox(reader: Reader, filters: Filters, limit: int = 500, offset: int = 0) -> Page:
    """Outbox rows, newest first, by state, creation time, partner, order, the code of their
    last error, connector."""
    f, r = filters, schema.outbox.c
    conditions = [
        r.state == f.state if f.state else None,
        r.created_at >= f.since if f.since else None,
        r.created_at < f.until if f.until else None,
        r.partner == f.partner if f.partner else None,
        r.connector == f.connector if f.connector else None,
        r.error_code == f.code.upper() if f.code else None,
        r.order_id == find_order(reader, f.order).id if f.order else None,
    ]
    query = select(*_OUTBOX_ROW).order_by(*_newest_first(r.created_at, r.id, f))
    found, total = _page(
        reader, query.where(*(c for c in conditions if c is not None)), limit, offset
    )
    return Page([outbox_summary(row) for row in found], total, offset)


def outbox_detail(reader: Reader, outbox_id: int) -> Json:
    """One outbox row with the findings of its rules check."""
    row = reader.execute(select(*_OUTBOX_ROW).where(schema.outbox.c.id == outbox_id)).first()
    if row is None:
        raise LookupFailed(ErrorCode.NOT_FOUND, f"no outbox row #{outbox_id}")
    return outbox_summary(row) | {"findings": findings_of(reader, outbox_id=row.id)}


def _pending_cancellation(
    reader: Reader, order: Order | Record, documents: list[Json]
) -> Json | None:
    """The (oldest) cancellation waiting for the supplier's answer, or None."""
    waiting = [d for d in documents if d["type"] == "OrderCancellation" and d["state"] == "pending"]
    if not waiting:
        return None
    first = waiting[0]
    d = schema.documents.c
    since = reader.scalar(select(d.created_at).where(d.id == first["id"]))
    return {
        "id": first["id"],
        "document_id": first["document_id"],
        "number": first["document_id"],
        "message_id": first["message_id"],
        "issue_date": first["issue_date"],
        "requested_at": utc_text(since),
        "waiting_for": order.seller_partner or order.seller_name or order.seller_key,
    }


def discrepancies_of(reader: Reader, order_id: int) -> list[Record]:
    """The order's recorded discrepancies, oldest first."""
    c = schema.discrepancies.c
    return list(
        reader.execute(select(schema.discrepancies).where(c.order_id == order_id).order_by(c.id))
    )


def _discrepancies(reader: Reader, order: Order | Record, line_ids: dict[int, str]) -> list[Json]:
    return [
        {
            "document_id": found.document_id,
            "line_id": line_ids.get(found.order_line_id),
            "kind": found.kind,
            "quantity": _num(found.quantity),
            "bound": _num(found.bound),
            "detail": found.detail,
            "found_at": utc_text(found.found_at),
        }
        for found in discrepancies_of(reader, order.id)
    ]


def _shipments(reader: Reader, order: Order | Record) -> list[Json]:
    from edi_gateway.pipeline.shipments import shipments_of

    d = schema.documents.c
    numbers = dict(reader.execute(select(d.id, d.doc_number).where(d.order_id == order.id)).all())
    return [
        {
            "document_id": row.document_id,
            "despatch_advice": numbers.get(row.document_id),
            "carrier": row.carrier,
            "tracking_id": row.tracking_id,
            "tracking_url": row.tracking_url,
        }
        for row in shipments_of(reader, order.id)
    ]


def orders_created_by(message_ids: Sequence[int]) -> Select[Order]:
    """The orders that these messages (processed Order documents) created, oldest first."""
    from edi_gateway.store.tables import Message, Order

    return (
        select(Order)
        .join(Message, Message.order_id == Order.id)
        .where(
            Message.id.in_(list(message_ids)),
            Message.doc_kind == "Order",
            Message.state == "processed",
        )
        .order_by(Order.id)
    )


def resolve_order(session: Session, ref: str) -> Order:
    """The ORM object of the order :func:`find_order` finds (to change it)."""
    return get_order(session, find_order(session, ref).id)


def locked_order(session: Session, order_ref: str) -> Order:
    """The ORM object of the order :func:`find_order` finds, read after taking its lock
    (:func:`lock_orders`), to change it."""
    found = find_order(session, order_ref)
    lock_orders(session, [found.order_number])
    return get_order(session, found.id)


def lock_orders(session: Session, numbers: Iterable[str]) -> None:
    """Take, until the transaction ends, the locks processing takes on these order (and
    document) numbers (``store.leases.SAME_NUMBER``) before anything is read: one transaction
    at a time issues a document on an order, changes it for an operator or correlates a
    document with it, and each reads (ledger, numbers) what the one before committed. Without
    them, three despatches of "everything" sent at once on PostgreSQL were all issued. SQLite
    has one writer: a no-op there."""
    from edi_gateway.store.leases import SAME_NUMBER, xact_locks

    xact_locks(session.connection(), SAME_NUMBER, numbers)


def find_order(reader: Reader, ref: str) -> Record:
    """Find an order by store ID, ``BUYER:ORDER_ID`` (partner id or party key) or bare order ID.

    A bare number can be both a store ID and another order's number (order numbers are often
    numeric): then it is ambiguous and the matching orders are listed.
    """
    o = schema.orders
    matches: dict[int, Record] = {}
    for cut in range(len(ref)):
        if ref[cut] != ":":
            continue
        buyer, number = ref[:cut], ref[cut + 1 :]
        for order in reader.execute(
            select(o).where(
                o.c.order_number == number,
                or_(o.c.buyer_partner == buyer, o.c.buyer_key == buyer),
            )
        ):
            matches[order.id] = order
    if not matches:
        for order in reader.execute(select(o).where(o.c.order_number == ref)):
            matches[order.id] = order
        if ref.isdigit() and int(ref) <= MAX_STORE_ID:
            by_id = reader.execute(select(o).where(o.c.id == int(ref))).first()
            if by_id is not None:
                matches[by_id.id] = by_id
    if len(matches) == 1:
        return next(iter(matches.values()))
    if not matches:
        raise LookupFailed(ErrorCode.NOT_FOUND, f"no order matches {ref!r}")
    listed = ", ".join(f"{o.id} ({order_summary(o)['ref']})" for o in matches.values())
    raise LookupFailed(
        ErrorCode.AMBIGUOUS,
        f"{ref!r} matches {len(matches)} orders (store IDs, order numbers): {listed}; "
        "use BUYER:ORDER_ID",
    )


def get_order(session: Session, order_id: int) -> Order:
    """The order with this store ID, or LookupFailed(NOT_FOUND)."""
    from edi_gateway.store.tables import Order

    order = session.get(Order, order_id) if 0 < order_id <= MAX_STORE_ID else None
    if order is None:
        raise LookupFailed(ErrorCode.NOT_FOUND, f"there is no order with store ID {order_id}")
    return order


def order_lines(session: Session, order: Order) -> list[OrderLine]:
    """The order's lines, in the order's own order (ORM objects, to change them)."""
    from edi_gateway.store import prefetch
    from edi_gateway.store.tables import OrderLine

    found = prefetch.of(session)
    if found is not None and order.id in found.lines:
        return list(found.lines[order.id])
    query = select(OrderLine).where(OrderLine.order_id == order.id)
    return list(session.scalars(query.order_by(OrderLine.position)))


def deleted_lines(reader: Reader, order_id: int) -> set[int]:
    """The order lines that the latest Order Change acting on them deleted (UNCL 1229 ``2``;
    ``4`` is no action). See docs/adr/0025-advanced-ordering.md."""
    from edi_gateway.store import prefetch

    found = prefetch.of(reader)
    if found is not None and order_id in found.deleted:
        return set(found.deleted[order_id])
    return deleted_lines_of(reader, [order_id])[order_id]


def deleted_lines_of(reader: Reader, order_ids: Sequence[int]) -> dict[int, set[int]]:
    """:func:`deleted_lines` of each of ``order_ids``, in one query."""
    d, dl = schema.documents.c, schema.document_lines.c
    latest: dict[int, dict[int, str | None]] = {order_id: {} for order_id in order_ids}
    for order_id, line_id, status in reader.execute(
        select(d.order_id, dl.order_line_id, dl.status_code)
        .join(schema.documents, d.id == dl.document_id)
        .where(
            d.order_id.in_(list(order_ids)),
            d.kind == _CHANGE,
            d.state == "attached",
            dl.order_line_id.is_not(None),
            dl.status_code != "4",
        )
        .order_by(d.id, dl.id)
    ):
        if order_id is not None and line_id is not None:
            latest[order_id][line_id] = status
    return {
        order_id: {line_id for line_id, status in lines.items() if status == "2"}
        for order_id, lines in latest.items()
    }


_CHANGE = "OrderChange"


def order_payload(session: Session, order_id: int) -> bytes | None:
    """The bytes of the Order document that created the order, exactly as received."""
    from edi_gateway.store import prefetch

    found = prefetch.of(session)
    if found is not None and order_id in found.lines:  # prefetched, with or without bytes
        return found.payloads.get(order_id)
    return order_payloads(session, [order_id]).get(order_id)


def issued_counts(session: Session, order_ids: Sequence[int]) -> dict[int, dict[str, int]]:
    """order ID -> document kind -> how many documents of it the gateway issued on the order
    (what ``outbound.issuing.next_number`` counts), in one query."""
    d = schema.documents.c
    found: dict[int, dict[str, int]] = {order_id: {} for order_id in order_ids}
    query = (
        select(d.order_id, d.kind, func.count())
        .where(d.order_id.in_(order_ids), d.direction == "out")
        .group_by(d.order_id, d.kind)
    )
    for order_id, kind, count in session.execute(query):
        found[order_id][kind] = count
    return found


def order_payloads(session: Reader, order_ids: Sequence[int]) -> dict[int, bytes]:
    """order ID -> the bytes of the Order document that created it (its first), in one query
    (Core: a bundle flush reads them without the ORM)."""
    d, m, p = schema.documents.c, schema.messages.c, schema.message_payloads.c
    joined = schema.documents.join(schema.messages, d.message_id == m.id).outerjoin(
        schema.message_payloads, p.message_id == m.id
    )
    found: dict[int, bytes] = {}
    for order_id, payload in session.execute(
        select(d.order_id, p.payload)
        .select_from(joined)
        .where(d.order_id.in_(order_ids), d.kind == "Order")
        .order_by(d.id)
    ):
        if order_id is not None:
            found.setdefault(order_id, payload)
    return found


def order_detail(reader: Reader, order: Order | Record) -> Json:
    """An order with its lines and quantities, linked documents and history."""
    from edi_gateway.pipeline.item_ids import unnamed
    from edi_gateway.pipeline.shipments import backorders_of, open_quantity

    out = order_summary(order)
    ol = schema.order_lines
    lines = list(
        reader.execute(select(ol).where(ol.c.order_id == order.id).order_by(ol.c.position))
    )
    deleted = deleted_lines(reader, order.id)
    backordered = backorders_of(reader, order.id, lines)
    out["response_code"] = order.response_code
    out["lines"] = [
        {
            "line_id": line.line_id,
            "deleted": line.id in deleted,
            "item": line.item_name,
            "seller_item_id": line.seller_item_id,
            "buyer_item_id": line.buyer_item_id,
            "unit": line.unit,
            "price": _money(line.price),
            "status_code": line.status_code,
            "ordered": _num(line.qty_ordered),
            "confirmed": _num(line.qty_confirmed),
            "despatched": _num(line.qty_despatched),
            "received": _num(line.qty_received),
            "invoiced": _num(line.qty_invoiced),
            "credited": _num(line.qty_credited),
            "delivery_place": line.delivery_place,
            "backordered": _num(backordered.get(line.id)),
            "open": _num(open_quantity(line)),
            "unbilled": _num(
                max(EXACT.subtract(line.qty_despatched, line.qty_invoiced), Decimal(0))
            ),
        }
        for line in lines
    ]
    out["unnamed"] = unnamed(lines)  # no seller's item ID nor GTIN: a despatch must give one
    out["discrepancies"] = _discrepancies(reader, order, {ln.id: ln.line_id for ln in lines})
    out["shipments"] = _shipments(reader, order)
    d, dl = schema.documents, schema.document_lines.c
    docs = list(reader.execute(select(d).where(d.c.order_id == order.id).order_by(d.c.id)))
    out["documents"] = [
        {
            "id": doc.id,
            "type": doc.kind,
            "document_id": doc.doc_number,
            "number": doc.doc_number,
            "direction": doc.direction,
            "code": doc.code,
            "issue_date": doc.issue_date.isoformat() if doc.issue_date else None,
            "message_id": doc.message_id,
            "amount": _money(doc.amount),
            "lines": reader.scalar(select(func.count()).where(dl.document_id == doc.id)),
            "state": doc.state,
        }
        for doc in docs
    ]
    out["pending_cancellation"] = _pending_cancellation(reader, order, out["documents"])
    out |= order_data_detail(reader, order)
    out["history"] = _history(reader, schema.history.c.order_id == order.id)
    return out
