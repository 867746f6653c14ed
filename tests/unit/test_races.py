"""Read-then-write races between gateways (and operators) on one store at the same moment.

Each test starts a few threads behind a ``threading.Barrier``, each with a transaction of its
own, on the ``store`` fixture (SQLite, and a real PostgreSQL whose READ COMMITTED transactions
overlap), and counts what came out: nothing doubled, nothing lost, nothing refused that should
have passed. See also test_outbox_names.py (outbox file names) and the tests the module
docstrings of the areas name (SLA and certificate clocks, issuing on one order, SSCC serials,
sign-in counters, bulk keys, bundles)."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

import pytest
from sqlalchemy import Connection, func, select, text, update
from sqlalchemy.exc import OperationalError

from edi_gateway import accounts
from edi_gateway.app import Gateway
from edi_gateway.config import Settings
from edi_gateway.envelope import Envelope
from edi_gateway.errors import ErrorCode, GatewayError
from edi_gateway.outbound import outbox as queue
from edi_gateway.outbound.forward import note_deliveries
from edi_gateway.pipeline.intake import intake
from edi_gateway.pipeline.process import Policy, process_messages
from edi_gateway.store.db import Store, deadlocked, open_store
from edi_gateway.store.leases import MAX_KEYS, PG_CLASS, SAME_NUMBER, _hash32, xact_locks
from edi_gateway.store.schema import (
    console_sessions,
    documents,
    forwards,
    history,
    message_payloads,
    messages,
    order_lines,
    orders,
    outbox,
    users,
)
from tests import factory as f
from tests.unit.support import at_once as together
from tests.unit.support import make_settings, receive
from tests.unit.test_forward import gateway as forwarding

RACERS = 4
ROUNDS = 6
HOUR = timedelta(hours=1)
T = TypeVar("T")


def at_once(run: Callable[[int], T], racers: int = RACERS) -> list[T | str]:
    """``run(n)`` in ``racers`` threads started together (:func:`tests.unit.support.at_once`)."""
    return together(run, racers)


def test_a_payload_pushed_to_several_gateways_at_once_is_stored_once(store: Store) -> None:
    """A push connector (AS2, HTTP) is served by every gateway: a partner's re-send after a
    timeout may reach another gateway while the first is still taking it. Intake is idempotent
    on ``(source, source_ref)``; at the same moment it must be too (one message, the same id
    to each, none refused)."""
    for round_ in range(ROUNDS):
        ref = f"<resent-{round_}@buyer>"

        def push(_: int, ref: str = ref) -> list[int]:
            return intake(store, [Envelope(b"<Order/>", "as2:from-buyer", ref, "order.xml")])

        got = at_once(push)
        assert all(isinstance(ids, list) for ids in got), got
        assert len({ids[0] for ids in got if isinstance(ids, list)}) == 1, got
        with store.connect() as conn:
            where = messages.c.source_ref == ref
            assert conn.scalar(select(func.count()).where(where)) == 1
            [mid] = conn.scalars(select(messages.c.id).where(where))
            count = select(func.count())
            assert conn.scalar(count.where(message_payloads.c.message_id == mid)) == 1
            assert conn.scalar(count.where(history.c.message_id == mid)) == 1  # received once


def test_operators_adding_one_user_at_once_add_it_once_and_the_rest_are_told(
    store: Store,
) -> None:
    """``users add`` from several terminals (or the console) at once: one adds the user, the
    others are refused as if it existed before (NOT_ALLOWED), never with a store error; with
    ``--replace`` each one's password is set in turn and none is refused."""
    for round_ in range(2 * ROUNDS):  # each hashes its password first: they meet less often
        name = f"ann{round_}"
        for replace in (False, True):
            who = f"{name}-{replace}"

            def add(n: int, who: str = who, replace: bool = replace) -> str:
                try:
                    password = f"password number {n}"
                    accounts.add_user(store, who, "operator", password, replace=replace)
                except GatewayError as exc:
                    return exc.code.value
                return "added"

            got = at_once(add)
            wanted = (
                ["added"] * RACERS
                if replace
                else ["added", *[ErrorCode.NOT_ALLOWED.value] * (RACERS - 1)]
            )
            assert sorted(got) == sorted(wanted), got
            with store.connect() as conn:
                assert conn.scalar(select(func.count()).where(users.c.name == who)) == 1


