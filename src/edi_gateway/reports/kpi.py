"""KPIs per partner over a time window (``edi-gateway report kpi``; docs/adr/0032).

What the order-process norm asks of a trading platform, computed from the store only (nothing
is counted twice, nothing estimated):

- **documents in**: messages received from the partner in the window, by document type
  (``not_interpreted`` when no type could be read); duplicates are counted apart.
- **documents out**: outbox rows delivered to the partner in the window (by ``sent_at``), by type.
- **response time**: for each order received in the window (as buyer or as supplier of it), from
  the order's arrival to the first Order Response on it (ours or the supplier's); median and p90
  in hours, and how many orders still have none.
- **on-time despatch**: orders whose requested delivery (the earliest date a line asks for) falls
  in the window: despatched on time when the first Despatch Advice on the order is dated (issue
  date, else recorded) on or before it; an order past its date with no despatch counts as late.
- **first time right**: messages received from the partner that were accepted the first time:
  not failed, not dismissed and never redriven, of all its non-duplicate messages; and outbox
  rows delivered at the first attempt, of those delivered or given up on.
- **failures by code**: the partner's messages that failed (or were dismissed after failing).

Times are UTC; ``since`` is inclusive, ``until`` exclusive.
"""

from __future__ import annotations

import statistics
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.engine import Connection

from edi_gateway.store.schema import documents, history, messages, order_lines, orders, outbox

RESPONSES = ("OrderResponse", "OrderResponseSimple")
DESPATCHES = ("DespatchAdvice",)
UNREADABLE = "not_interpreted"
COUNTED = ("attached", "relayed", "late")
"""Documents that stand on an order (ours, theirs, relayed), and a supplier's response that came
after a cancellation ended the order (``pipeline/cancellations.LATE``): it did answer."""


@dataclass
class PartnerKpi:
    """The figures of one partner."""

    partner: str
    documents_in: Counter[str] = field(default_factory=Counter)
    duplicates_in: int = 0
    documents_out: Counter[str] = field(default_factory=Counter)
    response_hours: list[float] = field(default_factory=list)
    unanswered: int = 0
    despatch_on_time: int = 0
    despatch_late: int = 0
    messages_total: int = 0
    messages_right_first_time: int = 0
    deliveries_total: int = 0
    deliveries_first_attempt: int = 0
    failures: Counter[str] = field(default_factory=Counter)

    def as_json(self) -> dict[str, Any]:
        """The partner's figures as plain data (``--json``, the console)."""
        return {
            "partner": self.partner,
            "documents_in": dict(sorted(self.documents_in.items())),
            "duplicates_in": self.duplicates_in,
            "documents_out": dict(sorted(self.documents_out.items())),
            "response_hours": {
                "orders": len(self.response_hours) + self.unanswered,
                "answered": len(self.response_hours),
                "median": _quantile(self.response_hours, 0.5),
                "p90": _quantile(self.response_hours, 0.9),
            },
            "on_time_despatch": {
                "due": self.despatch_on_time + self.despatch_late,
                "on_time": self.despatch_on_time,
                "rate": _rate(self.despatch_on_time, self.despatch_on_time + self.despatch_late),
            },
            "first_time_right": {
                "messages": self.messages_total,
                "right": self.messages_right_first_time,
                "rate": _rate(self.messages_right_first_time, self.messages_total),
                "deliveries": self.deliveries_total,
                "first_attempt": self.deliveries_first_attempt,
                "delivery_rate": _rate(self.deliveries_first_attempt, self.deliveries_total),
            },
            "failures": dict(self.failures.most_common()),
        }


