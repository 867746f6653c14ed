"""Alerts that help (issue 11, point 3): grouped by cause and partner into digests, throttled per
cause and channel, each saying what to do; a webhook that receives signed JSON over real HTTP
(and fails, and is tried again); two gateways on one store sending each digest once; the
certificate clock. Mail channels are proved against Dovecot + SMTP in test_email.py."""

from __future__ import annotations

import hashlib
import hmac
import json
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from sqlalchemy import func, select, text

from edi_gateway.alerts.clocks import look
from edi_gateway.alerts.digest import RETRY, prepare, send_due
from edi_gateway.alerts.events import record, record_deliveries, record_outcome
from edi_gateway.app import Gateway
from edi_gateway.config import Settings
from edi_gateway.outbound import outbox
from edi_gateway.outbound.respond import Decision, respond
from edi_gateway.store.db import Store, open_store
from edi_gateway.store.schema import alert_events, history, messages
from tests import factory as f
from tests.unit.support import receive

pytestmark = pytest.mark.integration
SECRET = "s3cret-for-tests"


class Hook:
    """A webhook receiver: keeps what it is sent; answers ``status``."""

    def __init__(self) -> None:
        self.posts: list[tuple[dict[str, str], bytes]] = []
        self.status = 204
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                hook.posts.append((dict(self.headers), body))
                self.send_response(hook.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hooks/edi"

    def digests(self) -> list[dict[str, Any]]:
        """Every POST's JSON, after checking its signature against the shared secret."""
        found = []
        for headers, body in self.posts:
            stamp, mac = (
                part.split("=", 1)[1] for part in headers["X-Edi-Gateway-Signature"].split(",")
            )
            wanted = hmac.new(SECRET.encode(), f"{stamp}.".encode() + body, hashlib.sha256)
            assert hmac.compare_digest(mac, wanted.hexdigest()), "bad signature"
            assert headers["Content-Type"] == "application/json"
            found.append(json.loads(body))
        return found


@pytest.fixture
def hook() -> Iterator[Hook]:
    receiver = Hook()
    yield receiver
    receiver.server.shutdown()
    receiver.server.server_close()


def _settings(tmp_path: Path, url: str, every: float = 15, **extra: Any) -> Settings:
    return Settings.model_validate(
        {
            "path": tmp_path / "gateway.yaml",
            "partners": [f.buyer_partner(outbound="to-buyer"), f.seller_partner()],
            "connectors": [
                {
                    "name": "to-buyer",
                    "type": "folder",
                    "direction": "out",
                    "path": str(tmp_path / "out"),
                },
            ],
            "alerts": {
                "every_minutes": every,
                "webhooks": [
                    {
                        "name": "ops-hook",
                        "url": url,
                        "secret": {"env": "EDI_TEST_WEBHOOK_SECRET"},
                        "causes": [
                            "order.received",
                            "message.failed",
                            "delivery.failed",
                            "certificate.expiring",
                        ],
                    }
                ],
                **extra,
            },
        },
        context={"base_dir": tmp_path},
    )


@pytest.fixture(autouse=True)
def _secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EDI_TEST_WEBHOOK_SECRET", SECRET)


def test_digests_are_grouped_throttled_signed_and_say_what_to_do(
    store: Store, tmp_path: Path, hook: Hook
) -> None:
    gateway = Gateway(_settings(tmp_path, hook.url), store)
    settings = gateway.settings
    prepare(store, settings)
    start = datetime.now(UTC)
    states = {
        receive(gateway, f.order("PO-1")): "processed",
        receive(gateway, f.order("PO-2")): "processed",
        receive(gateway, f.order("PO-9", [f.Item("1", "1"), f.Item("1", "2")])): "failed",
        receive(gateway, b"<Order"): "failed",
    }
    assert record_outcome(store, settings, states, start) == 4
    assert send_due(store, settings, start) == {"ops-hook": "sent 4"}
    [first] = hook.digests()
    causes = {a["cause"]: a for a in first["alerts"]}
    assert first["subject"] == "edi-gateway: 4 alerts (2 new orders received, 2 messages failed)"
    assert causes["order.received"]["count"] == 2
    assert [len(v) for v in causes["order.received"]["partners"].values()] == [2]
    failed = causes["message.failed"]["partners"]
    assert set(failed) == {"buyer", "(no partner)"}  # grouped by partner
    assert (
        "DUPLICATE_LINE_ID" in failed["buyer"][0] and "NOT_WELL_FORMED" in failed["(no partner)"][0]
    )
    assert "messages redrive ID" in causes["message.failed"]["what_to_do"]

    # Within the throttle: a new failure waits, and nothing is sent twice.
    again = {receive(gateway, b"<Order><x"): "failed"}
    record_outcome(store, settings, again, start + timedelta(minutes=1))
    assert send_due(store, settings, start + timedelta(minutes=1)) == {}
    assert send_due(store, settings, start + timedelta(minutes=14)) == {}
    assert len(hook.posts) == 1
    # After it: one digest with exactly the new event.
    assert send_due(store, settings, start + timedelta(minutes=15)) == {"ops-hook": "sent 1"}
    last = hook.digests()[-1]
    assert last["subject"].startswith("Message failed: message ")
    assert [a["count"] for a in last["alerts"]] == [1]
    assert send_due(store, settings, start + timedelta(hours=2)) == {}


def test_a_failing_webhook_loses_nothing_and_waits_before_trying_again(
    store: Store, tmp_path: Path, hook: Hook
) -> None:
    gateway = Gateway(_settings(tmp_path, hook.url), store)
    settings = gateway.settings
    prepare(store, settings)
    start = datetime.now(UTC)
    with store.connect() as conn:
        for n in range(3):
            record(conn, "message.failed", f"failure {n}", start, partner="buyer")
    hook.status = 500
    outcome = send_due(store, settings, start)
    assert outcome["ops-hook"].startswith("failed: DELIVERY_REFUSED: webhook ops-hook answered 500")
    assert send_due(store, settings, start + RETRY / 2) == {}  # not hammered
    hook.status = 204
    assert send_due(store, settings, start + RETRY) == {"ops-hook": "sent 3"}
    assert [a["count"] for a in hook.digests()[-1]["alerts"]] == [3]

    hook.server.shutdown()  # the receiver is gone: a connection error, kept for later
    hook.server.server_close()
    with store.connect() as conn:
        record(conn, "message.failed", "failure 4", start, partner="buyer")
    later = start + timedelta(hours=1)
    assert send_due(store, settings, later)["ops-hook"].startswith("failed: CONNECTION_FAILED")


def test_two_gateways_on_one_store_send_each_digest_once(
    store: Store, database_url: str, tmp_path: Path, hook: Hook
) -> None:
    settings = _settings(tmp_path, hook.url)
    prepare(store, settings)
    start = datetime.now(UTC)
    with store.connect() as conn:
        for n in range(20):
            record(conn, "message.failed", f"failure {n}", start, partner="buyer")
    other = open_store(database_url)
    barrier = threading.Barrier(2)
    outcomes: list[dict[str, str]] = []

    def send(on: Store) -> None:
        barrier.wait()
        outcomes.append(send_due(on, settings, start))

    try:
        threads = [threading.Thread(target=send, args=(s,)) for s in (store, other)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
    finally:
        other.close()
    assert sorted(len(o) for o in outcomes) == [0, 1], outcomes
    [digest] = hook.digests()
    assert digest["alerts"][0]["count"] == 20


def test_an_event_committed_after_a_later_one_was_told_is_told_too(
    postgres_url: str, tmp_path: Path, hook: Hook
) -> None:
    """Gateways record events in transactions of their own (PostgreSQL): an event's id is
    taken when it is inserted, so one gateway's event can commit after another's later event
    (a higher id) was told. The digest's cursor must not pass the earlier one, or it is never
    told. (SQLite has one writer: ids commit in order.)"""
    store = open_store(postgres_url)
    try:
        settings = _settings(tmp_path, hook.url)
        prepare(store, settings)
        start = datetime.now(UTC)
        with store.connect() as slow:  # a gateway whose transaction goes on a while
            record(slow, "message.failed", "taken first, committed last", start, partner="a")

            def another_gateway() -> None:
                with store.connect() as conn:
                    record(conn, "message.failed", "taken next, committed", start, partner="b")
                send_due(store, settings, start)

            thread = threading.Thread(target=another_gateway)
            thread.start()
            # the slow one commits once the other gateway's digest went, or waits for it
            while thread.is_alive() and not _waiting_for_a_lock(store):
                time.sleep(0.01)
        thread.join()
        send_due(store, settings, start + timedelta(minutes=16))  # the next digest
        told = [n for digest in hook.digests() for n in digest["alerts"]]
        assert sum(alert["count"] for alert in told) == 2, told
    finally:
        store.close()


def _waiting_for_a_lock(store: Store) -> bool:
    with store.connect() as conn:
        waiting = select(func.count()).select_from(text("pg_locks")).where(text("NOT granted"))
        return bool(conn.scalar(waiting))


def test_deliveries_are_told_at_the_first_failure_and_when_given_up(
    store: Store, tmp_path: Path, hook: Hook
) -> None:
    blocked = tmp_path / "out"
    blocked.write_text("not a folder")
    gateway = Gateway(_settings(tmp_path, hook.url), store)
    settings = gateway.settings
    receive(gateway, f.order("PO-1"))
    respond(store, settings, "PO-1", Decision("AB"), actor="ops")
    moment = datetime.now(UTC)
    told = 0
    for _ in range(outbox.MAX_ATTEMPTS):
        done = outbox.flush(store, settings, at=moment)
        told += record_deliveries(store, settings, done, moment)
        moment += timedelta(hours=2)
    assert told == 2  # the first failed attempt and giving up, not the six in between
    with store.connect() as conn:
        texts = list(conn.scalars(select(alert_events.c.text).order_by(alert_events.c.id)))
    assert "failed, retrying: TARGET_UNWRITABLE" in texts[0] and "given up" in texts[1]


def _certificate(path: Path, days: int) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "partner.example")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=300))
        .not_valid_after(now + timedelta(days=days))
        .sign(key, hashes.SHA256())
    )
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def _with_certificates(tmp_path: Path, ca_files: dict[str, Path]) -> Settings:
    """:func:`_settings` plus one AMQP inbound connector per name, trusting that CA file."""
    base = _settings(tmp_path, "http://127.0.0.1:9/").model_dump(mode="json", exclude={"path"})
    queues = [
        {
            "name": name,
            "type": "amqp",
            "direction": "in",
            "host": "127.0.0.1",
            "queue": f"queue-{name}",
            "username": "u",
            "password": {"env": "EDI_TEST_WEBHOOK_SECRET"},
            "tls": True,
            "ca_file": str(path),
        }
        for name, path in ca_files.items()
    ]
    return Settings.model_validate(
        {**base, "path": tmp_path / "gateway.yaml", "connectors": [*base["connectors"], *queues]},
        context={"base_dir": tmp_path},
    )