def test_operators_removing_one_user_at_once_remove_it_once_and_the_rest_are_told(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``users remove`` of one user from several terminals at once: one removes it, the
    others are told NOT_FOUND as if they came after (each had read the user, and all said
    "removed"). Forced: every removal reads the user before any deletes. PostgreSQL only: on
    SQLite a removal holds the store's one write lock from its start."""
    store = open_store(postgres_url)
    real = accounts.delete
    try:
        for round_ in range(ROUNDS):
            name = f"bob{round_}"
            accounts.add_user(store, name, "operator", f"password number {round_}")
            read = threading.Barrier(RACERS, timeout=30)

            def after_all_read(table: Any, read: threading.Barrier = read) -> Any:
                if table is console_sessions:  # its first write: the user was read
                    read.wait()
                return real(table)

            def remove(_: int, name: str = name) -> str:
                try:
                    accounts.remove_user(store, name)
                except GatewayError as exc:
                    return exc.code.value
                return "removed"

            monkeypatch.setattr(accounts, "delete", after_all_read)
            got = at_once(remove)
            monkeypatch.setattr(accounts, "delete", real)
            assert sorted(got) == sorted(["removed", *[ErrorCode.NOT_FOUND.value] * (RACERS - 1)])
    finally:
        store.close()


def test_a_user_removed_between_a_replaces_look_and_its_lock_is_added_again(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``users add --replace`` finds the name taken (its insert does nothing), and before it
    locks that row ``users remove`` of the same user commits from another terminal: the
    replace adds the user anew, with a code for anything else (it raised ``NoResultFound``).
    PostgreSQL only: on SQLite the replace holds the store's one write lock, so the removal
    cannot come in between. The removal is made to commit at exactly that point."""
    store = open_store(postgres_url)
    try:
        accounts.add_user(store, "ann", "operator", "first password 1")
        select_first = accounts.select
        replacing = threading.get_ident()
        removed: list[object] = []

        def between(*args: object) -> object:
            # the replace's first select (its lock of the taken name): the removal commits first
            if threading.get_ident() == replacing and not removed:
                removed.append(None)
                worker = threading.Thread(
                    target=lambda: removed.append(accounts.remove_user(store, "ann"))
                )
                worker.start()
                worker.join(timeout=60)
            return select_first(*args)

        monkeypatch.setattr(accounts, "select", between)
        accounts.add_user(store, "ann", "admin", "second password 2", replace=True)
        monkeypatch.setattr(accounts, "select", select_first)
        assert removed[1:] and removed[1]["removed"] is True  # type: ignore[index]
        assert [(u["name"], u["role"]) for u in accounts.list_users(store)] == [("ann", "admin")]
    finally:
        store.close()


def test_operators_retrying_and_withdrawing_one_failed_row_at_once_agree(
    store: Store, tmp_path: Path
) -> None:
    """``outbox retry`` and ``outbox withdraw`` of the same failed row from two places at once
    (CLI and console): a row withdrawn is never sent, so once a withdrawal succeeded the row
    stays withdrawn (a retry that read it as failed before must not make it due again), and a
    failed row is retried once, with one history event."""
    settings = make_settings(tmp_path)
    for round_ in range(ROUNDS):
        item = queue.Outgoing(
            partner="buyer",
            connector="to-buyer",
            kind="Invoice",
            doc_number=f"INV-{round_}",
            payload=b"<Invoice/>",
            filename=f"INV-{round_}.xml",
        )
        with store.session() as session:
            row_id = queue.enqueue(session, item, settings)
        with store.connect() as conn:
            c = outbox.c
            conn.execute(update(outbox).where(c.id == row_id).values(state=queue.FAILED))

        def act(n: int, row_id: int = row_id) -> str:
            try:
                if n % 2:
                    queue.withdraw(store, [row_id], actor=f"op{n}", reason="wrong order")
                    return "withdrawn"
                queue.retry(store, [row_id], actor=f"op{n}")
            except GatewayError as exc:
                return exc.code.value
            return "retried"

        got = at_once(act)
        assert set(got) <= {"withdrawn", "retried", ErrorCode.NOT_FOUND.value}, got
        with store.connect() as conn:
            state = conn.scalar(select(outbox.c.state).where(outbox.c.id == row_id))
            events = dict.fromkeys(("outbox.retried", "outbox.withdrawn"), 0)
            for event in conn.scalars(select(history.c.event).where(history.c.event.in_(events))):
                events[event] += 1
        assert got.count("retried") <= 1 and got.count("withdrawn") <= 1, got
        assert events == {
            "outbox.retried": got.count("retried"),
            "outbox.withdrawn": got.count("withdrawn"),
        }, (got, events)
        if "withdrawn" in got:
            assert state == queue.WITHDRAWN, (got, state)
        with store.connect() as conn:  # the next round counts its own events
            conn.execute(history.delete().where(history.c.event.in_(list(events))))


def test_operators_dismissing_and_redriving_one_failed_message_at_once_agree(
    gateway: Gateway,
) -> None:
    """``messages dismiss`` and ``messages redrive`` of the same failed message from several
    places at once: it is dismissed once (one history event), and a dismissed message is
    never redriven (a redrive that read it as failed before must not take it back)."""
    store = gateway.store
    for round_ in range(ROUNDS):
        envelope = Envelope(b"not xml", "cli", f"broken-{round_}", "broken.xml")
        [message_id] = intake(store, [envelope])
        with store.connect() as conn:
            c = messages.c
            conn.execute(update(messages).where(c.id == message_id).values(state="failed"))

        def act(n: int, message_id: int = message_id) -> str:
            try:
                if n % 2:
                    gateway.redrive([message_id], actor=f"op{n}")
                    return "redriven"
                gateway.dismiss(message_id, f"reason {n}", actor=f"op{n}")
            except GatewayError as exc:
                return exc.code.value
            return "dismissed"

        got = at_once(act)
        assert set(got) <= {"dismissed", "redriven", ErrorCode.NOT_ALLOWED.value}, got
        assert got.count("dismissed") <= 1, got
        with store.connect() as conn:
            state = conn.scalar(select(messages.c.state).where(messages.c.id == message_id))
            h = history.c
            events = list(
                conn.scalars(
                    select(h.event)
                    .where(h.message_id == message_id, h.event.startswith("message."))
                    .order_by(h.id)
                )
            )
        assert events.count("message.dismissed") == got.count("dismissed"), (got, events)
        if "dismissed" in got:
            assert state == "dismissed", (got, events)


def _failed(store: Store, payload: bytes, ref: str) -> int:
    """``payload`` received and marked failed (an order: as if its partner was unknown until a
    fix, a redrive processes it; "not xml" fails again)."""
    [message_id] = intake(store, [Envelope(payload, "t", ref, "m.xml")])
    with store.connect() as conn:
        conn.execute(update(messages).where(messages.c.id == message_id).values(state="failed"))
    return message_id


@contextmanager
def _gateways(settings: Settings, urls: list[str]) -> Iterator[list[Gateway]]:
    """A gateway on each of ``urls``, each with an engine of its own (as separate processes)."""
    gateways = [Gateway(settings, open_store(url)) for url in urls]
    try:
        yield gateways
    finally:
        for gateway in gateways:
            gateway.store.close()


def _message_events(store: Store, message_id: int) -> list[str]:
    with store.connect() as conn:
        h = history.c
        query = select(h.event).where(
            h.message_id == message_id,
            h.event.startswith("message."),
            h.event != "message.received",
        )
        return list(conn.scalars(query.order_by(h.id)))


def _answers(store: Store, message_id: int) -> int:
    """Outbox rows caused by the message (the buyer's Order Response: ``auto: accept``)."""
    with store.connect() as conn:
        o, m = outbox.c, messages.c
        order = select(m.order_id).where(m.id == message_id).scalar_subquery()
        return int(conn.scalar(select(func.count()).where(o.order_id == order)) or 0)


def test_operators_redriving_one_message_at_once_redrive_and_process_it_once(
    database_url: str, tmp_path: Path
) -> None:
    """``messages redrive ID`` of the same failed message by operators on several gateways at
    once (each its own engine, as separate processes): one redrives it, with one
    ``message.redriven`` and one processing (one outcome, one Order Response queued); the
    others are told NOT_ALLOWED. Before, each one that waited for the first one's row lock
    found the message back in ``received`` and redrove it again (on SQLite processing it again
    too: the next one found it ended and redrivable)."""
    settings = make_settings(tmp_path, auto="accept")
    with _gateways(settings, [database_url] * RACERS) as gateways:
        store = gateways[0].store
        for round_ in range(ROUNDS):
            message_id = _failed(store, f.order(f"PO-R{round_}"), f"PO-R{round_}")

            def act(n: int, message_id: int = message_id) -> str:
                try:
                    return str(gateways[n].redrive([message_id], actor=f"op{n}"))
                except GatewayError as exc:
                    return exc.code.value

            got = at_once(act)
            refused = [ErrorCode.NOT_ALLOWED.value] * (RACERS - 1)
            assert sorted(got) == sorted([str([message_id]), *refused]), got
            events = _message_events(store, message_id)
            assert events == ["message.redriven", "message.processed"], (got, events)
            assert _answers(store, message_id) == 1, got


def test_operators_redriving_all_failed_messages_at_once_redrive_each_once(
    database_url: str, tmp_path: Path
) -> None:
    """``messages redrive --state failed`` by several operators at once: each message is
    redriven by one of them (the lists they return share no id and together hold all), once,
    and processed once; a message another took is not an error for a redrive by state."""
    settings = make_settings(tmp_path, auto="accept")
    with _gateways(settings, [database_url] * RACERS) as gateways:
        store = gateways[0].store
        for round_ in range(ROUNDS):
            numbers = [f"PO-B{round_}-{n}" for n in range(3)]
            ids = [_failed(store, f.order(number), number) for number in numbers]
            got = at_once(lambda n: gateways[n].redrive(state="failed", actor=f"op{n}"))
            assert all(isinstance(each, list) for each in got), got
            redriven = [mid for each in got for mid in each]
            assert sorted(redriven) == ids, got
            for message_id in ids:
                events = _message_events(store, message_id)
                assert events == ["message.redriven", "message.processed"], (got, events)
                assert _answers(store, message_id) == 1, got


def test_a_redrive_that_finds_the_message_redriven_since_it_looked_leaves_it(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Forced: operator B's redrive has read message M as failed; operator A's whole redrive of
    M (on another gateway) commits before B's processing transaction, and M fails again. B
    finds M changed since its look (a new attempt): NOT_ALLOWED, M redriven and processed
    once. Before, B had taken M back to ``received`` before A came, so A redrove it a second
    time."""
    from edi_gateway import app as app_module

    with _gateways(make_settings(tmp_path), [database_url] * 2) as (first, second):
        message_id = _failed(first.store, b"not xml", "broken")
        real = app_module.process_messages
        others: list[list[int]] = []

        def after_another(*args: Any, **kwargs: Any) -> dict[int, str]:
            if not others:
                others.append([])  # the other operator's redrive runs the real one
                others[0] = second.redrive([message_id], actor="a")
            return real(*args, **kwargs)

        monkeypatch.setattr(app_module, "process_messages", after_another)
        with pytest.raises(GatewayError) as refused:
            first.redrive([message_id], actor="b")
        assert refused.value.code is ErrorCode.NOT_ALLOWED
        assert f"{message_id} (now failed)" in refused.value.message
        assert others == [[message_id]]
        events = _message_events(first.store, message_id)
        assert events == ["message.redriven", "message.failed"], events


def test_a_redrive_while_another_redrive_processes_the_message_does_not_wait_for_it(
    postgres_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Forced on PostgreSQL: operator B redrives message M while operator A's redrive of M is
    in its processing transaction (M's row locked, M taken back to ``received`` but not
    committed). B reads M as failed, finds its row locked and leaves it to A at once:
    NOT_ALLOWED; M redriven and processed once. B's connections give up on a lock after 5 s:
    before, B's redrive waited for A's row lock (forever here: A waits for B in this thread)."""
    from edi_gateway.pipeline import process as process_module

    impatient = f"{postgres_url}?options=-c%20lock_timeout%3D5000"
    with _gateways(make_settings(tmp_path), [postgres_url, impatient]) as (first, second):
        message_id = _failed(first.store, b"not xml", "broken")
        real = process_module._examine
        told: list[str] = []

        def meanwhile(*args: Any, **kwargs: Any) -> None:
            if not told:
                told.append("")  # B's own processing examines with the real one
                try:
                    told[0] = str(second.redrive([message_id], actor="b"))
                except GatewayError as exc:
                    told[0] = exc.code.value
                except OperationalError as exc:
                    told[0] = type(exc.orig).__name__
            real(*args, **kwargs)

        monkeypatch.setattr(process_module, "_examine", meanwhile)
        assert first.redrive([message_id], actor="a") == [message_id]
        assert told == [ErrorCode.NOT_ALLOWED.value]
        events = _message_events(first.store, message_id)
        assert events == ["message.redriven", "message.failed"], events


def _between_look_and_redrive(
    monkeypatch: pytest.MonkeyPatch, other: Callable[[], object]
) -> list[object]:
    """``other()`` run once, after a redrive's look and before its processing transaction
    (the moment another gateway's work commits in between); what it returned."""
    from edi_gateway import app as app_module

    real = app_module.process_messages
    done: list[object] = []

    def after_another(*args: Any, **kwargs: Any) -> dict[int, str]:
        if not done:
            done.append(None)  # the other's own processing runs the real one
            done[0] = other()
        return real(*args, **kwargs)

    monkeypatch.setattr(app_module, "process_messages", after_another)
    return done


def test_a_redrive_of_a_received_message_another_gateway_processes_meanwhile_leaves_it(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Forced (review): an operator redrives a message still ``received`` (a stuck one) on
    gateway B; between B's look and B's processing, gateway A's normal processing takes it.
    B finds it changed: NOT_ALLOWED, naming its state; processed once, never redriven, one
    Order Response queued."""
    settings = make_settings(tmp_path, auto="accept")
    with _gateways(settings, [database_url] * 2) as (first, second):
        [message_id] = intake(first.store, [Envelope(f.order("PO-N1"), "t", "PO-N1", "m.xml")])
        done = _between_look_and_redrive(monkeypatch, lambda: second._process_stored([message_id]))
        with pytest.raises(GatewayError) as refused:
            first.redrive([message_id], actor="b")
        assert done == [{message_id: "processed"}]
        assert refused.value.code is ErrorCode.NOT_ALLOWED
        assert f"{message_id} (now processed)" in refused.value.message
        assert _message_events(first.store, message_id) == ["message.processed"]
        assert _answers(first.store, message_id) == 1


def test_a_redrive_of_an_orphan_whose_order_arrives_meanwhile_leaves_it_attached(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, policy: Policy
) -> None:
    """Forced (review): an operator redrives an orphan invoice on gateway B; between B's look
    and B's processing, its order is processed on gateway A, which attaches the invoice. B
    finds it changed: NOT_ALLOWED; the invoice is attached once and never redriven (its
    documents were not deleted and made again)."""
    with _gateways(make_settings(tmp_path), [database_url] * 2) as (first, second):
        invoice_id, order_id, _ = _an_orphan_invoice_and_its_order(first.store, policy, "RO")
        done = _between_look_and_redrive(monkeypatch, lambda: second._process_stored([order_id]))
        with pytest.raises(GatewayError) as refused:
            first.redrive([invoice_id], actor="b")
        assert done == [{order_id: "processed"}]
        assert refused.value.code is ErrorCode.NOT_ALLOWED
        assert _states(first.store, [invoice_id]) == ["processed"]
        assert "message.redriven" not in _message_events(first.store, invoice_id)
        with first.store.connect() as conn:
            d = documents.c
            rows = conn.execute(select(d.state).where(d.message_id == invoice_id)).all()
        assert [state for (state,) in rows] == ["attached"], rows


def test_a_password_replaced_while_the_old_one_signs_in_leaves_no_session_of_it(
    store: Store,
) -> None:
    """``users add --replace`` ends the user's sessions; a sign-in with the old password that
    was checked at the same moment must not leave a session behind it (it verified a password
    that no longer holds, and was answered before or refused)."""
    policy = accounts.Policy(
        idle=timedelta(hours=8), lifetime=timedelta(hours=24), max_failures=50, window=HOUR
    )
    for round_ in range(ROUNDS):
        name = f"bob{round_}"
        accounts.add_user(store, name, "operator", "the old password")

        def act(n: int, name: str = name) -> str:
            try:
                if n % 2:
                    accounts.add_user(store, name, "admin", "the new password", replace=True)
                    return "replaced"
                accounts.sign_in(store, name, "the old password", f"10.0.0.{n}", policy)
            except GatewayError as exc:
                return exc.code.value
            return "signed in"

        got = at_once(act)
        with store.connect() as conn:
            left = conn.scalar(
                select(func.count())
                .select_from(console_sessions.join(users))
                .where(users.c.name == name)
            )
        assert left == 0, got


def test_copies_of_one_order_processed_on_several_gateways_at_once_make_one_order(
    store: Store, policy: Policy
) -> None:
    """Sound already (the locks on the bytes and on the numbers, taken before any check, in
    ``pipeline.process``): the same order arriving on several gateways, twice as the same
    bytes and twice changed, is one order; the same bytes again are duplicates, other bytes
    under its number an ID conflict, and nothing is refused by the store."""
    for round_ in range(ROUNDS):
        number = f"PO-R{round_}"
        payloads = [f.order(number), f.order(number)] + [
            f.order(number, f.items(3, quantity=str(20 + n))) for n in range(RACERS - 2)
        ]
        ids = [
            intake(store, [Envelope(p, f"folder:in{n}", f"{number}-{n}", "o.xml")])[0]
            for n, p in enumerate(payloads)
        ]
        got = at_once(lambda n, ids=ids: process_messages(store, policy, [ids[n]])[ids[n]])
        assert got.count("processed") == 1, got
        assert set(got) <= {"processed", "duplicate", "failed"}, got
        with store.connect() as conn:
            c = messages.c
            rows = conn.execute(select(c.id, c.state, c.error_code).where(c.id.in_(ids))).all()
            made = conn.scalar(select(func.count()).where(orders.c.order_number == number))
        assert made == 1, rows
        assert [state for _, state, _ in rows].count("processed") == 1, rows
        for _, state, code in rows:
            assert state in ("duplicate", "processed") or code == "DUPLICATE_ID_CONFLICT", rows


def test_identical_copies_processed_at_once_in_any_order_are_one_order_and_duplicates(
    store: Store, policy: Policy
) -> None:
    """The same bytes arriving on several gateways, each copy processed at once by its own:
    whichever goes first holds the document, every other copy is its ``duplicate``, whatever
    their message IDs (never a DUPLICATE_ID_CONFLICT "with different content", which a copy
    with a smaller ID processed after one with a larger got: docs/adr/0004 amendment)."""
    for round_ in range(ROUNDS):
        number = f"PO-S{round_}"
        payload = f.order(number)
        ids = [
            intake(store, [Envelope(payload, f"folder:in{n}", f"{number}-{n}", "o.xml")])[0]
            for n in range(RACERS)
        ]
        # the later copies first: the earliest goes last, behind the others' locks
        got = at_once(lambda n, ids=ids: process_messages(store, policy, [ids[-1 - n]]))
        with store.connect() as conn:
            c = messages.c
            rows = conn.execute(select(c.state, c.error_code).where(c.id.in_(ids))).all()
            made = conn.scalar(select(func.count()).where(orders.c.order_number == number))
        assert made == 1, (got, rows)
        states = sorted(state for state, _ in rows)
        assert states == ["duplicate"] * (RACERS - 1) + ["processed"], (got, rows)


def test_a_credit_note_and_its_invoice_processed_at_once_both_attach(
    store: Store, policy: Policy
) -> None:
    """A credit note naming only invoice N, and N itself, on two gateways at once: each takes
    the lock of the number the credit note waits for, so the second to go finds the first
    (the credit note attaches through N, or N's arrival attaches the waiting credit note)."""
    for round_ in range(ROUNDS):
        order, number = f"PO-C{round_}", f"INV-C{round_}"
        receive_order = Envelope(f.order(order, f.items(1, "40")), "t", f"{order}-o", "o.xml")
        process_messages(store, policy, intake(store, [receive_order]))
        credit = _credit_note(f"CN-C{round_}", number)
        payloads = [credit, f.invoice(number, order, [("1", "40", "2.25")])]
        ids = [
            intake(store, [Envelope(p, f"folder:in{n}", f"{number}-{n}", "d.xml")])[0]
            for n, p in enumerate(payloads)
        ]
        got = at_once(lambda n, ids=ids: process_messages(store, policy, [ids[n]])[ids[n]], 2)
        with store.connect() as conn:
            c = messages.c
            states = conn.scalars(select(c.state).where(c.id.in_(ids))).all()
        assert states == ["processed", "processed"], (got, states)


def _meanwhile(
    store: Store,
    policy: Policy,
    stored: int,
    others: list[int],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Process message ``stored`` and, once it has correlated (read what it found), process
    ``others`` on another "gateway"; ``stored`` commits only once they are done, or after 2 s
    (when they wait for one of its locks)."""
    from edi_gateway.pipeline import correlate as correlate_module

    real = correlate_module.correlate
    read, others_done = threading.Event(), threading.Event()

    def held(session: Any, ref: Any, document: Any) -> Any:
        outcome = real(session, ref, document)
        read.set()
        others_done.wait(2)
        return outcome

    monkeypatch.setattr(correlate_module, "correlate", held)
    storing = threading.Thread(target=process_messages, args=(store, policy, [stored]))
    storing.start()
    assert read.wait(30)
    monkeypatch.setattr(correlate_module, "correlate", real)
    process_messages(store, policy, others)
    others_done.set()
    storing.join()


def _an_orphan_invoice_and_its_order(
    store: Store, policy: Policy, tag: str
) -> tuple[int, int, bytes]:
    """Invoice INV-<tag> processed before order PO-<tag> (an orphan), the order received and
    not processed; their message ids, and a credit note naming only the invoice."""
    invoice = Envelope(f.invoice(f"INV-{tag}", f"PO-{tag}", [("1", "40", "2.25")]), "t", "i", "")
    [invoice_id] = intake(store, [invoice])
    assert process_messages(store, policy, [invoice_id])[invoice_id] == "orphan"
    order = Envelope(f.order(f"PO-{tag}", f.items(1, "40")), "t", "o", "o.xml")
    [order_id] = intake(store, [order])
    return invoice_id, order_id, _credit_note(f"CN-{tag}", f"INV-{tag}")


def _states(store: Store, ids: list[int]) -> list[str]:
    with store.connect() as conn:
        c = messages.c
        return list(conn.scalars(select(c.state).where(c.id.in_(ids)).order_by(c.id)))


def _behind(store: Store, ids: list[int]) -> list[str]:
    """The messages of ``ids`` not processed, each with its state and document, so that a
    failure says which one stayed behind."""
    with store.connect() as conn:
        c = messages.c
        rows = conn.execute(
            select(c.state, c.doc_kind, c.doc_id, c.error_code, c.error_detail)
            .where(c.id.in_(ids), c.state != "processed")
            .order_by(c.id)
        )
        return [" ".join(map(str, row)) for row in rows]


@pytest.mark.parametrize("named", [False, True], ids=["no-order-ref", "unknown-order-ref"])
def test_a_credit_note_stored_while_its_orphan_invoices_order_arrives_attaches(
    store: Store, policy: Policy, monkeypatch: pytest.MonkeyPatch, named: bool
) -> None:
    """Invoice N came before its order (an orphan). A credit note naming only N is being
    stored (it read N as an orphan, so it waits for N) while N's order arrives on another
    gateway and attaches N: that gateway waits for N's lock, which the credit note's holds,
    then finds the credit note and attaches it (it stayed an orphan for good on PostgreSQL:
    found by the review of 2026-12-05). The interleaving is forced: the credit note's gateway
    commits only once the order's gateway has finished, or after 2 s. ``named``: the credit
    note also names an order number no order has, so it waits for N as its preceding invoice
    (``documents.preceding_ref``); its batch holds that number's lock, not the order's."""
    invoice, order, credit = _an_orphan_invoice_and_its_order(store, policy, "W")
    if named:
        credit = _credit_note("CN-W", "INV-W", order="REF-W")
    [credit_id] = intake(store, [Envelope(credit, "t", "c", "c.xml")])
    # the credit note finds no order (N is an orphan as far as it can see) while N's arrives
    _meanwhile(store, policy, credit_id, [order], monkeypatch)
    assert _states(store, [invoice, order, credit_id]) == ["processed"] * 3


@pytest.mark.parametrize("through", ["invoice", "credit note", "bill naming an unknown order"])
def test_a_document_whose_chain_is_attached_between_its_look_and_its_locks_attaches(
    postgres_url: str, policy: Policy, monkeypatch: pytest.MonkeyPatch, through: str
) -> None:
    """A credit note naming only invoice N looks for its order and finds N an orphan. Before
    it takes the locks of N's chain, N's order arrives on another gateway, which attaches N,
    finds no waiter (the credit note is not committed) and commits; it holds none of the
    credit note's numbers, so nothing makes it wait. Taking the chain's locks, the credit note
    then finds no orphan left to lock. It stayed an orphan for good: it looked again only when
    the chain had locks to take (one in some runs of
    test_chains_processed_by_four_gateways_at_once_all_attach_and_count_once, in CI). Also
    through a credit note naming only a credit note of N (two hops), and for a credit note
    naming N and an order number no order has (N's order decides: it waited for that number
    alone, and looked for its order once)."""
    from edi_gateway.pipeline import correlate as correlate_module

    store = open_store(postgres_url)
    try:
        invoice, order, credit = _an_orphan_invoice_and_its_order(store, policy, "L")
        first = [invoice]
        if through == "credit note":  # CN-L waits for INV-L; the one stored now waits for CN-L
            [middle] = intake(store, [Envelope(credit, "t", "m", "m.xml")])
            assert process_messages(store, policy, [middle]) == {middle: "orphan"}
            first.append(middle)
            credit = _credit_note("CN-L2", "CN-L", "1")
        elif through == "bill naming an unknown order":
            credit = _credit_note("CN-L", "INV-L", order="REF-L")
        [credit_id] = intake(store, [Envelope(credit, "t", "c", "c.xml")])
        real = correlate_module._lock_chain
        arrived: list[dict[int, str]] = []

        def order_arrives_first(session: Any, document: Any) -> bool:
            if not arrived:  # on another gateway, to its end: it waits for nothing of ours
                meanwhile = threading.Thread(
                    target=lambda: arrived.append(process_messages(store, policy, [order]))
                )
                meanwhile.start()
                meanwhile.join(30)
                assert arrived == [{order: "processed"}]
            return real(session, document)

        monkeypatch.setattr(correlate_module, "_lock_chain", order_arrives_first)
        assert process_messages(store, policy, [credit_id]) == {credit_id: "processed"}
        assert _behind(store, [*first, order, credit_id]) == []
    finally:
        store.close()


def test_a_bill_stored_while_its_preceding_invoice_arrives_attaches(
    store: Store, policy: Policy, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A credit note naming an order number no order has and invoice N, not received yet, is
    being stored (it found nothing) while N arrives on another gateway, attaches to its order
    and looks for what waits for N before the credit note is committed. The credit note's
    batch holds N's number (``process._numbers``: its preceding invoice), so N's gateway waits
    for it and then finds the credit note waiting. Forced as above."""
    order = Envelope(f.order("PO-P", f.items(1, "40")), "t", "o", "o.xml")
    [order_id] = intake(store, [order])
    assert process_messages(store, policy, [order_id]) == {order_id: "processed"}
    credit = Envelope(_credit_note("CN-P", "INV-P", order="REF-P"), "t", "c", "c.xml")
    invoice = Envelope(f.invoice("INV-P", "PO-P", [("1", "40", "2.25")]), "t", "i", "i.xml")
    credit_id, invoice_id = intake(store, [credit, invoice])
    _meanwhile(store, policy, credit_id, [invoice_id], monkeypatch)
    assert _behind(store, [credit_id, invoice_id]) == []
    with store.connect() as conn:
        assert conn.scalar(select(order_lines.c.qty_credited)) == 5


@pytest.mark.parametrize("named", [False, True], ids=["no-order-ref", "unknown-order-ref"])
def test_two_credit_notes_of_one_order_processed_at_once_both_count(
    store: Store, policy: Policy, monkeypatch: pytest.MonkeyPatch, named: bool
) -> None:
    """Two credit notes naming only their invoices (two invoices of one order) find the order
    through them, and their batches lock no number of it: each could derive the line from its
    own snapshot and the last to commit win (credited 5 or 3, not 8; seen with neither the
    order's lock nor the order row's update that serialised them by chance). The order's
    number is locked once found, so the second waits and counts both. Forced: the first
    commits only once the second has finished, or after 2 s. ``named``: each also names an
    order number no order has (its own: their batches share no lock), found nothing by, so
    the invoice's order decides (``correlate._with_preceding``) under the same lock."""
    order = Envelope(f.order("PO-K", f.items(1, "40")), "t", "o", "o.xml")
    invoices = [
        Envelope(f.invoice(f"INV-K{n}", "PO-K", [("1", "20", "2.25")]), "t", f"i{n}", "i.xml")
        for n in (1, 2)
    ]
    ids = intake(store, [order, *invoices])
    assert set(process_messages(store, policy, ids).values()) == {"processed"}
    credits = [
        Envelope(
            _credit_note(f"CN-K{n}", f"INV-K{n}", quantity, f"REF-K{n}" if named else None),
            *("t", f"c{n}", "c.xml"),
        )
        for n, quantity in ((1, "5"), (2, "3"))
    ]
    first, second = intake(store, credits)
    _meanwhile(store, policy, first, [second], monkeypatch)  # the first has credited 5
    assert _states(store, [first, second]) == ["processed", "processed"]
    with store.connect() as conn:
        credited = conn.scalar(select(order_lines.c.qty_credited))
    assert credited == 8


def _in_a_circle(store: Store, call: Callable[[], T], held: str, asked: str) -> list[T]:
    """``call()`` (a transaction taking number locks) while another transaction holds number
    ``held``; once the call waits for it, the other asks for ``asked`` (one the call holds),
    closing a circle. The other's deadlock_timeout is long, so the call's transaction is the
    one PostgreSQL rolls back; the other gets ``asked`` then and ends. What the call returned
    (nothing if it raised)."""
    outcome: list[T] = []
    with store.engine.connect() as other:
        other.execute(text("SET deadlock_timeout = '60s'"))
        xact_locks(other, SAME_NUMBER, [held])
        running = threading.Thread(target=lambda: outcome.append(call()))
        running.start()
        assert _waits_for_number(other, held), f"the call never waited for {held}"
        xact_locks(other, SAME_NUMBER, [asked])  # granted once the call is rolled back
        other.rollback()
    running.join(60)
    return outcome


def _processing(store: Store, policy: Policy, message: int) -> Callable[[], dict[int, str]]:
    return lambda: process_messages(store, policy, [message])


def test_a_batch_in_a_circle_of_lock_waits_is_processed_again(
    postgres_url: str, policy: Policy, caplog: pytest.LogCaptureFixture
) -> None:
    """A document whose orphan would wait through an orphan (a credit note naming only an
    invoice that waits for its order) locks that order's number after the batch's own locks
    (`correlate._lock_chain`), so a transaction holding the order number and waiting for one of
    the batch's closes a circle. PostgreSQL breaks it by rolling one back (deadlock_detected);
    when that is the batch, it is processed again at once, not left for the next round
    (`ingest` ended as STORE_UNAVAILABLE).

    Forced: invoice INV-D is an orphan waiting for PO-D; another transaction holds PO-D; the
    credit note CN-D's batch locks CN-D and INV-D and waits for PO-D; the other then asks for
    CN-D. Its own deadlock_timeout is long, so the batch is the one rolled back."""
    store = open_store(postgres_url)
    try:
        invoice, order, credit = _an_orphan_invoice_and_its_order(store, policy, "D")
        [credit_id] = intake(store, [Envelope(credit, "t", "c", "c.xml")])
        processing = _processing(store, policy, credit_id)
        assert _in_a_circle(store, processing, "PO-D", "CN-D") == [{credit_id: "orphan"}]
        assert "processing 1 message(s) waited in a circle" in caplog.text
        assert _states(store, [invoice, order, credit_id]) == ["orphan", "received", "orphan"]
        assert process_messages(store, policy, [order]) == {order: "processed"}
        assert _states(store, [invoice, order, credit_id]) == ["processed"] * 3
    finally:
        store.close()


def test_a_circle_of_lock_waits_reads_as_a_busy_store(postgres_url: str) -> None:
    """A transaction PostgreSQL rolls back to break a circle of waits (where nothing retries
    it: an operator's command) is told as STORE_BUSY, try again, not as a store that cannot be
    used. A real circle: two connections each hold one number and ask for the other's."""
    from sqlalchemy.exc import OperationalError

    from edi_gateway.store.db import deadlocked, unavailable

    store = open_store(postgres_url)
    try:
        with store.engine.connect() as first, store.engine.connect() as second:
            first.execute(text("SET deadlock_timeout = '60s'"))
            second.execute(text("SET deadlock_timeout = '100ms'"))
            xact_locks(first, SAME_NUMBER, ["A"])
            xact_locks(second, SAME_NUMBER, ["B"])
            waiting = threading.Thread(target=xact_locks, args=(first, SAME_NUMBER, ["B"]))
            waiting.start()
            assert _waits_for_number(second, "B")  # the first
            with pytest.raises(OperationalError) as broken:
                xact_locks(second, SAME_NUMBER, ["A"])
            second.rollback()
            waiting.join(30)
            first.rollback()
        assert deadlocked(broken.value)
        told = unavailable(broken.value)
        assert told is not None and told.code is ErrorCode.STORE_BUSY, told
        assert "try again" in str(told)
    finally:
        store.close()


def test_a_bulk_batch_in_a_circle_of_lock_waits_is_issued_again(
    postgres_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A bulk batch locks its orders' numbers in one call, and processing locks the order of a
    chain after its own numbers, so the two can close a circle and PostgreSQL may roll the
    batch back. The batch is issued again, not reported to the operator as STORE_BUSY ("try
    again"), and each order is answered once. Forced: another transaction holds the number
    the batch takes last; once the batch waits for it, the other asks for the first."""
    from edi_gateway.outbound import bulk
    from edi_gateway.outbound.respond import Decision
    from edi_gateway.store.queries import Filters

    store = open_store(postgres_url)
    try:
        gateway = Gateway(make_settings(tmp_path), store)
        for number in ("PO-B1", "PO-B2"):
            receive(gateway, f.order(number, f.items(1)))
        chosen = bulk.filtered(store, Filters(state="received"))
        items = [bulk.Item(order_id, Decision("AP")) for order_id in chosen]
        first, last = sorted(["PO-B1", "PO-B2"], key=_hash32)  # the order they are locked in

        def call() -> list[bulk.Outcome]:
            return bulk.run(store, gateway.settings, "respond", items, actor="ops", batch_size=2)

        [outcomes] = _in_a_circle(store, call, last, first)
        assert [o.state for o in outcomes] == ["issued", "issued"]
        assert "bulk respond of 2 order(s) waited in a circle" in caplog.text
        with store.connect() as conn:
            sent = select(outbox.c.doc_number, func.count()).group_by(outbox.c.doc_number)
            assert sorted(count for _, count in conn.execute(sent)) == [1, 1]
    finally:
        store.close()


def test_an_answer_in_a_circle_of_lock_waits_is_issued_again(
    postgres_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A command issuing on one order (`respond`, `despatch`, `invoice`: `issuing.on_order`)
    holds the order's number while it writes the order's row; a transaction holding that row
    and then asking for the number closes a circle. Rolled back by PostgreSQL, the response is
    issued again, once. Forced: another transaction locks the order's row; once the response
    waits for it, the other asks for the order's number."""
    from edi_gateway.outbound.respond import Decision, respond

    store = open_store(postgres_url)
    try:
        gateway = Gateway(make_settings(tmp_path), store)
        receive(gateway, f.order("PO-R", f.items(1)))
        issued: list[Any] = []
        row = select(orders.c.id).where(orders.c.order_number == "PO-R").with_for_update()
        waits = text(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'transactionid' AND NOT granted"
        )
        with store.engine.connect() as other:
            other.execute(text("SET deadlock_timeout = '60s'"))
            other.execute(row)
            running = threading.Thread(
                target=lambda: issued.append(
                    respond(store, gateway.settings, "PO-R", Decision("AP"), actor="ops")
                )
            )
            running.start()
            for _ in range(600):
                if other.scalar(waits):
                    break
                time.sleep(0.05)
            else:
                pytest.fail("the response never waited for the order's row")
            xact_locks(other, SAME_NUMBER, ["PO-R"])  # granted once the response is rolled back
            other.rollback()
        running.join(60)
        assert [i.status for i in issued] == ["Accepted"]
        assert "issuing on order PO-R waited in a circle" in caplog.text
        with store.connect() as conn:
            assert conn.scalar(select(func.count()).select_from(outbox)) == 1
    finally:
        store.close()


def test_an_attach_by_hand_in_a_circle_of_lock_waits_is_done_again(
    postgres_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """`messages attach` locks the order's number and the orphan's numbers in one call (as
    processing would lock them), so it can close a circle with a batch that locks one of them
    later; rolled back by PostgreSQL, it attaches again instead of telling the operator to.
    Forced as above on the three numbers: order PO-H, invoice INV-H and the unknown order
    number it names."""
    store = open_store(postgres_url)
    try:
        gateway = Gateway(make_settings(tmp_path), store)
        receive(gateway, f.order("PO-H", f.items(1, "40")))
        invoice = receive(gateway, f.invoice("INV-H", "PO-X", [("1", "40", "2.25")]))
        assert _states(store, [invoice]) == ["orphan"]
        first, *_, last = sorted(["PO-H", "INV-H", "PO-X"], key=_hash32)

        def call() -> dict[str, Any]:
            return gateway.attach(invoice, "PO-H", actor="ops")

        [attached] = _in_a_circle(store, call, last, first)
        assert attached["state"] == "processed"
        assert "attaching message" in caplog.text and "waited in a circle" in caplog.text
        assert _states(store, [invoice]) == ["processed"]
        with store.connect() as conn:
            assert conn.scalar(select(order_lines.c.qty_invoiced)) == 40
            events = select(func.count()).where(history.c.event == "message.attached")
            assert conn.scalar(events) == 1
    finally:
        store.close()


def _credit_note(number: str, of: str, quantity: str = "5", order: str | None = None) -> bytes:
    """A credit note naming the document ``of`` (an invoice, or a credit note), and only it
    unless ``order`` gives an order number too."""
    credited = [("1", quantity, "2.25")]
    return f.invoice(number, order, credited, root="CreditNote", type_code="381", billing_ref=of)


def _waits_for_number(conn: Connection, number: str) -> bool:
    """Whether a transaction waits for ``number``'s lock, asked until one does (30 s)."""
    waits = text(
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted "
        "AND classid = :c AND objid = :o"
    )
    key = {"c": PG_CLASS + SAME_NUMBER, "o": _hash32(number) & 0xFFFFFFFF}
    for _ in range(600):
        if conn.scalar(waits, key):
            return True
        time.sleep(0.05)
    return False


def _session_lock(conn: Connection, number: str, *, unlock: bool = False) -> None:
    """Take (or give back) ``number``'s lock for the session, across transactions."""
    call = "pg_advisory_unlock" if unlock else "pg_advisory_lock"
    conn.execute(
        text(f"SELECT {call}(:c, :h)"), {"c": PG_CLASS + SAME_NUMBER, "h": _hash32(number)}
    )


def test_the_third_of_a_chain_stored_while_its_first_documents_order_arrives_attaches(
    postgres_url: str, policy: Policy, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Invoice N and credit note C1 (naming N) are orphans; credit note C2 naming only C1 is
    being stored (it read C1 as an orphan) while N's order arrives on another gateway, which
    attaches N, then C1, then looks for what waits for C1. C2's gateway follows the chain
    C1 -> N -> PO-3 and holds PO-3's lock too (`correlate._lock_chain`), so the two go one
    after the other and C2 attaches (at 108e80d it stayed an orphan). Forced as above."""
    store = open_store(postgres_url)
    try:
        invoice, first, order = intake(
            store,
            [
                Envelope(f.invoice("INV-3", "PO-3", [("1", "40", "2.25")]), "t", "i", ""),
                Envelope(_credit_note("CN-3a", "INV-3"), "t", "c1", ""),
                Envelope(f.order("PO-3", f.items(1, "40")), "t", "o", "o.xml"),
            ],
        )
        assert process_messages(store, policy, [invoice, first]) == {
            invoice: "orphan",
            first: "orphan",
        }
        [second] = intake(store, [Envelope(_credit_note("CN-3b", "CN-3a", "1"), "t", "c2", "")])
        # C2 finds no order (C1 is an orphan as far as it can see) while N's order arrives
        _meanwhile(store, policy, second, [order], monkeypatch)
        assert _states(store, [invoice, first, order, second]) == ["processed"] * 4
    finally:
        store.close()


def test_a_batch_rolled_back_at_the_lock_of_an_order_found_through_a_document_counts_once(
    postgres_url: str, policy: Policy, caplog: pytest.LogCaptureFixture
) -> None:
    """The other late lock (`correlate._locked`: the order a credit note finds through its
    invoice) in a circle: the batch is rolled back and processed again, and what it wrote
    counts once (credited 5, one `document.attached`). Forced: another transaction holds
    PO-L; the credit note's batch (holding CN-L and INV-L) waits for it; the other then asks
    for INV-L, with a long deadlock_timeout of its own."""
    store = open_store(postgres_url)
    try:
        ids = intake(
            store,
            [
                Envelope(f.order("PO-L", f.items(1, "40")), "t", "o", "o.xml"),
                Envelope(f.invoice("INV-L", "PO-L", [("1", "20", "2.25")]), "t", "i", ""),
            ],
        )
        assert set(process_messages(store, policy, ids).values()) == {"processed"}
        [credit] = intake(store, [Envelope(_credit_note("CN-L", "INV-L"), "t", "c", "")])
        processing = _processing(store, policy, credit)
        assert _in_a_circle(store, processing, "PO-L", "INV-L") == [{credit: "processed"}]
        assert "processing 1 message(s) waited in a circle" in caplog.text
        with store.connect() as conn:
            assert conn.scalar(select(order_lines.c.qty_credited)) == 5
            events = conn.scalars(select(history.c.event).where(history.c.message_id == credit))
            assert sorted(events) == ["document.attached", "message.processed", "message.received"]
    finally:
        store.close()


def test_a_batch_rolled_back_at_every_try_stays_received_and_is_processed_next_time(
    postgres_url: str, policy: Policy
) -> None:
    """Three circles in a row: the call ends with the deadlock (what `ingest` reports as
    STORE_BUSY, the daemon as a store trouble), the credit note stays `received` with no start
    counted against it (it is not taken alone next time as if it had killed the process), and
    the next call processes it. Forced with session locks: another connection holds PO-E (the
    order the credit note's orphan invoice waits for) and, each time the batch waits for it,
    asks for CN-E (the batch's own) and gives it back."""
    from sqlalchemy.exc import OperationalError

    from edi_gateway.store.db import DEADLOCK_TRIES, deadlocked

    store = open_store(postgres_url)
    try:
        invoice, order, credit = _an_orphan_invoice_and_its_order(store, policy, "E")
        [credit_id] = intake(store, [Envelope(credit, "t", "c", "c.xml")])
        raised: list[Exception] = []

        def run() -> None:
            try:
                process_messages(store, policy, [credit_id])
            except OperationalError as exc:
                raised.append(exc)

        with store.engine.connect() as other:
            other.execution_options(isolation_level="AUTOCOMMIT")
            other.execute(text("SET deadlock_timeout = '60s'"))
            _session_lock(other, "PO-E")
            batch = threading.Thread(target=run)
            batch.start()
            for _ in range(DEADLOCK_TRIES):
                assert _waits_for_number(other, "PO-E")
                _session_lock(other, "CN-E")  # granted once the batch is rolled back
                _session_lock(other, "CN-E", unlock=True)
            batch.join(60)
            assert len(raised) == 1 and deadlocked(raised[0]), raised
            with store.connect() as conn:
                c = messages.c
                found = conn.execute(select(c.state, c.cut_off).where(c.id == credit_id)).one()
            assert tuple(found) == ("received", 0)
            _session_lock(other, "PO-E", unlock=True)
        assert process_messages(store, policy, [credit_id]) == {credit_id: "orphan"}
        assert process_messages(store, policy, [order]) == {order: "processed"}
        assert _states(store, [invoice, order, credit_id]) == ["processed"] * 3
    finally:
        store.close()


@pytest.mark.slow
def test_a_batch_of_orders_attaching_their_orphans_locks_at_most_max_keys_numbers(
    postgres_url: str, policy: Policy, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A transaction locks at most MAX_KEYS distinct keys per kind (store/leases.py: the lock
    table is shared and finite; PG_CHUNK keeps a batch's own keys under it). 250 orders whose
    suppliers' invoices came first, 8 each (a buyer's order feed that was down): the orders'
    batch locks the 250 order numbers and then, attaching, the 2,000 invoices' numbers. On a
    default server (max_locks_per_transaction 64, 100 connections) one transaction fails with
    "out of shared memory" (53200, a store trouble: the batch is never processed) somewhere
    between 8,000 and 16,000 keys, fewer while other transactions hold locks."""
    from edi_gateway.store import search

    store = open_store(postgres_url)
    try:
        orders, per = 250, 8
        invoices = [
            Envelope(
                f.invoice(f"INV-{o}-{k}", f"PO-{o}", [("1", "1", "2.25")]), "t", f"{o}-{k}", ""
            )
            for o in range(orders)
            for k in range(per)
        ]
        assert set(process_messages(store, policy, intake(store, invoices)).values()) == {"orphan"}
        arriving = intake(
            store,
            [
                Envelope(f.order(f"PO-{o}", f.items(1, "40")), "t", f"o{o}", "o.xml")
                for o in range(orders)
            ],
        )
        held: list[int] = []
        real = search.catch_up

        def counting(conn: Connection) -> None:  # the end of the batch's transaction
            mine = text(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' "
                "AND pid = pg_backend_pid() AND classid = :c"
            )
            held.append(int(conn.scalar(mine, {"c": PG_CLASS + SAME_NUMBER}) or 0))
            real(conn)

        monkeypatch.setattr(search, "catch_up", counting)
        assert set(process_messages(store, policy, arriving).values()) == {"processed"}
        assert held and max(held) <= MAX_KEYS, held
    finally:
        store.close()


def test_chains_processed_by_four_gateways_at_once_all_attach_and_count_once(
    postgres_url: str, policy: Policy
) -> None:
    """Four gateways (threads) take batches of 1 to 10 messages from one shuffled backlog of
    orders, invoices naming them, credit notes naming only an invoice, a credit note naming
    only a credit note, a credit note naming an invoice and an order number no order has
    (the invoice's order decides), despatch advices. Whatever the order of arrival and the
    interleaving, every message ends processed, every document is attached once and every
    order line counts each document once. A call PostgreSQL rolled back at every try ends
    with the deadlock and its messages stay received: they are processed afterwards, as the
    next round would.
    At 108e80d (or without `correlate._lock_chain`) a credit note or two stays an orphan in
    every run; circles of waits occur here now and then (rollbacks, processed again)."""
    rng = random.Random(12)
    store = open_store(postgres_url)
    try:
        orders = 0
        for round_ in range(3):
            payloads: list[bytes] = []
            for n in range(15):
                tag = f"{round_}-{n}"
                payloads += [
                    f.order(f"PO-{tag}", f.items(1, "40")),
                    f.invoice(f"IA-{tag}", f"PO-{tag}", [("1", "20", "2.25")]),
                    f.invoice(f"IB-{tag}", f"PO-{tag}", [("1", "10", "2.25")]),
                    _credit_note(f"CA-{tag}", f"IA-{tag}"),
                    _credit_note(f"CB-{tag}", f"IB-{tag}", "2"),
                    _credit_note(f"CC-{tag}", f"CA-{tag}", "1"),
                    _credit_note(f"CD-{tag}", f"IB-{tag}", "1", order=f"REF-{tag}"),
                    f.despatch_advice(f"DA-{tag}", f"PO-{tag}", [("1", "7")]),
                ]
            orders += 15
            rng.shuffle(payloads)
            backlog = [Envelope(p, "t", f"{round_}-{i}", "m.xml") for i, p in enumerate(payloads)]
            ids = intake(store, backlog)
            waiting = list(ids)
            taking = threading.Lock()

            def gateway(_: int, waiting: list[int] = waiting, taking: Any = taking) -> int:
                ended = 0
                while True:
                    with taking:
                        if not waiting:
                            return ended
                        size = rng.randint(1, 10)
                        batch, waiting[:size] = waiting[:size], []
                    try:
                        process_messages(store, policy, batch)
                    except OperationalError as exc:
                        assert deadlocked(exc), exc
                        ended += 1

            got = at_once(gateway)
            assert all(isinstance(n, int) for n in got), got
            process_messages(store, policy, ids)  # those a call left received
            assert _behind(store, ids) == []
        with store.connect() as conn:
            attached = conn.scalars(
                select(func.count())
                .where(history.c.event == "document.attached")
                .group_by(history.c.message_id)
            )
            assert set(attached) == {1}
            c = order_lines.c
            lines = conn.execute(select(c.qty_invoiced, c.qty_credited, c.qty_despatched))
            assert sorted(tuple(map(int, row)) for row in lines) == [(30, 9, 7)] * orders
    finally:
        store.close()


def test_a_failed_forward_retried_while_its_failure_is_noted_goes_on_queued(
    store: Store, tmp_path: Path
) -> None:
    """An operator retries a supplier's failed file at the moment a gateway notes that it
    failed (``note_deliveries``): the file is due again, so its order's forward must be
    ``queued`` (and later ``delivered``), never left ``failed`` behind a row that goes."""
    gw = forwarding(store, tmp_path, formats=["ubl"])
    for round_ in range(ROUNDS):
        number = f"PO-R{round_}"
        receive(gw, f.order(number))  # one file at once: its forward queued, its row pending
        with store.connect() as conn:
            o = outbox.c
            row_id = conn.scalar(select(func.max(o.id)))  # the order's file, just queued
            conn.execute(update(outbox).where(o.id == row_id).values(state=queue.FAILED))

        def act(n: int, row_id: int = row_id) -> str:
            if n % 2:
                try:
                    queue.retry(store, [row_id], actor=f"op{n}")
                except GatewayError as exc:
                    return exc.code.value
                return "retried"
            return str(note_deliveries(store))

        got = at_once(act)
        assert got.count("retried") == 1, got
        with store.connect() as conn:
            row_state = conn.scalar(select(outbox.c.state).where(outbox.c.id == row_id))
            fw = forwards.c
            last = conn.scalar(select(fw.state).order_by(fw.id.desc()).limit(1))
        assert (row_state, last) == (queue.PENDING, "queued"), got
