"""The connector contract, the same for every connector type against its real server.

Round trip, many files, a server restart in the middle (nothing lost, nothing twice), bad
credentials, hostile file names. Each harness (``harness_<type>.py``) plays the partner.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from edi_gateway.app import Gateway
from edi_gateway.config import Settings
from edi_gateway.store.db import open_store
from edi_gateway.store.tables import Message
from edi_gateway.transports import TransportError, open_outbound
from tests import factory as f
from tests.integration.connectors.harness import Harness, take_all

HOSTILE = ["../../etc/x.xml", "/tmp/absolute.xml", "nul\x00byte.xml", "long" * 80 + ".xml"]


def gateway(workdir: Path, *entries: dict[str, Any], batch: int = 5) -> Gateway:
    """A gateway on a fresh SQLite store with the factory's partners and these connectors."""
    settings = Settings.model_validate(
        {
            "path": workdir / "gateway.yaml",
            "intake": {"batch_size": batch},
            "partners": [f.buyer_partner(), f.seller_partner()],
            "connectors": list(entries),
        },
        context={"base_dir": workdir},
    )
    return Gateway(settings, open_store(f"sqlite:///{workdir / 'gateway.db'}"))


def order(n: int) -> bytes:
    return f.order(f"PO-{n:05}", f.items(2))


def stored(gw: Gateway) -> Counter[str]:
    """Every message in the store by state (a second copy of anything would show here)."""
    with gw.store.session() as session:
        rows = session.execute(select(Message.state, func.count()).group_by(Message.state))
        return Counter({state: n for state, n in rows})


@pytest.fixture
def partner(harness: Harness) -> Harness:
    harness.reset()
    return harness


def test_round_trip(partner: Harness, workdir: Path) -> None:
    gw = gateway(workdir, partner.inbound("from-partner"), partner.outbound("to-partner"))
    try:
        partner.send("po-1.xml", order(1))
        states = take_all(partner, gw, "from-partner")
        assert list(states.values()) == ["processed"]
        assert partner.waiting() == 0
        out = open_outbound(gw.settings.connector("to-partner"))
        headers = {
            "document_type": "OrderResponse",
            "document_id": "OR-1",
            "partner": "buyer",
            "message_id": "edi-gateway-outbox-1",
            "media_type": "application/xml",
        }
        out.deliver("OrderResponse-OR-1.xml", b"<OrderResponse/>", headers)
        out.deliver("OrderResponse-OR-1.xml", b"<OrderResponse/>", headers)  # a retry
        assert partner.delivered() == {"OrderResponse-OR-1.xml": b"<OrderResponse/>"}
    finally:
        gw.close()


def test_many_files_each_once(partner: Harness, workdir: Path) -> None:
    gw = gateway(workdir, partner.inbound("from-partner"), batch=7)
    try:
        for n in range(40):
            partner.send(f"po-{n:03}.xml", order(n))
        states = take_all(partner, gw, "from-partner")
        assert Counter(states.values()) == {"processed": 40}
        assert stored(gw) == {"processed": 40}
        assert partner.waiting() == 0
    finally:
        gw.close()


def test_server_restart_in_the_middle_loses_nothing_and_doubles_nothing(
    partner: Harness, workdir: Path
) -> None:
    gw = gateway(workdir, partner.inbound("from-partner"), partner.outbound("to-partner"))
    try:
        for n in range(30):
            partner.send(f"po-{n:03}.xml", order(n))
        batches = iter(range(10))
        first = partner.take(gw, "from-partner", stop=lambda: next(batches) >= 2)
        assert 0 < len(first.states) < 30  # stopped part-way
        partner.restart()
        take_all(partner, gw, "from-partner")
        assert stored(gw) == {"processed": 30}
        assert partner.waiting() == 0
        out = open_outbound(gw.settings.connector("to-partner"))
        for attempt in range(5):  # the first delivery after a restart may meet a dead link
            try:
                out.deliver("after-restart.xml", b"<Invoice/>", {"message_id": "m-after"})
                break
            except TransportError as exc:
                assert exc.recoverable and attempt < 4
        assert partner.delivered() == {"after-restart.xml": b"<Invoice/>"}
    finally:
        gw.close()


def test_bad_credentials_are_refused_and_nothing_is_taken(
    credentialed: Harness, workdir: Path
) -> None:
    partner = credentialed
    partner.reset()
    inbound = partner.with_bad_credentials(partner.inbound("bad-in"))
    outbound = partner.with_bad_credentials(partner.outbound("bad-out"))
    gw = gateway(workdir, inbound, outbound)
    try:
        partner.send("po-1.xml", order(1))
        with pytest.raises(TransportError) as refused:
            partner.take(gw, "bad-in")
        assert not refused.value.recoverable
        assert partner.waiting() == 1 and stored(gw).total() == 0
        with pytest.raises(TransportError) as refused_out:
            open_outbound(gw.settings.connector("bad-out")).deliver("x.xml", b"<x/>", {})
        assert not refused_out.value.recoverable
        assert partner.delivered() == {}
    finally:
        gw.close()


def test_hostile_names_never_write_outside(partner: Harness, workdir: Path) -> None:
    gw = gateway(workdir, partner.inbound("from-partner"), partner.outbound("to-partner"))
    try:
        out = open_outbound(gw.settings.connector("to-partner"))
        for n, name in enumerate(HOSTILE):
            try:
                out.deliver(name, f"<x n='{n}'/>".encode(), {"message_id": f"hostile-{n}"})
            except TransportError:
                continue  # refusing a name is allowed; writing outside is not
        for name in partner.delivered():
            assert "/" not in name and "\x00" not in name and ".." not in name.split("/")
            assert len(name.encode()) <= 255
        for n, name in enumerate(HOSTILE):
            partner.send(name, order(100 + n))
        states = take_all(partner, gw, "from-partner")
        assert set(states.values()) <= {"processed"}
        with gw.store.session() as session:
            names = list(session.scalars(select(Message.filename)))
        for name in names:
            assert "/" not in name and "\x00" not in name
        assert partner.outside_files() == []
    finally:
        gw.close()