def test_a_certificate_near_its_end_is_told_once_a_day(store: Store, tmp_path: Path) -> None:
    soon, later = tmp_path / "soon.pem", tmp_path / "later.pem"
    _certificate(soon, 5)
    _certificate(later, 200)
    settings = _with_certificates(tmp_path, {"mq": soon, "mq2": later})
    moment = datetime.now(UTC)
    found = look(store, settings, moment)
    assert [(e.where, round(e.days_left(moment))) for e in found] == [
        ("connectors.mq.ca_file", 5),
        ("connectors.mq2.ca_file", 200),
    ]
    look(store, settings, moment + timedelta(hours=1))  # the same day: not told again
    look(store, settings, moment + timedelta(days=1, minutes=1))  # the next day: again
    with store.connect() as conn:
        texts = list(
            conn.scalars(
                select(alert_events.c.text).where(alert_events.c.cause == "certificate.expiring")
            )
        )
        assert conn.scalar(select(func.count()).select_from(alert_events)) == 2
    assert len(texts) == 2 and all("CN=partner.example" in t and str(soon) in t for t in texts)
    assert "(in 5 days)" in texts[0]


def test_two_gateways_looking_at_once_tell_a_certificate_once(store: Store, tmp_path: Path) -> None:
    """Every gateway keeps the certificate clock: two looking at the same moment record one
    alert and one history event between them (PostgreSQL: a lock per subject)."""
    soon = tmp_path / "soon.pem"
    _certificate(soon, 5)
    settings = _with_certificates(tmp_path, {"mq": soon})
    moment, start = datetime.now(UTC), threading.Barrier(4)

    def one_gateway(_: int) -> None:
        start.wait()
        look(store, settings, moment)

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(one_gateway, range(4)))
    with store.connect() as conn:
        told = conn.scalar(
            select(func.count()).where(alert_events.c.cause == "certificate.expiring")
        )
        noted = conn.scalar(select(func.count()).where(history.c.event == "certificate.expiring"))
    assert (told, noted) == (1, 1)


