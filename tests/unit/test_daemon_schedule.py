"""The daemon's schedules (interval, cron in UTC), backoff, and one failing connector beside a
working one, through the real Daemon loop over real folders and a real SQLite store."""

from __future__ import annotations

import json
import logging
import threading
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any, ClassVar

import pytest

from edi_gateway.app import Gateway, Outcome
from edi_gateway.config import Settings, load_config
from edi_gateway.cron import cron_problem, next_time
from edi_gateway.daemon import Daemon
from edi_gateway.daemon.schedule import Backoff, Schedule, Scheduler
from edi_gateway.errors import ConfigError
from edi_gateway.logs import JsonFormatter, log_fields
from tests import factory

T0 = datetime(2026, 11, 2, 10, 3, 20, tzinfo=UTC)  # a Monday


class FakeClock:
    def __init__(self, start: datetime = T0) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def test_cron_next_times_are_utc_minutes_matching_the_expression() -> None:
    assert next_time("*/5 * * * *", T0) == datetime(2026, 11, 2, 10, 5, tzinfo=UTC)
    assert next_time("*/5 * * * *", datetime(2026, 11, 2, 10, 5, tzinfo=UTC)) == datetime(
        2026, 11, 2, 10, 10, tzinfo=UTC
    )
    # weekdays at 06:00 UTC: Saturday 10:00 -> Monday 06:00
    saturday = datetime(2026, 11, 7, 10, 0, tzinfo=UTC)
    assert next_time("0 6 * * MON-FRI", saturday) == datetime(2026, 11, 9, 6, 0, tzinfo=UTC)
    # a time in another zone is read as the instant it is, the answer is in UTC
    cet = datetime(2026, 11, 2, 11, 3, 20, tzinfo=timezone(timedelta(hours=1)))
    assert next_time("0 * * * *", cet) == datetime(2026, 11, 2, 11, 0, tzinfo=UTC)
    schedule = Schedule.of(10, "0 2 * * *")
    assert schedule.next_after(T0) == datetime(2026, 11, 3, 2, 0, tzinfo=UTC)
    assert schedule.describe() == "cron 0 2 * * * (UTC)"
    assert Schedule.of(2.5, None).next_after(T0) == T0 + timedelta(seconds=2.5)


def test_cron_problems_name_what_is_expected() -> None:
    assert cron_problem("*/5 * * * *") is None
    assert "five fields" in (cron_problem("* * *") or "")
    assert "five fields" in (cron_problem("0 * * * * *") or "")  # no seconds field
    assert "Bad minute" in (cron_problem("61 * * * *") or "")


def _config(tmp_path: Path, body: str) -> Settings:
    path = tmp_path / "gateway.yaml"
    path.write_text(body, encoding="utf-8")
    return load_config(path)


def test_cron_and_every_seconds_exclude_each_other_in_gateway_yaml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        _config(
            tmp_path,
            "connectors:\n"
            "  - {name: a, type: folder, direction: in, path: a, cron: '*/5 * * * *', "
            "every_seconds: 30}\n"
            "  - {name: b, type: folder, direction: in, path: b, cron: '0 25 * * *'}\n"
            "  - {name: c, type: folder, direction: out, path: c, cron: '* * * * *'}\n"
            "daemon: {backoff: {initial_seconds: 10, max_seconds: 5}, http: {port: 70000}}\n",
        )
    text = caught.value.message
    assert "connectors[0]: every_seconds and cron are both given, expected one schedule" in text
    assert "connectors[1].cron: found '0 25 * * *': Bad hour" in text
    assert "connectors[2]: cron is for inbound connectors (direction: in)" in text
    assert "daemon.backoff: found max_seconds 5.0 below initial_seconds 10.0" in text
    assert "daemon.http.port" in text
    good = _config(
        tmp_path,
        "connectors:\n  - {name: a, type: folder, direction: in, path: a, cron: '*/5 * * * *'}\n"
        "daemon: {http: {port: 9999}, log_format: json}\n",
    )
    assert good.connectors[0].cron == "*/5 * * * *"
    assert good.daemon.http is not None and good.daemon.http.host == "127.0.0.1"
    assert good.daemon.log_format == "json"


def test_backoff_doubles_up_to_its_cap_and_a_not_recoverable_failure_waits_longest() -> None:
    backoff = Backoff(initial=5, cap=60, not_recoverable=900)
    assert [backoff.delay(n, recoverable=True) for n in range(1, 7)] == [5, 10, 20, 40, 60, 60]
    assert backoff.delay(10_000, recoverable=True) == 60
    assert backoff.delay(1, recoverable=False) == 900


