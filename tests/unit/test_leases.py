"""Leases (store/leases.py) on both backends, and which claims a gateway recovers
(transports/claims.py)."""

from __future__ import annotations

import time

import pytest

from edi_gateway.pipeline.process import Policy
from edi_gateway.store.db import Store
from edi_gateway.store.leases import alive, hold, read, release
from edi_gateway.transports.claims import claim_prefix, original_name, to_recover


def test_a_lease_is_held_renewed_taken_over_when_run_out_and_released(store: Store) -> None:
    with store.connect() as conn:
        assert hold(conn, "connector:in", "a", 0.3) == 1
        assert hold(conn, "connector:in", "b", 30) is None  # a holds it
        assert hold(conn, "connector:in", "a", 0.3) == 1  # renewed: same token
    time.sleep(0.4)
    with store.connect() as conn:
        assert hold(conn, "connector:in", "b", 30, "pid 7") == 2  # ran out: b, next token
        assert hold(conn, "connector:in", "a", 30) is None
        [lease] = read(conn, "connector:")
        assert (lease.holder, lease.token, lease.info) == ("b", 2, "pid 7")
        release(conn, ["connector:in"], "a")  # not a's: nothing happens
        assert hold(conn, "connector:in", "a", 30) is None
        release(conn, ["connector:in"], "b")
        assert hold(conn, "connector:in", "a", 30) == 3  # released: taken at once
        assert hold(conn, "connector:in", "c", 30, force=True) == 4  # SQLite's lone daemon


def test_alive_names_the_instances_whose_lease_is_current(store: Store) -> None:
    with store.connect() as conn:
        hold(conn, "instance:gw1.1.aaaaaa", "gw1.1.aaaaaa", 30)
        hold(conn, "instance:gw2.2.bbbbbb", "gw2.2.bbbbbb", 0.1)
    time.sleep(0.2)
    with store.connect() as conn:
        found = alive(conn, ["gw1.1.aaaaaa", "gw2.2.bbbbbb", "gw3.3.cccccc"])
    assert found == {"gw1.1.aaaaaa"}


class _Claimants:
    def __init__(self, me: str, running: set[str]) -> None:
        self.me, self.running = me, running
        self.asked: set[str] = set()

    def alive(self, claimants: set[str]) -> set[str]:
        self.asked |= claimants
        return claimants & self.running


def test_a_gateway_recovers_its_own_claims_and_those_of_gateways_gone() -> None:
    me = _Claimants("gw1.10.aaaaaa", {"gw2.20.bbbbbb"})
    names = [
        "20261204T101010123456Z-0a0b0c0d@gw1.10.aaaaaa--mine.xml",
        "20261204T101010123456Z-1a0b0c0d@gw2.20.bbbbbb--busy-elsewhere.xml",
        "20261204T101010123456Z-2a0b0c0d@gw3.30.cccccc--left-by-a-dead-one.xml",
        "20261204T101010123456Z-3a0b0c0d--an-older-release.xml",
        "not-a-claim.xml",
    ]
    assert to_recover(names, me) == [names[0], names[2], names[3]]
    assert me.asked == {"gw2.20.bbbbbb", "gw3.30.cccccc"}
    assert to_recover(names, None) == names[:4]  # outside the daemon: every claim


def test_a_claimed_name_keeps_the_original_name() -> None:
    me = _Claimants("host-a.42.abcdef", set())
    claimed = claim_prefix(me) + "PO--4711.xml"
    assert "@host-a.42.abcdef--" in claimed
    assert original_name(claimed) == "PO--4711.xml"
    assert original_name(claim_prefix(None) + "x.xml") == "x.xml"
    assert original_name("x.xml") is None


def test_a_claim_is_stamped_with_its_utc_time_and_a_random_part_of_its_own() -> None:
    from datetime import UTC, datetime, timedelta

    before = datetime.now(UTC).replace(microsecond=0)
    prefixes = [claim_prefix(None) for _ in range(2000)]
    after = datetime.now(UTC)
    stamps = [datetime.strptime(p[:22], "%Y%m%dT%H%M%S%fZ").replace(tzinfo=UTC) for p in prefixes]
    assert all(before <= stamp <= after + timedelta(microseconds=1) for stamp in stamps)
    assert stamps == sorted(stamps)  # claims in one poll keep their order
    assert len({p[23:31] for p in prefixes}) > 1990  # 32 random bits each
    assert all(p[22] == "-" and p.endswith("--") and len(p) == 33 for p in prefixes)


def test_gateways_share_the_polled_connectors_and_take_over_a_dead_ones(postgres_url: str) -> None:
    from edi_gateway.daemon.leases import Ownership
    from edi_gateway.store.db import open_store

    shared = open_store(postgres_url)
    try:
        names = ["a", "b", "c", "d"]
        first, second = Ownership(shared, 5, 4), Ownership(shared, 5, 4)
        first.beat()
        assert [first.may_poll(n) for n in names] == [True] * 4  # alone: all of them
        second.beat()
        assert second.share == 2 and not any(second.may_poll(n) for n in names)
        first.renew_at = 0  # its next renewal: two gateways now, it gives two back
        first.beat()
        assert sorted(first.owned) == ["a", "b"]
        assert [second.may_poll(n) for n in names] == [False, False, True, True]
        second.release()  # a clean stop hands over at once
        first.renew_at = 0
        first.beat()
        assert first.share == 4 and [first.may_poll(n) for n in names] == [True] * 4
    finally:
        shared.close()


def test_a_stalled_gateway_loses_its_messages_and_cannot_commit_after(
    postgres_url: str, policy: Policy
) -> None:
    """The fence: while one gateway's transaction holds a message, another skips it (it stays
    ``received`` in that call's answer); once the holder has idled past its lease PostgreSQL
    ends it, its commit fails, and the message is processed once by the other."""
    from sqlalchemy import func, select, text
    from sqlalchemy.exc import DBAPIError

    from edi_gateway.envelope import Envelope
    from edi_gateway.pipeline.intake import intake
    from edi_gateway.pipeline.process import process_messages
    from edi_gateway.store import schema
    from edi_gateway.store.db import open_store
    from tests import factory as f

    shared = open_store(postgres_url, lease_seconds=1)
    try:
        envelopes = [
            Envelope(f.order(f"PO-F{n}", f.items(1)), "t", f"fence-{n}", f"{n}.xml")
            for n in range(2)
        ]
        held, free = intake(shared, envelopes)
        stalled = shared.engine.connect()
        trans = stalled.begin()
        stalled.execute(text("SELECT id FROM messages WHERE id = :i FOR UPDATE"), {"i": held})
        assert process_messages(shared, policy, [held, free]) == {
            held: "received",
            free: "processed",
        }
        time.sleep(1.5)  # past the lease: PostgreSQL ends the idle transaction
        with pytest.raises(DBAPIError):
            stalled.execute(text("UPDATE messages SET state = 'failed' WHERE id = :i"), {"i": held})
            trans.commit()
        stalled.close()
        assert process_messages(shared, policy, [held]) == {held: "processed"}
        with shared.connect() as conn:
            assert conn.scalar(select(func.count()).select_from(schema.orders)) == 2
            state = conn.scalar(select(schema.messages.c.state).where(schema.messages.c.id == held))
        assert state == "processed"
    finally:
        shared.close()
