"""SLA timers (issue 11, point 2): due times by urgency and order type, each timer fired once
into the history, `orders list --overdue`, auto-approval after N days; on SQLite and
PostgreSQL, with the times set in the store so each outcome is known in advance."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import insert, select, update

from edi_gateway.app import Gateway
from edi_gateway.clocks import sla
from edi_gateway.clocks.sla import look
from edi_gateway.outbound.respond import Decision, respond
from edi_gateway.store.db import Store
from edi_gateway.store.queries import Filters, page_orders
from edi_gateway.store.schema import alert_events, history, order_delivery, orders
from tests import factory as f
from tests.unit.support import detail, make_settings, receive


def _gateway(store: Store, tmp_path: Path, **sla: Any) -> Gateway:
    (tmp_path / "out").mkdir(exist_ok=True)
    return Gateway(make_settings(tmp_path, buyer={"sla": sla} if sla else None), store)


def _order(
    gateway: Gateway,
    number: str,
    *,
    age: timedelta,
    priority: str | None = None,
    deliver_by: date | None = None,
    order_type: str | None = None,
) -> None:
    receive(gateway, f.order(number))
    with gateway.store.connect() as conn:
        order_id = conn.scalar(select(orders.c.id).where(orders.c.order_number == number))
        conn.execute(
            update(orders)
            .where(orders.c.id == order_id)
            .values(created_at=datetime.now(UTC) - age, order_type=order_type)
        )
        if priority or deliver_by:
            conn.execute(order_delivery.delete().where(order_delivery.c.order_id == order_id))
            conn.execute(
                insert(order_delivery).values(
                    order_id=order_id, priority=priority, end_date=deliver_by
                )
            )


def _overdue(gateway: Gateway) -> list[str]:
    with gateway.store.session() as session:
        rows = page_orders(session, Filters(overdue=True)).rows
    return sorted(r["order_number"] for r in rows)


def _events(gateway: Gateway, event: str) -> list[str]:
    with gateway.store.connect() as conn:
        rows = conn.execute(
            select(orders.c.order_number)
            .join(history, history.c.order_id == orders.c.id)
            .where(history.c.event == event)
        )
        return sorted(r[0] for r in rows)


def test_due_times_follow_urgency_type_and_requested_date(store: Store, tmp_path: Path) -> None:
    gateway = _gateway(store, tmp_path, by_type={"blanket": {"response_hours": {"normal": 48}}})
    yesterday = datetime.now(UTC).date() - timedelta(days=1)
    _order(gateway, "NORMAL-LATE", age=timedelta(hours=25))
    _order(gateway, "NORMAL-OK", age=timedelta(hours=23))
    _order(gateway, "EXPRESS-LATE", age=timedelta(hours=3), priority="1")  # 2 h
    _order(gateway, "URGENT-OK", age=timedelta(hours=11), priority="2")  # 12 h
    _order(gateway, "BLANKET-OK", age=timedelta(hours=30), order_type="221")  # 48 h
    _order(gateway, "DESPATCH-LATE", age=timedelta(hours=1), deliver_by=yesterday)
    respond(gateway.store, gateway.settings, "DESPATCH-LATE", Decision("AP"), actor="ops")
    assert _overdue(gateway) == []  # nothing is due before the clock has looked

    now = datetime.now(UTC)
    first = look(gateway.store, gateway.settings, now)
    assert first.scheduled == 6 and first.fired == 3
    assert (first.response_overdue, first.despatch_overdue) == (2, 1)
    assert _overdue(gateway) == ["DESPATCH-LATE", "EXPRESS-LATE", "NORMAL-LATE"]
    assert _events(gateway, "sla.response_overdue") == ["EXPRESS-LATE", "NORMAL-LATE"]
    assert _events(gateway, "sla.despatch_overdue") == ["DESPATCH-LATE"]
    order = detail(gateway, "EXPRESS-LATE")
    [fired] = [h for h in order["history"] if h["event"] == "sla.response_overdue"]
    assert fired["actor"] == "system (SLA)" and "no response by" in fired["detail"]

    again = look(gateway.store, gateway.settings, now + timedelta(minutes=1))
    assert (again.scheduled, again.fired) == (0, 0)  # each timer fires once
    assert (again.response_overdue, again.despatch_overdue) == (2, 1)
    uncounted = look(gateway.store, gateway.settings, now + timedelta(minutes=2), counts=False)
    assert uncounted == sla.Tick()  # nothing new, and no counts asked for (no /metrics)
    # Answered late: no longer overdue; the history keeps that it was.
    respond(gateway.store, gateway.settings, "NORMAL-LATE", Decision("AB"), actor="ops")
    assert _overdue(gateway) == ["DESPATCH-LATE", "EXPRESS-LATE"]
    assert _events(gateway, "sla.response_overdue") == ["EXPRESS-LATE", "NORMAL-LATE"]
    # An hour on, the 23 h normal and the 11 h urgent orders run out too, once each.
    later = look(gateway.store, gateway.settings, now + timedelta(hours=1, minutes=1))
    assert later.fired == 2
    assert _events(gateway, "sla.response_overdue") == [
        "EXPRESS-LATE",
        "NORMAL-LATE",
        "NORMAL-OK",
        "URGENT-OK",
    ]


def test_auto_approval_after_days_without_feedback(store: Store, tmp_path: Path) -> None:
    gateway = _gateway(store, tmp_path, auto_approve_days=14)
    _order(gateway, "OLD", age=timedelta(days=15))
    _order(gateway, "YOUNG", age=timedelta(days=13))
    tick = look(gateway.store, gateway.settings, datetime.now(UTC))
    assert tick.auto_approved == 1
    old, young = detail(gateway, "OLD"), detail(gateway, "YOUNG")
    assert old["status"] == "Accepted" and young["status"] == "Received"
    events = [h for h in old["history"] if h["event"] == "sla.auto_approved"]
    assert len(events) == 1 and "14 days" in events[0]["detail"]
    assert any(d["direction"] == "out" and d["type"] == "OrderResponse" for d in old["documents"])
    assert look(gateway.store, gateway.settings, datetime.now(UTC)).auto_approved == 0


def _responses(gateway: Gateway, number: str) -> list[str]:
    """The codes of the Order Responses the gateway sent for order ``number``."""
    documents = detail(gateway, number)["documents"]
    return [
        d["code"] for d in documents if d["direction"] == "out" and d["type"] == "OrderResponse"
    ]


def test_an_order_answered_after_it_was_picked_is_not_approved(
    store: Store, tmp_path: Path
) -> None:
    """The operator rejects the order between the look that picked it and its approval: the
    approval reads the locked order again and sends nothing."""
    gateway = _gateway(store, tmp_path, auto_approve_days=14)
    _order(gateway, "OLD", age=timedelta(days=15))
    at = datetime.now(UTC)
    with gateway.store.connect() as conn:
        [picked] = conn.execute(sla._unanswered("buyer", at - timedelta(days=14))).all()
    respond(gateway.store, gateway.settings, "OLD", Decision("RE", "no stock"), actor="ops")
    assert (
        sla._approve(gateway.store, gateway.settings, (picked[0], picked[1]), "buyer", 14, at=at)
        == 0
    )
    assert _responses(gateway, "OLD") == ["RE"]
    assert detail(gateway, "OLD")["status"] == "Rejected"
    assert _events(gateway, "sla.auto_approved") == []


def test_two_gateways_looking_at_once_approve_each_order_once(store: Store, tmp_path: Path) -> None:
    """Every gateway on a store keeps the SLA clock: two looking at the same moment send one
    Order Response per order between them."""
    gateway = _gateway(store, tmp_path, auto_approve_days=14)
    numbers = [f"OLD-{n}" for n in range(6)]
    for number in numbers:
        _order(gateway, number, age=timedelta(days=15))
    at, start = datetime.now(UTC), threading.Barrier(2)

    def one_gateway(_: int) -> int:
        start.wait()
        return look(gateway.store, gateway.settings, at).auto_approved

    with ThreadPoolExecutor(2) as pool:
        approved = list(pool.map(one_gateway, range(2)))
    assert sum(approved) == 6
    assert {number: _responses(gateway, number) for number in numbers} == {
        number: ["AP"] for number in numbers
    }
    assert _events(gateway, "sla.auto_approved") == numbers


def test_off_by_default_and_alerts_when_subscribed(store: Store, tmp_path: Path) -> None:
    gateway = _gateway(store, tmp_path)
    _order(gateway, "OLD", age=timedelta(days=20))
    tick = look(gateway.store, gateway.settings, datetime.now(UTC))
    assert tick.auto_approved == 0 and detail(gateway, "OLD")["status"] == "Received"
    with gateway.store.connect() as conn:  # nobody listens: no alert event
        assert conn.scalar(select(alert_events.c.id).limit(1)) is None

    settings = gateway.settings.model_copy(
        update={
            "alerts": gateway.settings.alerts.model_validate(
                {
                    "webhooks": [
                        {
                            "name": "hook",
                            "url": "http://127.0.0.1:9/",
                            "secret": {"env": "X"},
                            "causes": ["sla.overdue"],
                        }
                    ]
                }
            )
        }
    )
    _order(gateway, "LATE", age=timedelta(hours=30))
    look(gateway.store, settings, datetime.now(UTC))
    with gateway.store.connect() as conn:
        texts = list(
            conn.scalars(select(alert_events.c.text).where(alert_events.c.cause == "sla.overdue"))
        )
    assert len(texts) == 1 and texts[0].startswith("order LATE: no response by")


def test_listing_rows_show_the_requested_delivery(store: Store, tmp_path: Path) -> None:
    """The orders list (CLI --json and the console's column) shows the requested delivery the
    despatch timer runs on: the requested period's end, else the earliest line date."""
    gateway = _gateway(store, tmp_path)
    _order(gateway, "WITH-DATE", age=timedelta(hours=1), deliver_by=date(2026, 12, 24))
    _order(gateway, "WITHOUT", age=timedelta(hours=1))
    with gateway.store.session() as session:
        for filters in (Filters(), Filters(search="WITH")):
            rows = {r["order_number"]: r for r in page_orders(session, filters).rows}
            assert rows["WITH-DATE"]["requested_delivery"] == "2026-12-24"
            assert rows["WITHOUT"]["requested_delivery"] is None


def test_an_order_of_no_partner_is_due_by_the_default_terms(store: Store, tmp_path: Path) -> None:
    """The default terms (24 h normal) are made on first use, for an order without a partner."""
    gateway = _gateway(store, tmp_path, response_hours={"normal": 2})
    _order(gateway, "PARTNER", age=timedelta(hours=3))  # its partner's 2 h: overdue
    _order(gateway, "NOBODY", age=timedelta(hours=3))  # the default 24 h: not yet
    with gateway.store.connect() as conn:
        conn.execute(
            update(orders).where(orders.c.order_number == "NOBODY").values(buyer_partner=None)
        )
    tick = look(gateway.store, gateway.settings, datetime.now(UTC))
    assert tick.scheduled == 2 and _overdue(gateway) == ["PARTNER"]
    with gateway.store.connect() as conn:
        due = dict(conn.execute(select(orders.c.order_number, orders.c.response_due_at)).all())
        made = dict(conn.execute(select(orders.c.order_number, orders.c.created_at)).all())
    assert due["NOBODY"] - made["NOBODY"] == timedelta(hours=24)


def test_a_refused_auto_approval_is_recorded_once_and_left_to_an_operator(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The response is refused (here: a rule the order breaks): nothing is sent, the refusal is
    in the history once, however many gateways look at once, and no later look tries again."""
    from edi_gateway.errors import ErrorCode, GatewayError
    from edi_gateway.outbound import respond as respond_module

    def refused(*args: Any, **kwargs: Any) -> Any:
        raise GatewayError(ErrorCode.NOT_ALLOWED, "a rule the order breaks")

    gateway = _gateway(store, tmp_path, auto_approve_days=14)
    _order(gateway, "OLD", age=timedelta(days=15))
    monkeypatch.setattr(respond_module, "issue", refused)
    at, start = datetime.now(UTC), threading.Barrier(2)

    def one_gateway(_: int) -> int:
        start.wait()
        return look(gateway.store, gateway.settings, at).auto_approved

    with ThreadPoolExecutor(2) as pool:
        assert list(pool.map(one_gateway, range(2))) == [0, 0]
    assert look(gateway.store, gateway.settings, at + timedelta(hours=1)).auto_approved == 0
    assert _events(gateway, "sla.auto_approval_refused") == ["OLD"]
    assert _responses(gateway, "OLD") == []


def test_an_order_wanted_on_the_last_day_of_the_calendar_holds_up_no_clock(
    store: Store, tmp_path: Path
) -> None:
    """xs:date allows 9999-12-31, and its end is past the last datetime Python has: the look
    raised OverflowError for its whole batch, at every look, so no order's timer ran (found by
    bench/fuzz.py). Its despatch is now due at the end of time; the other order's clock runs."""
    gateway = _gateway(store, tmp_path)
    _order(gateway, "LAST-DAY", age=timedelta(hours=1), deliver_by=date.max)
    _order(gateway, "NORMAL-LATE", age=timedelta(hours=25))
    tick = look(gateway.store, gateway.settings, datetime.now(UTC))
    assert (tick.scheduled, tick.fired) == (2, 1)
    assert _overdue(gateway) == ["NORMAL-LATE"]
    with gateway.store.connect() as conn:
        due = conn.scalar(
            select(orders.c.despatch_due_at).where(orders.c.order_number == "LAST-DAY")
        )
    assert due is not None and due.year == 9999