def test_scheduler_backs_off_and_resets_on_success() -> None:
    clock = FakeClock()
    scheduler = Scheduler(Backoff(initial=5, cap=40, not_recoverable=900), clock)
    scheduler.add("fast", Schedule.of(2, None))
    scheduler.add("nightly", Schedule.of(10, "0 2 * * *"))
    assert scheduler.due() == ["fast", "nightly"]  # everything is due at start-up
    waits = []
    for _ in range(5):
        waits.append(scheduler.failed("fast", "down", code="X", recoverable=True))
    assert waits == [5, 10, 20, 40, 40]
    state = scheduler.states["fast"]
    assert state.next_due == T0 + timedelta(seconds=40)
    assert state.failures == 5 and state.backoff_seconds == 40
    assert not scheduler.healthy()
    assert scheduler.snapshot()["fast"]["last_error"]["message"] == "down"
    # a retry never comes sooner than the connector's own interval
    scheduler.add("slow", Schedule.of(120, None))
    assert scheduler.failed("slow", "down", code="X", recoverable=True) == 120
    scheduler.succeeded("slow")
    clock.advance(40)
    scheduler.succeeded("fast", taken=3)
    assert state.failures == 0 and state.backoff_seconds == 0 and state.taken == 3
    assert state.next_due == clock.now + timedelta(seconds=2)
    assert state.last_error is not None  # kept for the record
    # a cron connector retries after the backoff, then goes back to its cron times
    assert scheduler.failed("nightly", "x", code="X", recoverable=False) == 900
    scheduler.succeeded("nightly")
    assert scheduler.states["nightly"].next_due == datetime(2026, 11, 3, 2, 0, tzinfo=UTC)
    assert scheduler.healthy()
    assert scheduler.next_wake() == clock.now + timedelta(seconds=2)


def _two_inboxes(tmp_path: Path) -> Settings:
    buyer = {"scheme": "0088", "value": factory.BUYER_GLN}
    seller = {"scheme": "0088", "value": factory.SELLER_GLN}
    connectors: list[dict[str, Any]] = [
        {"name": name, "type": "folder", "direction": "in", "path": str(tmp_path / name)}
        for name in ("good", "broken")
    ]
    return Settings.model_validate(
        {
            "path": tmp_path / "gateway.yaml",
            "store": {"url": f"sqlite:///{tmp_path / 'gateway.db'}"},
            "partners": [
                {"id": "buyer", "name": "Buyer AB", "role": "buyer", "endpoint": buyer},
                {"id": "seller", "name": "Seller BV", "role": "supplier", "endpoint": seller},
            ],
            "connectors": connectors,
            "daemon": {"backoff": {"initial_seconds": 5, "max_seconds": 20}},
        },
        context={"base_dir": tmp_path},
    )


def test_a_failing_connector_backs_off_while_the_other_goes_on(tmp_path: Path) -> None:
    settings = _two_inboxes(tmp_path)
    (tmp_path / "good").mkdir()
    (tmp_path / "broken").write_text("a file where the inbound folder should be")
    gateway = Gateway.open(settings)
    clock = FakeClock()
    reports: list[tuple[str, Outcome]] = []
    daemon = Daemon(gateway, lambda s, o: reports.append((s, o)), threading.Event(), clock)
    try:
        (tmp_path / "good" / "one.xml").write_bytes(factory.order("D-1"))
        daemon.run(once=True)
        broken = daemon.scheduler.states["broken"]
        good = daemon.scheduler.states["good"]
        assert broken.failures == 1 and broken.backoff_seconds == 5
        assert broken.last_error is not None and "does not exist" in broken.last_error.message
        assert good.failures == 0 and good.taken == 1
        assert list(daemon.total.states.values()) == ["processed"]
        # later cycles: the broken one keeps backing off (5, 10, 20, 20), the good one polls on
        for n, expected in enumerate([10, 20, 20], start=2):
            clock.advance(60)
            (tmp_path / "good" / f"o{n}.xml").write_bytes(factory.order(f"D-{n}"))
            for name in daemon.scheduler.due():
                daemon._attend(name, once=True)
            assert broken.failures == n and broken.backoff_seconds == expected
        assert good.taken == 4 and good.failures == 0
        status, health = daemon.health()
        assert status == 200 and health["status"] == "degraded"
        assert health["connectors"]["broken"]["consecutive_failures"] == 4
        assert health["connectors"]["good"]["up"] is True
        # the folder is fixed: the next poll works and the backoff is gone
        (tmp_path / "broken").unlink()
        (tmp_path / "broken").mkdir()
        clock.advance(60)
        for name in daemon.scheduler.due():
            daemon._attend(name, once=True)
        assert broken.failures == 0 and broken.backoff_seconds == 0
        assert daemon.health()[1]["status"] == "ok"
        metrics = daemon.metrics.exposition()[0].decode()
        assert 'edi_connector_up{connector="broken"} 1.0' in metrics
        assert 'edi_messages_in_total{connector="good",partner="buyer"} 4.0' in metrics
    finally:
        gateway.close()