def test_the_daemon_tells_a_connector_down_once(store: Store, tmp_path: Path, hook: Hook) -> None:
    from edi_gateway.daemon import Daemon

    base = _settings(tmp_path, hook.url).model_dump(mode="json", exclude={"path"})
    base["alerts"]["webhooks"][0]["causes"] = ["connector.down"]
    base["connectors"].append(
        {"name": "inbox", "type": "folder", "direction": "in", "path": str(tmp_path / "missing")}
    )
    settings = Settings.model_validate(
        {**base, "path": tmp_path / "gateway.yaml"}, context={"base_dir": tmp_path}
    )
    gateway = Gateway(settings, store)
    for _ in range(2):  # a second run within every_minutes: no second digest
        Daemon(gateway, lambda source, outcome: None, threading.Event()).run(once=True)
    [digest] = hook.digests()
    [alert] = digest["alerts"]
    assert alert["cause"] == "connector.down" and alert["count"] == 1
    [line] = alert["partners"]["(no partner)"]
    assert line.startswith("connector inbox: SOURCE_UNREADABLE: inbound folder")


def test_store_trouble_is_told_once_as_the_stores_not_as_each_connector_down(
    tmp_path: Path, hook: Hook
) -> None:
    """Polls that fail because of the store (STORE_UNAVAILABLE, STORE_BUSY) are the store's
    trouble, not each connector's: no ``connector.down`` naming the connectors, one
    ``store.unavailable`` for the time and every connector it held up, recorded when a poll
    works again (the events are in the store). Twice, on a real PostgreSQL: first every table
    write waits past ``lock_timeout`` (another transaction locks ``messages``; the store
    answers, so before each connector was recorded as down), then the server is stopped mid-run
    and started again. A connector's own failure afterwards is still told as down."""
    from edi_gateway.daemon import Daemon
    from tests.servers import postgresql, postgresql_ctl

    pg_dir = Path(tempfile.mkdtemp(prefix="edi-gateway-pg-"))  # the server runs as postgres
    with postgresql(pg_dir) as server:
        url = f"{server}/postgres"
        store = open_store(f"{url}?options=-c%20lock_timeout%3D1000")
        names = ["in-1", "in-2"]
        base = _settings(tmp_path, hook.url).model_dump(mode="json", exclude={"path"})
        base["alerts"]["webhooks"][0]["causes"] = ["connector.down", "store.unavailable"]
        base["connectors"] += [
            {"name": n, "type": "folder", "direction": "in", "path": str(tmp_path / n)}
            for n in names
        ]
        settings = Settings.model_validate(
            {**base, "path": tmp_path / "gateway.yaml"}, context={"base_dir": tmp_path}
        )
        sent = iter(range(100))

        def arrive() -> None:
            for name in names:
                (tmp_path / name).mkdir(exist_ok=True)
                number = next(sent)
                (tmp_path / name / f"{number}.xml").write_bytes(f.order(f"PO-{number}"))

        def poll_all(failing: bool) -> None:
            for name in names:
                daemon._attend(name, once=True)
                state = daemon.scheduler.states[name]
                assert (state.failures > 0) is failing, (name, state.last_error)

        def causes() -> list[str]:
            with store.connect() as conn:
                return list(conn.scalars(select(alert_events.c.cause).order_by(alert_events.c.id)))

        try:
            daemon = Daemon(
                Gateway(settings, store), lambda source, outcome: None, threading.Event()
            )
            arrive()
            daemon.run(once=True)
            assert causes() == []

            arrive()  # writes wait for a lock another transaction holds, past lock_timeout
            with store.engine.connect() as other:
                other.execute(text("LOCK TABLE messages IN EXCLUSIVE MODE"))
                poll_all(failing=True)
                assert causes() == []  # before: connector.down for in-1 and for in-2
                other.rollback()
            poll_all(failing=False)
            assert causes() == ["store.unavailable"]

            arrive()  # the server stopped mid-run, then started again
            postgresql_ctl(pg_dir, server, "stop")
            poll_all(failing=True)
            postgresql_ctl(pg_dir, server, "start")
            poll_all(failing=False)
            assert causes() == ["store.unavailable"] * 2

            (tmp_path / "in-2").rename(tmp_path / "gone")  # the connector's own trouble
            daemon._attend("in-2", once=True)
            assert causes() == ["store.unavailable"] * 2 + ["connector.down"]
            with store.connect() as conn:
                left = conn.scalar(select(func.count()).where(messages.c.state != "processed"))
                taken = conn.scalar(select(func.count()).select_from(messages))
            assert (taken, left) == (6, 0)  # nothing lost, nothing doubled

            send_due(store, settings, datetime.now(UTC))
            [digest] = hook.digests()
            told = {alert["cause"]: alert for alert in digest["alerts"]}
            assert set(told) == {"store.unavailable", "connector.down"}
            lines = told["store.unavailable"]["partners"]["(no partner)"]
            assert len(lines) == 2 and all("in-1, in-2" in line for line in lines), lines
            assert "STORE_UNAVAILABLE" in lines[1], lines
            assert "database server" in told["store.unavailable"]["what_to_do"]
            [down] = told["connector.down"]["partners"]["(no partner)"]
            assert down.startswith("connector in-2: SOURCE_UNREADABLE"), down
        finally:
            store.close()
    shutil.rmtree(pg_dir, ignore_errors=True)


