"""A bad message fails alone: whatever raises while one message is stored or reacted to, that
message ends ``failed`` with a stable code, nothing it wrote survives, and the rest of its batch
is processed as if it were not there. Run on SQLite and PostgreSQL (the ``store`` fixture)."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError

from edi_gateway.app import Gateway
from edi_gateway.envelope import Envelope
from edi_gateway.pipeline import correlate as correlate_module
from edi_gateway.pipeline import orders as orders_module
from edi_gateway.pipeline import process as process_module
from edi_gateway.pipeline.intake import intake
from edi_gateway.pipeline.process import Policy, process_messages
from edi_gateway.store import schema
from edi_gateway.store.db import Store
from tests import factory as f
from tests.unit.support import make_settings

_refs = itertools.count()


def arrive(store: Store, payloads: Sequence[bytes]) -> list[int]:
    envs = [
        Envelope(payload=p, source="t", source_ref=f"iso-{next(_refs)}", filename=f"{n}.xml")
        for n, p in enumerate(payloads)
    ]
    return intake(store, envs)


def count(store: Store, table: Any, *where: Any) -> int:
    with store.connect() as conn:
        return int(conn.scalar(select(func.count()).select_from(table).where(*where)) or 0)


def message(store: Store, mid: int) -> Any:
    with store.connect() as conn:
        return conn.execute(select(schema.messages).where(schema.messages.c.id == mid)).one()


def assert_nothing_kept(store: Store, mid: int) -> None:
    row = message(store, mid)
    assert row.state == "failed" and row.order_id is None
    assert count(store, schema.documents, schema.documents.c.message_id == mid) == 0
    history = schema.history.c
    assert (
        count(store, schema.history, history.message_id == mid, history.order_id.isnot(None)) == 0
    )


def repeated_line_order(number: str) -> bytes:
    lines = [f.Item("1", "5"), f.Item("2", "3"), f.Item("1", "7")]
    return f.order(number, lines)


def test_repeated_line_id_is_refused_with_its_own_code(store: Store, policy: Policy) -> None:
    ids = arrive(store, [f.order("PO-1"), repeated_line_order("PO-2"), f.order("PO-3")])
    states = process_messages(store, policy, ids)
    assert [states[i] for i in ids] == ["processed", "failed", "processed"]
    bad = message(store, ids[1])
    assert bad.error_code == "DUPLICATE_LINE_ID"
    assert "line 3 repeats the line ID '1' of line 1" in bad.error_detail
    assert "PEPPOL-T01-R001" in bad.error_detail
    assert_nothing_kept(store, ids[1])
    assert count(store, schema.orders) == 2


def test_a_store_refusal_fails_that_order_alone_and_its_id_is_not_reused(
    store: Store, policy: Policy, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An order whose lines the store refuses (a constraint) sinks its bulk insert; the batch is
    stored again message by message, the refused one fails with STORE_REFUSED, and no message
    points at an order id that was rolled back (or at somebody else's order)."""
    real = orders_module.add_line_columns

    def clashing(columns: dict[str, list[Any]], order_id: int, lines: Sequence[Any]) -> None:
        real(columns, order_id, lines)
        if any(line.item_name == "Poison" for line in lines):
            real(columns, order_id, lines[:1])  # the same line twice: UNIQUE (order_id, line_id)

    monkeypatch.setattr(orders_module, "add_line_columns", clashing)
    poison = f.order("PO-2", [f.Item("1", "1", name="Poison")])
    ids = arrive(store, [f.order("PO-1"), poison, f.order("PO-3"), f.order("PO-4")])
    states = process_messages(store, policy, ids)
    assert [states[i] for i in ids] == ["processed", "failed", "processed", "processed"]
    assert message(store, ids[1]).error_code == "STORE_REFUSED"
    assert_nothing_kept(store, ids[1])
    with store.connect() as conn:
        c = schema.orders.c
        owners = dict(
            conn.execute(
                select(schema.messages.c.id, c.order_number).join(
                    schema.orders, schema.orders.c.id == schema.messages.c.order_id
                )
            ).all()
        )
    assert owners == {ids[0]: "PO-1", ids[2]: "PO-3", ids[3]: "PO-4"}