def test_a_store_gone_while_starting_is_waited_for(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The instance lease says the gateway runs before it finishes what a crash left: a store
    that goes away then (a PostgreSQL restart; CI met it) is waited for, not a reason to exit."""
    from sqlalchemy.exc import OperationalError

    settings = _two_inboxes(tmp_path)
    for name in ("good", "broken"):
        (tmp_path / name).mkdir()
    (tmp_path / "good" / "one.xml").write_bytes(factory.order("D-1"))
    gateway = Gateway.open(settings)
    real = Gateway.process_pending
    fails = [OperationalError("SELECT 1", {}, Exception("terminating connection"))] * 2

    def flaky(self: Gateway) -> Outcome:
        if fails:
            raise fails.pop()
        return real(self)

    monkeypatch.setattr(Gateway, "process_pending", flaky)
    daemon = Daemon(gateway, lambda s, o: None, threading.Event())
    try:
        with caplog.at_level(logging.WARNING, logger="edi_gateway.daemon"):
            daemon.run(once=True)
        assert not fails and list(daemon.total.states.values()) == ["processed"]
        waits = [r.getMessage() for r in caplog.records if "starting: the store" in r.getMessage()]
        assert len(waits) == 2 and "terminating connection" in waits[0]
        stopped = threading.Event()
        stopped.set()
        fails.append(OperationalError("SELECT 1", {}, Exception("gone")))
        assert Daemon(gateway, lambda s, o: None, stopped).run(once=True).states == {}
    finally:
        gateway.close()


def test_run_once_gives_up_on_a_store_gone_while_starting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A cron job's ``run --once`` waits a while for a store gone while it starts, then ends
    with the store's error (STORE_UNAVAILABLE at the CLI) instead of waiting forever."""
    from sqlalchemy.exc import OperationalError

    from edi_gateway.daemon import loop

    settings = _two_inboxes(tmp_path)
    gateway = Gateway.open(settings)

    def gone(self: Gateway) -> Outcome:
        raise OperationalError("SELECT 1", {}, Exception("connection refused"))

    class Counted(threading.Event):
        waits: ClassVar[list[float]] = []

        def wait(self, timeout: float | None = None) -> bool:
            self.waits.append(timeout or 0.0)
            assert len(self.waits) < 20, "run --once waits on and on for the store"
            return False  # never told to stop; no real sleep

    monkeypatch.setattr(Gateway, "process_pending", gone)
    stop = Counted()
    try:
        with pytest.raises(OperationalError, match="connection refused"):
            Daemon(gateway, lambda s, o: None, stop).run(once=True)
        assert stop.waits == [0.5, 1.0, 2.0, 4.0, 8.0][: loop.ONCE_TRIES - 1]
    finally:
        gateway.close()


def test_json_log_lines_carry_the_message_fields() -> None:
    formatter = JsonFormatter()
    record = logging.LogRecord("edi_gateway.messages", logging.INFO, "x", 1, "m %d", (7,), None)
    record.message_id = 7
    record.order_id = None  # unknown values are left out
    line = json.loads(formatter.format(record))
    assert line["message"] == "m 7" and line["message_id"] == 7 and line["level"] == "info"
    assert "order_id" not in line and line["time"].endswith("Z")
    try:
        raise ValueError("boom")
    except ValueError:
        import sys

        failed = logging.LogRecord("x", logging.ERROR, "x", 1, "failed", (), sys.exc_info())
    assert "ValueError: boom" in json.loads(formatter.format(failed))["exception"]


def test_log_fields_reach_every_line_of_their_block(caplog: pytest.LogCaptureFixture) -> None:
    from edi_gateway.logs import ContextFilter

    caplog.handler.addFilter(ContextFilter())
    log = logging.getLogger("edi_gateway.test")
    with caplog.at_level(logging.INFO), log_fields(connector="inbox"):
        log.info("inside")
    log.warning("outside")
    inside, outside = caplog.records
    assert getattr(inside, "connector", None) == "inbox"
    assert not hasattr(outside, "connector")
