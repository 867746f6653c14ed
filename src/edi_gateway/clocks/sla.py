"""SLA timers on orders: response due, despatch due, auto-approval (docs/adr/0034-sla-timers.md).

The daemon calls :func:`look` every ``LOOK_EVERY`` (and ``run --once`` once). A look:

1. gives every order that has none its due times, from its buyer partner's ``sla:`` terms (by
   order type) and the order: response due = arrival + ``response_hours`` by urgency
   (``ShippingPriorityLevelCode`` 1 = very urgent, 2 = urgent, else normal); despatch due = the
   end (UTC) of the requested delivery date (the requested period's end, else its start, else
   the earliest line delivery date), when the terms ask for it;
2. fires each timer once: an order still unanswered past its response due time, or not
   despatched past its despatch due time, gets ``sla.response_overdue`` /
   ``sla.despatch_overdue`` in its history (and an ``sla.overdue`` alert);
3. accepts, for partners with ``auto_approve_days``, orders still unanswered after that many
   days: an Order Response AP from the gateway (``sla.auto_approved`` in the history).

"Overdue" in ``orders list --overdue``, ``/metrics`` and the console is the same condition,
read from the due columns (:func:`overdue`), so it never waits for a timer to fire.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import cache
from typing import TYPE_CHECKING, Any

from sqlalchemy import ColumnElement, and_, func, insert, or_, select, update

from edi_gateway.alerts.events import record as record_alert
from edi_gateway.alerts.events import subscribed
from edi_gateway.store.bulk import update_many
from edi_gateway.store.schema import history, order_delivery, order_lines, orders

if TYPE_CHECKING:
    from sqlalchemy import Connection, Insert, Select

    from edi_gateway.config import Settings
    from edi_gateway.config.sla import SlaSettings
    from edi_gateway.store.db import Store

log = logging.getLogger(__name__)
LOOK_EVERY = timedelta(minutes=1)
BATCH = 1000
URGENCY = {"1": "very_urgent", "2": "urgent"}
"""UNCL4219 transport service priority: 1 Express, 2 High speed; anything else is normal."""
NOT_DESPATCHED = ("Received", "Acknowledged", "Accepted", "Accepted with changes")
"""The statuses of an order nothing has been despatched for (and that is still wanted)."""
SYSTEM = "system (SLA)"


@cache
def _default_terms() -> SlaSettings:
    """The terms of an order without a partner, made when first needed (a settings model
    builds its validator on first use: ~5 ms of every command importing this module; and
    ``orders list --overdue`` reads only the predicates below, without pydantic)."""
    from edi_gateway.config.sla import SlaSettings

    return SlaSettings()


def response_overdue(at: datetime) -> ColumnElement[bool]:
    """Orders unanswered past their response due time."""
    o = orders.c
    return and_(
        o.response_due_at < at,
        o.response_code.is_(None),
        o.cancelled.is_(False),
        o.status.not_in(("Rejected", "Cancelled")),
    )


def despatch_overdue(at: datetime) -> ColumnElement[bool]:
    """Orders not despatched past their despatch due time."""
    o = orders.c
    return and_(o.despatch_due_at < at, o.status.in_(NOT_DESPATCHED), o.cancelled.is_(False))


def overdue(at: datetime) -> ColumnElement[bool]:
    """Orders with a response or a despatch overdue at ``at``."""
    return or_(response_overdue(at), despatch_overdue(at))


@dataclass(frozen=True, slots=True)
class Tick:
    """What one look did and found."""

    scheduled: int = 0
    fired: int = 0
    auto_approved: int = 0
    response_overdue: int = 0
    despatch_overdue: int = 0


def look(store: Store, settings: Settings, at: datetime, *, counts: bool = True) -> Tick:
    """Schedule new orders, fire overdue timers once, auto-approve; the overdue counts (left
    0 without ``counts``: a daemon without Prometheus metrics shows them nowhere)."""
    with store.connect() as conn:
        scheduled = _schedule(conn, settings)
    with store.connect() as conn:
        fired = _fire(conn, settings, at)
    approved = _auto_approve(store, settings, at)
    if not counts:
        return Tick(scheduled, fired, approved)
    with store.connect() as conn:
        late = conn.execute(
            select(
                func.count().filter(response_overdue(at)),
                func.count().filter(despatch_overdue(at)),
            ).where(overdue(at))
        ).one()
    return Tick(scheduled, fired, approved, int(late[0] or 0), int(late[1] or 0))


def _terms(settings: Settings, partner: str | None) -> SlaSettings:
    found = settings.partner(partner) if partner else None
    return found.sla if found is not None else _default_terms()


def _end_of(day: date) -> datetime:
    """The end of ``day``: the next midnight, or, for 9999-12-31 (a valid xs:date, and the
    last day Python has), its last microsecond: a next day would raise OverflowError for the
    whole look's batch, at every look, and no order's timer would run."""
    if day >= date.max:
        return datetime.max.replace(tzinfo=UTC)
    return datetime.combine(day + timedelta(days=1), time(0), tzinfo=UTC)


def _schedule(conn: Connection, settings: Settings) -> int:
    """Due times for orders that have none yet (at most ``BATCH`` per look)."""
    o, d, line = orders.c, order_delivery.c, order_lines.c
    earliest = (
        select(func.min(line.delivery_date))
        .where(line.order_id == o.id)
        .correlate(orders)
        .scalar_subquery()
    )
    rows = conn.execute(
        select(
            o.id,
            o.created_at,
            o.buyer_partner,
            o.order_type,
            d.priority,
            func.coalesce(d.end_date, d.start_date, earliest),
        )
        .outerjoin(order_delivery, d.order_id == o.id)
        .where(o.response_due_at.is_(None))
        .order_by(o.id)
        .limit(BATCH)
        .with_for_update(skip_locked=True, of=orders)  # being processed: the next look
    ).all()
    due = []
    # the orders of a look share a few partners, types, urgencies and dates: each worked out once
    known: dict[tuple[Any, ...], tuple[timedelta, datetime | None]] = {}
    for order_id, created, partner, order_type, priority, wanted in rows:
        key = (partner, order_type, priority, wanted)
        times = known.get(key)
        if times is None:
            times = known[key] = _due_after(settings, partner, order_type, priority, wanted)
        response, despatch = times
        due.append(
            {"id": order_id, "response_due_at": created + response, "despatch_due_at": despatch}
        )
    # one statement for the batch, through the driver's executemany (store/bulk.py): a look
    # after 1,000 new orders spent more in SQLAlchemy's per-row executemany than in the store
    update_many(conn, orders, due)
    return len(rows)


def _due_after(
    settings: Settings, partner: str | None, order_type: str | None, priority: Any, wanted: Any
) -> tuple[timedelta, datetime | None]:
    """An order's time to respond (from its arrival) and its despatch due time."""
    terms = _terms(settings, partner).terms(order_type)
    urgency = URGENCY.get((priority or "").strip(), "normal")
    hours = terms.response_hours.of(urgency)
    despatch = _end_of(_as_date(wanted)) if terms.despatch and wanted is not None else None
    return timedelta(hours=hours), despatch