def test_a_bug_in_correlation_fails_that_reply_alone(
    store: Store, policy: Policy, monkeypatch: pytest.MonkeyPatch
) -> None:
    [order] = arrive(store, [f.order("PO-1", f.items(2))])
    process_messages(store, policy, [order])
    real = correlate_module.correlate

    def buggy(session: Any, ref: Any, document: Any) -> Any:
        if document.document_id == "DA-BAD":
            session.add_all([])  # it may have written something before it broke
            raise KeyError("a bug")
        return real(session, ref, document)

    monkeypatch.setattr(correlate_module, "correlate", buggy)
    ids = arrive(
        store,
        [
            f.despatch_advice("DA-1", "PO-1", [("1", "2")]),
            f.despatch_advice("DA-BAD", "PO-1", [("1", "1")]),
            f.despatch_advice("DA-2", "PO-1", [("2", "4")]),
        ],
    )
    states = process_messages(store, policy, ids)
    assert [states[i] for i in ids] == ["processed", "failed", "processed"]
    bad = message(store, ids[1])
    assert bad.error_code == "INTERNAL_ERROR"
    assert "KeyError" in bad.error_detail and "nothing of this message was kept" in bad.error_detail
    assert_nothing_kept(store, ids[1])


def test_a_failing_reaction_undoes_its_message_and_spares_the_others(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Reactions run in the processing transaction: an auto-response that raises for one order
    fails that order's message (its order and outbox rows undone); the others are answered."""
    (tmp_path / "out").mkdir()
    gateway = Gateway(make_settings(tmp_path, auto="accept"), store)
    from edi_gateway.outbound import auto

    real = auto.issue

    def exploding(session: Any, settings: Any, order: Any, decision: Any, actor: str) -> Any:
        if order.order_number == "PO-2":
            raise ZeroDivisionError("a bug in the response writer")
        return real(session, settings, order, decision, actor=actor)

    monkeypatch.setattr(auto, "issue", exploding)
    ids = arrive(store, [f.order("PO-1"), f.order("PO-2"), f.order("PO-3")])
    states = process_messages(store, gateway.policy, ids, react=gateway.react)
    assert [states[i] for i in ids] == ["processed", "failed", "processed"]
    assert message(store, ids[1]).error_code == "INTERNAL_ERROR"
    assert_nothing_kept(store, ids[1])
    outbox = schema.outbox.c
    assert count(store, schema.outbox, outbox.doc_number.like("%PO-1%")) == 1
    assert count(store, schema.outbox, outbox.doc_number.like("%PO-2%")) == 0
    assert count(store, schema.outbox, outbox.doc_number.like("%PO-3%")) == 1
    assert count(store, schema.orders, schema.orders.c.order_number == "PO-2") == 0

    monkeypatch.setattr(auto, "issue", real)  # the fix is deployed: the operator redrives it
    assert gateway.redrive([ids[1]]) == [ids[1]]
    assert message(store, ids[1]).state == "processed"
    assert count(store, schema.outbox, outbox.doc_number.like("%PO-2%")) == 1


def test_a_redrive_of_several_where_one_fails_alone_redrives_each_once(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Review: ``messages redrive --state failed`` of three messages, writing the second's
    outcome raises (outside the savepoints). The redrive's reset commits with each outcome
    (docs/adr/0018): the batch is undone, each goes in a transaction of its own, and the
    second fails alone with its reset done again. Each is redriven once (one
    ``message.redriven``), the call returns all three, nothing of the second is kept, the
    others are answered once."""
    (tmp_path / "out").mkdir()
    gateway = Gateway(make_settings(tmp_path, auto="accept"), store)
    real = process_module.write_outcomes

    def flaky(conn: Any, works: list[Any]) -> None:
        if any(w.document is not None and w.document.document_id == "PO-R2" for w in works):
            raise RuntimeError("cannot write this one")
        real(conn, works)

    ids = arrive(store, [f.order("PO-R1"), f.order("PO-R2"), f.order("PO-R3")])
    with store.connect() as conn:  # failed before (say, a partner unknown until a fix)
        m = schema.messages.c
        conn.execute(schema.messages.update().where(m.id.in_(ids)).values(state="failed"))
    monkeypatch.setattr(process_module, "write_outcomes", flaky)
    assert gateway.redrive(state="failed") == ids
    assert [message(store, i).state for i in ids] == ["processed", "failed", "processed"]
    bad = message(store, ids[1])
    assert bad.error_code == "INTERNAL_ERROR" and "RuntimeError" in bad.error_detail
    assert_nothing_kept(store, ids[1])
    history = schema.history.c
    for mid in ids:
        redriven = (history.message_id == mid, history.event == "message.redriven")
        assert count(store, schema.history, *redriven) == 1, mid
    outbox = schema.outbox.c
    assert [
        count(store, schema.outbox, outbox.doc_number.like(f"%PO-R{n}%")) for n in (1, 2, 3)
    ] == [1, 0, 1]


def test_an_unreachable_store_fails_nothing(
    store: Store, policy: Policy, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A store that goes away is not the message's fault: the call raises, nothing of the batch
    is committed, and the messages stay ``received`` for the next try."""
    ids = arrive(store, [f.order("PO-1"), f.order("PO-2")])

    def gone(conn: Any, works: Any) -> None:
        raise OperationalError("INSERT", {}, Exception("server closed the connection"))

    monkeypatch.setattr(process_module, "insert_orders", gone)
    with pytest.raises(OperationalError):
        process_messages(store, policy, ids)
    assert {message(store, i).state for i in ids} == {"received"}
    assert count(store, schema.orders) == 0
    monkeypatch.undo()
    assert set(process_messages(store, policy, ids).values()) == {"processed"}


def test_a_failure_outside_the_savepoints_fails_only_its_message(
    store: Store, policy: Policy, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Last resort: when even writing a batch's outcomes raises, each message is processed in a
    transaction of its own, and the one that still raises is marked failed on its own."""
    ids = arrive(store, [f.order("PO-1"), f.order("PO-2"), f.order("PO-3")])
    real = process_module.write_outcomes

    def flaky(conn: Any, works: list[Any]) -> None:
        if any(w.document is not None and w.document.document_id == "PO-2" for w in works):
            raise RuntimeError("cannot write this one")
        real(conn, works)

    monkeypatch.setattr(process_module, "write_outcomes", flaky)
    states = process_messages(store, policy, ids)
    assert [states[i] for i in ids] == ["processed", "failed", "processed"]
    bad = message(store, ids[1])
    assert bad.error_code == "INTERNAL_ERROR" and "RuntimeError" in bad.error_detail
    assert_nothing_kept(store, ids[1])


def test_received_messages_can_be_redriven_and_pending_ones_processed_in_batches(
    store: Store, tmp_path: Path
) -> None:
    (tmp_path / "out").mkdir()
    gateway = Gateway(make_settings(tmp_path), store)
    ids = arrive(store, [f.order(f"PO-{n}") for n in range(25)])
    assert gateway.redrive([ids[0]], dry_run=True) == [ids[0]]
    assert gateway.redrive(state="received", dry_run=True) == ids
    assert gateway.redrive([ids[0]]) == [ids[0]]
    assert message(store, ids[0]).state == "processed"
    outcome = gateway.process_pending()
    assert sorted(outcome.states) == ids[1:]
    assert set(outcome.states.values()) == {"processed"}


def test_a_value_too_long_fails_its_reply_on_arrival_not_the_order_after_it(
    store: Store, policy: Policy
) -> None:
    """Measured when read, on every backend: a reply whose line ID is longer than the store keeps
    fails at once (not as an orphan that would later break its order's arrival)."""
    long_ref = "9" * 5000
    [reply] = arrive(store, [f.despatch_advice("DA-1", "PO-1", [(long_ref, "2")])])
    assert process_messages(store, policy, [reply]) == {reply: "failed"}
    bad = message(store, reply)
    assert bad.error_code == "VALUE_TOO_LONG"
    assert "line order line ref is 5,000 characters long" in bad.error_detail
    assert "keeps at most 100" in bad.error_detail
    [order] = arrive(store, [f.order("PO-1")])
    assert process_messages(store, policy, [order]) == {order: "processed"}


def test_an_orphan_that_cannot_attach_never_sinks_its_order(
    store: Store, policy: Policy, monkeypatch: pytest.MonkeyPatch
) -> None:
    [reply] = arrive(store, [f.despatch_advice("DA-1", "PO-1", [("1", "2")])])
    assert process_messages(store, policy, [reply]) == {reply: "orphan"}

    def broken(*args: Any) -> None:
        raise ValueError("cannot attach")

    monkeypatch.setattr(correlate_module, "attach", broken)
    [order] = arrive(store, [f.order("PO-1")])
    assert process_messages(store, policy, [order]) == {order: "processed"}
    assert message(store, reply).state == "orphan"
    history = schema.history.c
    assert (
        count(
            store,
            schema.history,
            history.message_id == reply,
            history.event == "orphan.not_attached",
        )
        == 1
    )


def test_a_comment_inside_a_value_does_not_cut_it(store: Store, policy: Policy) -> None:
    payload = f.order("PO-1", [f.Item("1", "40")]).replace(
        b">40</cbc:Quantity>", b">4<!-- a comment -->0<?pi x?></cbc:Quantity>"
    )
    assert b"<!-- a comment -->" in payload
    [mid] = arrive(store, [payload])
    assert process_messages(store, policy, [mid]) == {mid: "processed"}
    with store.connect() as conn:
        ordered = conn.scalar(select(schema.order_lines.c.qty_ordered))
    assert str(ordered) == "40"


def test_a_large_batch_is_processed_in_bounded_transactions(
    store: Store, policy: Policy, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On PostgreSQL a transaction locks each message's bytes and numbers: a batch larger than
    PG_CHUNK is processed a chunk at a time (SQLite: in one), with the same outcome."""
    monkeypatch.setattr(process_module, "PG_CHUNK", 2)
    ids = arrive(store, [f.order(f"PO-CH-{n}", f.items(1)) for n in range(5)])
    assert process_messages(store, policy, ids) == dict.fromkeys(ids, "processed")
    assert count(store, schema.orders) == 5


def _cut_off(store: Store, mid: int, times: int) -> None:
    with store.connect() as conn:
        c = schema.messages.c
        conn.execute(schema.messages.update().where(c.id == mid).values(cut_off=times))


def test_a_start_is_counted_before_processing_and_the_outcome_clears_it(
    store: Store, policy: Policy, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The count of a batch is committed before its work begins: a process that dies inside
    (here: an exception no handler catches, as a kill leaves no handler at all) leaves it."""
    ids = arrive(store, [f.order("PO-1"), f.order("PO-2")])
    real = process_module._process

    def dies(*args: Any, **kwargs: Any) -> Any:
        raise SystemExit("the process dies here")

    monkeypatch.setattr(process_module, "_process", dies)
    with pytest.raises(SystemExit):
        process_messages(store, policy, ids)
    assert [message(store, i).cut_off for i in ids] == [1, 1]
    assert {message(store, i).state for i in ids} == {"received"}
    monkeypatch.setattr(process_module, "_process", real)
    assert set(process_messages(store, policy, ids).values()) == {"processed"}
    assert [message(store, i).cut_off for i in ids] == [0, 0]


def test_cut_off_messages_go_alone_in_arrival_order_and_the_third_is_set_aside(
    store: Store, policy: Policy, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = arrive(store, [f.order(f"PO-{n}") for n in range(1, 6)])
    _cut_off(store, ids[0], 2)  # cut off twice: alone
    _cut_off(store, ids[2], 1)  # once: alone
    _cut_off(store, ids[4], 3)  # three times: set aside unread
    batches: list[list[int]] = []
    real = process_module._process

    def seen(store_: Store, policy_: Policy, chosen: Sequence[int], *args: Any, **kw: Any) -> Any:
        batches.append(list(chosen))
        return real(store_, policy_, chosen, *args, **kw)

    monkeypatch.setattr(process_module, "_process", seen)
    states = process_messages(store, policy, ids)
    assert batches == [[ids[0]], [ids[1]], [ids[2]], [ids[3]]]
    assert [states[i] for i in ids] == ["processed"] * 4 + ["failed"]
    aside = message(store, ids[4])
    assert (aside.error_code, aside.cut_off) == ("PROCESSING_CUT_OFF", 0)
    assert "cut off 3 times" in aside.error_detail
    assert count(store, schema.message_payloads, schema.message_payloads.c.message_id == ids[4])
    # the same bytes again: set aside at once, unread
    [again] = arrive(store, [f.order("PO-5")])
    assert process_messages(store, policy, [again]) == {again: "failed"}
    assert message(store, again).error_code == "PROCESSING_CUT_OFF"
    assert batches[-1] == [again]
    assert f"the same bytes as message {ids[4]}" in message(store, again).error_detail


def test_after_a_cut_off_a_reply_still_comes_after_its_order(store: Store, policy: Policy) -> None:
    """The order was being processed when the gateway died; its despatch advice arrived after
    it. The order goes alone first, then the advice finds it (not an orphan)."""
    ids = arrive(
        store, [f.order("PO-1", f.items(2)), f.despatch_advice("D-1", "PO-1", [("1", "4")])]
    )
    _cut_off(store, ids[0], 1)
    assert process_messages(store, policy, ids) == {ids[0]: "processed", ids[1]: "processed"}
    assert message(store, ids[1]).order_id == message(store, ids[0]).order_id is not None


def test_a_store_error_is_not_counted_as_a_cut_off(
    store: Store, policy: Policy, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A process that sees its processing fail (the store went away, a lock timeout) was not
    cut off: the count is taken back, and no number of such errors sets a message aside."""
    [mid] = arrive(store, [f.order("PO-1")])
    real = process_module._process
    fails = [OperationalError("SELECT 1", {}, Exception("database is locked"))] * 4

    def flaky(*args: Any, **kwargs: Any) -> Any:
        if fails:
            raise fails.pop()
        return real(*args, **kwargs)

    monkeypatch.setattr(process_module, "_process", flaky)
    for _ in range(4):
        with pytest.raises(OperationalError):
            process_messages(store, policy, [mid])
        assert message(store, mid).cut_off == 0
    assert process_messages(store, policy, [mid]) == {mid: "processed"}


def test_an_orphan_failing_while_counting_leaves_no_stale_ledger_rows(
    store: Store, policy: Policy, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first of two orphans fails after its ledger rows were read (a bug while counting),
    and what it read stays alive (a traceback, a collector that has not run): its savepoint
    is rolled back, SQLite gives its ledger row's id to the second orphan's row, and the
    session must not hand the stale row back for it. The second orphan's quantity counts."""
    from edi_gateway.pipeline import ledger as ledger_module

    first, second = arrive(
        store,
        [
            f.despatch_advice("DA-1", "PO-1", [("1", "2")]),
            f.despatch_advice("DA-2", "PO-1", [("1", "5")]),
        ],
    )
    assert process_messages(store, policy, [first, second]) == {first: "orphan", second: "orphan"}
    real, kept = ledger_module._ledger, []

    def failing_once(session: Any, doc_ids: Any) -> Any:
        found = real(session, doc_ids)
        if not kept:
            kept.extend(row for rows in found.values() for row in rows)  # kept alive
            raise ValueError("a bug while counting")
        return found

    monkeypatch.setattr(ledger_module, "_ledger", failing_once)
    [order] = arrive(store, [f.order("PO-1", [f.Item("1", "10")])])
    assert process_messages(store, policy, [order])[order] == "processed"
    assert kept and message(store, first).state == "orphan"
    with store.connect() as conn:
        despatched = conn.scalar(select(schema.order_lines.c.qty_despatched))
    assert str(despatched) == "5"