def _rate(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def _quantile(values: list[float], q: float) -> float | None:
    """The q-quantile by linear interpolation between closest ranks (None when no value)."""
    if not values:
        return None
    ordered = sorted(values)
    if len(ordered) == 1:
        return round(ordered[0], 2)
    cuts = statistics.quantiles(ordered, n=100, method="inclusive")
    return round(cuts[round(q * 100) - 1], 2)


DEFAULT_DAYS = 30


def window(since: datetime | None, until: datetime | None) -> tuple[datetime, datetime]:
    """The report's window: ``until`` default now, ``since`` default 30 days before it;
    ``since`` not before ``until`` is USAGE."""
    from edi_gateway.errors import ErrorCode, GatewayError

    until = until or datetime.now(UTC)
    since = since or until - timedelta(days=DEFAULT_DAYS)
    if since >= until:
        raise GatewayError(ErrorCode.USAGE, "since must be before until")
    return since, until


def kpi_report(
    conn: Connection, since: datetime, until: datetime, partner: str | None = None
) -> list[dict[str, Any]]:
    """Per partner (or only ``partner``), the KPIs of ``[since, until)``, sorted by partner."""
    found: dict[str, PartnerKpi] = {}

    def of(name: str | None) -> PartnerKpi | None:
        if name is None or (partner is not None and name != partner):
            return None
        kpi = found.get(name)
        if kpi is None:  # not setdefault: a PartnerKpi per call cost half the report's time
            kpi = found[name] = PartnerKpi(name)
        return kpi

    _messages_in(conn, since, until, of)
    _deliveries(conn, since, until, of)
    _responses(conn, since, until, of)
    _despatches(conn, since, until, of)
    return [found[name].as_json() for name in sorted(found)]


Of = Any  # Callable[[str | None], PartnerKpi | None]


def _messages_in(conn: Connection, since: datetime, until: datetime, of: Of) -> None:
    m = messages.c
    window = (m.received_at >= since) & (m.received_at < until)
    original = messages.alias("original")  # a duplicate is its original's partner's
    sender = func.coalesce(m.partner, original.c.partner)
    rows = conn.execute(
        select(m.id, sender, m.doc_kind, m.state, m.error_code)
        .outerjoin(original, original.c.id == m.duplicate_of)
        .where(window)
    ).all()
    ids = [row[0] for row in rows]
    redriven: set[int] = set()
    for start in range(0, len(ids), 500):  # the window's messages' history, by message id
        redriven.update(
            conn.scalars(
                select(history.c.message_id).where(
                    history.c.message_id.in_(ids[start : start + 500]),
                    history.c.event == "message.redriven",
                )
            )
        )
    for mid, name, kind, state, code in rows:
        kpi = of(name or "unknown")
        if kpi is None:
            continue
        if state == "duplicate":
            kpi.duplicates_in += 1
            continue
        kpi.documents_in[kind or UNREADABLE] += 1
        kpi.messages_total += 1
        if code and state in ("failed", "dismissed"):
            kpi.failures[code] += 1
        elif mid not in redriven and state not in ("failed", "dismissed"):
            kpi.messages_right_first_time += 1


def _deliveries(conn: Connection, since: datetime, until: datetime, of: Of) -> None:
    o = outbox.c
    sent = (o.state == "sent") & (o.sent_at >= since) & (o.sent_at < until)
    for name, kind, attempts in conn.execute(select(o.partner, o.kind, o.attempts).where(sent)):
        kpi = of(name)
        if kpi is not None:
            kpi.documents_out[kind] += 1
            kpi.deliveries_total += 1
            kpi.deliveries_first_attempt += attempts == 1
    gave_up = (o.state == "failed") & (o.created_at >= since) & (o.created_at < until)
    for (name,) in conn.execute(select(o.partner).where(gave_up)):
        kpi = of(name)
        if kpi is not None:
            kpi.deliveries_total += 1


def _responses(conn: Connection, since: datetime, until: datetime, of: Of) -> None:
    o, d = orders.c, documents.c
    first = (
        select(d.order_id, func.min(d.created_at).label("answered"))
        .where(d.kind.in_(RESPONSES), d.state.in_(COUNTED))
        .group_by(d.order_id)
        .subquery()
    )
    rows = conn.execute(
        select(o.buyer_partner, o.seller_partner, o.created_at, first.c.answered)
        .outerjoin(first, first.c.order_id == o.id)
        .where(o.created_at >= since, o.created_at < until)
    )
    for buyer, seller, received, answered in rows:
        for name in {buyer, seller} - {None}:
            kpi = of(name)
            if kpi is None:
                continue
            if answered is None:
                kpi.unanswered += 1
            else:
                kpi.response_hours.append(max((answered - received).total_seconds(), 0) / 3600)


def _despatches(conn: Connection, since: datetime, until: datetime, of: Of) -> None:
    o, d, line = orders.c, documents.c, order_lines.c
    # an order due in the period has a line due in it: those orders, found on the
    # delivery_date index, are the only ones whose earliest date is read (docs/adr/0036)
    in_period = select(line.order_id).where(
        line.delivery_date >= since.date(), line.delivery_date < until.date()
    )
    due = (
        select(line.order_id, func.min(line.delivery_date).label("due"))
        .where(line.delivery_date.is_not(None), line.order_id.in_(in_period))
        .group_by(line.order_id)
        .subquery()
    )
    first = (
        select(
            d.order_id,
            func.min(func.coalesce(d.issue_date, func.date(d.created_at))).label("despatched"),
        )
        .where(d.kind.in_(DESPATCHES), d.state.in_(COUNTED))
        .group_by(d.order_id)
        .subquery()
    )
    rows = conn.execute(
        select(o.buyer_partner, o.seller_partner, due.c.due, first.c.despatched)
        .join(due, due.c.order_id == o.id)
        .outerjoin(first, first.c.order_id == o.id)
        .where(due.c.due >= since.date(), due.c.due < until.date(), o.cancelled.is_(False))
    )
    today = datetime.now(since.tzinfo).date()
    for buyer, seller, when, despatched in rows:
        went = _as_date(despatched)
        if went is None and when >= today:
            continue  # not due yet: neither on time nor late
        on_time = went is not None and went <= when
        for name in {buyer, seller} - {None}:
            kpi = of(name)
            if kpi is not None:
                kpi.despatch_on_time += on_time
                kpi.despatch_late += not on_time


def _as_date(value: object) -> date | None:
    """A date from a DATE column or SQLite's ``date()`` text."""
    if value is None or isinstance(value, date):
        return value
    return date.fromisoformat(str(value))