def _as_date(value: Any) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value))


def _fire(conn: Connection, settings: Settings, at: datetime) -> int:
    """Record each timer that has run out, once."""
    o = orders.c
    alert = "sla.overdue" in subscribed(settings)
    fired = 0
    for which, condition, column, due in (
        ("response", response_overdue(at), o.response_overdue_at, o.response_due_at),
        ("despatch", despatch_overdue(at), o.despatch_overdue_at, o.despatch_due_at),
    ):
        rows = conn.execute(
            select(o.id, o.order_number, o.buyer_partner, due)
            .where(condition, column.is_(None))
            .order_by(due, o.id)  # in the due index's order: no read of every order (0036)
            .limit(BATCH)
            .with_for_update(skip_locked=True, of=orders)  # two gateways fire it once
        ).all()
        for order_id, number, partner, when in rows:
            late = f"{when:%Y-%m-%d %H:%M} UTC"
            what = "no response" if which == "response" else "nothing despatched"
            text = f"order {number}: {what} by {late}"
            conn.execute(update(orders).where(o.id == order_id).values({column.key: at}))
            conn.execute(
                insert(history).values(
                    at=at,
                    order_id=order_id,
                    event=f"sla.{which}_overdue",
                    detail=f"{what} by {late} (the {which} was due then)",
                    actor=SYSTEM,
                )
            )
            if alert:
                record_alert(conn, "sla.overdue", text, at, partner=partner, subject=f"{which}")
            fired += 1
    return fired