def test_a_channel_listing_connector_down_still_hears_of_store_trouble(
    tmp_path: Path, hook: Hook
) -> None:
    """Store trouble was told as each connector down before ``store.unavailable`` came: a
    channel whose config lists ``connector.down`` (written before) is told it still, without an
    edit; one that lists neither is not."""
    from edi_gateway.alerts.digest import channels
    from edi_gateway.alerts.events import subscribed

    base = _settings(tmp_path, hook.url).model_dump(mode="json", exclude={"path"})
    first = base["alerts"]["webhooks"][0]
    base["alerts"]["webhooks"] = [
        {**first, "name": "ops", "causes": ["connector.down"]},
        {**first, "name": "orders", "causes": ["message.failed"]},
    ]
    settings = Settings.model_validate(
        {**base, "path": tmp_path / "gateway.yaml"}, context={"base_dir": tmp_path}
    )
    assert {"connector.down", "store.unavailable"} <= subscribed(settings)
    told = {channel.name: channel.causes for channel in channels(settings)}
    assert told == {
        "ops": ("connector.down", "store.unavailable"),
        "orders": ("message.failed",),
    }


def test_store_trouble_while_an_idle_connector_works_is_told_once_for_the_whole_time(
    tmp_path: Path, hook: Hook, postgres_url: str
) -> None:
    """One connector has files: its writes wait past ``lock_timeout`` (another transaction
    locks ``messages``) for three rounds of polls. The other has none: its polls read only, and
    work, right after each failure. The store's trouble lasts the three rounds and is told
    once, when the connector it held up works again. Before, the idle connector's working poll
    ended an "episode" every round: three ``store.unavailable`` of ~0 s during one trouble."""
    from edi_gateway.daemon import Daemon

    store = open_store(f"{postgres_url}?options=-c%20lock_timeout%3D1000")
    base = _settings(tmp_path, hook.url).model_dump(mode="json", exclude={"path"})
    base["alerts"]["webhooks"][0]["causes"] = ["connector.down", "store.unavailable"]
    base["connectors"] += [
        {"name": n, "type": "folder", "direction": "in", "path": str(tmp_path / n)}
        for n in ("busy", "idle")
    ]
    settings = Settings.model_validate(
        {**base, "path": tmp_path / "gateway.yaml"}, context={"base_dir": tmp_path}
    )
    (tmp_path / "idle").mkdir()
    (tmp_path / "busy").mkdir()
    try:
        daemon = Daemon(Gateway(settings, store), lambda source, outcome: None, threading.Event())
        daemon.run(once=True)  # both work
        (tmp_path / "busy" / "po.xml").write_bytes(f.order("PO-LOCKED"))
        with store.engine.connect() as other:
            other.execute(text("LOCK TABLE messages IN EXCLUSIVE MODE"))
            for _ in range(3):
                for name in ("busy", "idle"):
                    daemon._attend(name, once=True)
                assert daemon.scheduler.states["busy"].failures > 0
                assert daemon.scheduler.states["idle"].failures == 0
            other.rollback()
        daemon._attend("busy", once=True)
        assert daemon.scheduler.states["busy"].failures == 0
        with store.connect() as conn:
            told = list(conn.execute(select(alert_events.c.cause, alert_events.c.text)))
            taken = conn.scalar(select(func.count()).select_from(messages))
        assert taken == 1
        assert [cause for cause, _ in told] == ["store.unavailable"], told
        assert "connectors not polled meanwhile: busy;" in told[0][1], told
    finally:
        store.close()