def _auto_approve(store: Store, settings: Settings, at: datetime) -> int:
    """Accept, for partners with ``auto_approve_days``, orders unanswered that long."""
    approved = 0
    for partner in settings.partners:
        days = partner.sla.auto_approve_days
        if days is None:
            continue
        with store.connect() as conn:
            due = conn.execute(_unanswered(partner.id, at - timedelta(days=days))).all()
        for order_id, number in due:
            approved += _approve(store, settings, (order_id, number), partner.id, days, at=at)
    return approved


def _unanswered(partner: str, before: datetime) -> Select[Any]:
    """The buyer's orders made before ``before`` that nobody has answered yet (at most
    ``BATCH``): no response, not cancelled or rejected, no auto-approval refused before."""
    o = orders.c
    refused = (
        select(history.c.id)
        .where(history.c.order_id == o.id, history.c.event == "sla.auto_approval_refused")
        .exists()
    )
    return (
        select(o.id, o.order_number)
        .where(
            ~refused,  # refused once (a deleted line, a rule): an operator decides
            o.buyer_partner == partner,
            o.created_at < before,
            o.response_code.is_(None),
            o.cancelled.is_(False),
            o.status.not_in(("Rejected", "Cancelled")),
        )
        .order_by(o.id)
        .limit(BATCH)
    )


def _approve(
    store: Store,
    settings: Settings,
    picked: tuple[int, str],
    partner: str,
    days: int,
    *,
    at: datetime,
) -> int:
    """Accept the order (1), unless it was answered since it was picked (0): an operator's
    response, or another gateway's auto-approval, in the meantime. The order's number is
    locked and the pick's condition read again in the response's own transaction, so it is
    sent once; a refusal is recorded in that same transaction (a second gateway waiting for
    the lock then finds it refused, and does not try again)."""
    from edi_gateway.errors import GatewayError
    from edi_gateway.outbound.respond import Decision, issue
    from edi_gateway.store.queries import lock_orders
    from edi_gateway.store.tables import Order

    order_id, number = picked
    actor = f"system (auto-approval after {days} days without feedback)"
    with store.session() as session:
        lock_orders(session, [number])  # as every command that issues on an order
        still = _unanswered(partner, at - timedelta(days=days)).where(orders.c.id == order_id)
        if session.execute(still).first() is None:
            return 0  # answered, cancelled, refused or gone meanwhile: nothing to approve
        order = session.get_one(Order, order_id)
        try:
            with session.begin_nested():  # a refusal leaves nothing of the response
                issue(session, settings, order, Decision("AP"), actor=actor)
        except GatewayError as exc:
            log.warning("order %s: auto-approval refused: %s", number, exc)
            detail = f"auto-approval after {days} days refused: {exc}"
            session.execute(_event_row(order_id, "sla.auto_approval_refused", detail, at))
            return 0
        detail = f"no feedback in {days} days: accepted (Order Response AP)"
        session.execute(_event_row(order_id, "sla.auto_approved", detail, at))
    return 1


def _event_row(order_id: int, event: str, detail: str, at: datetime) -> Insert:
    return insert(history).values(
        at=at, order_id=order_id, event=event, detail=detail[:2000], actor=SYSTEM
    )
