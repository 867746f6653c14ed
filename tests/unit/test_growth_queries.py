"""The queries rewritten to run on an index (docs/adr/0036) answer exactly what they did.

On both backends, with the inputs a hostile operator or a crashing transport would give:
keys past one read-back chunk, from several sources and with NULLs; statuses in any case and
unknown ones; error codes written by every path that writes ``last_error``; connectors whose
names are suffixes of others; time filters that match nothing, part or all.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import insert, select

from edi_gateway.app import Gateway
from edi_gateway.envelope import Envelope
from edi_gateway.errors import ErrorCode, GatewayError
from edi_gateway.pipeline.intake import intake
from edi_gateway.store.bulk import KEY_CHUNK, ids_by_key
from edi_gateway.store.db import Store
from edi_gateway.store.queries import Filters, page_messages, page_orders, page_outbox
from edi_gateway.store.schema import error_code_of, messages, orders
from edi_gateway.store.tables import OutboxRow
from tests import factory as f
from tests.unit.support import make_settings, receive

T0 = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)


def _envelope(source: str, ref: str) -> Envelope:
    return Envelope(
        payload=f"<x>{source}{ref}</x>".encode(),
        source=source,
        source_ref=ref,
        filename=f"{ref}.xml",
    )


def test_intake_is_idempotent_past_a_chunk_over_several_sources(store: Store) -> None:
    """More keys than one read-back query takes, three sources, a key twice in one batch,
    then the whole batch offered again after a crash: one message per key, same ids."""
    n = KEY_CHUNK + 37
    batch = [_envelope(s, f"r{i}") for i in range(n) for s in ("folder:in", "sftp:in", "cli")]
    batch.append(_envelope("sftp:in", "r7"))  # offered twice in the same batch
    first = intake(store, batch)
    again = intake(store, list(reversed(batch)))
    assert again == list(reversed(first))
    assert first[-1] == first[3 * 7 + 1]  # the repeated key got the first one's id
    with store.connect() as conn:
        stored = conn.execute(select(messages.c.id, messages.c.source, messages.c.source_ref))
        by_key = {(s, r): i for i, s, r in stored}
    assert len(by_key) == 3 * n
    assert [by_key[(e.source, e.source_ref)] for e in batch] == first


def test_ids_by_key_with_a_null_leading_value_and_missing_keys(store: Store) -> None:
    """A NULL leading column is matched as NULL (IS NULL), a key not stored is left out."""
    with store.connect() as conn:
        rows = [
            {
                "buyer_key": key,
                "order_number": f"PO-{i}",
                "status": "Received",
                "cancelled": False,
                "created_at": T0,
                "updated_at": T0,
            }
            for i, key in enumerate(["0088:1", "0088:2", "0088:1"])
        ]
        conn.execute(insert(orders), rows)
        found = ids_by_key(
            conn,
            orders,
            ("buyer_key", "order_number"),
            [
                ("0088:1", "PO-0"),
                ("0088:1", "PO-2"),
                ("0088:2", "PO-1"),
                ("0088:2", "PO-0"),
                ("0088:1", "PO-0"),
            ],
        )
        assert set(found) == {("0088:1", "PO-0"), ("0088:1", "PO-2"), ("0088:2", "PO-1")}
        assert ids_by_key(conn, orders, ("buyer_key", "order_number"), []) == {}


@pytest.fixture
def gateway(store: Store, tmp_path: Path) -> Gateway:
    gateway = Gateway(make_settings(tmp_path), store)
    for n in range(1, 4):
        receive(gateway, f.order(f"PO-{n}", f.items(2)))
    return gateway


def test_status_in_any_case_and_an_unknown_status(gateway: Gateway) -> None:
    with gateway.store.session() as session:
        for text in ("Received", "received", "RECEIVED"):
            assert page_orders(session, Filters(state=text)).total == 3
        assert page_orders(session, Filters(state="accepted with CHANGES")).total == 0
        for bad in ("Recei%", "_eceived", " received", "Received; --"):
            with pytest.raises(GatewayError) as raised:
                page_orders(session, Filters(state=bad))
            assert raised.value.code is ErrorCode.USAGE


def test_time_filters_list_newest_first(gateway: Gateway) -> None:
    with gateway.store.connect() as conn:  # arrival times out of id order, as two gateways
        for order_id, minutes in ((1, 30), (2, 10), (3, 20)):
            stamp = T0 + timedelta(minutes=minutes)
            conn.execute(orders.update().where(orders.c.id == order_id).values(created_at=stamp))
    with gateway.store.session() as session:

        def numbers(**given: datetime) -> list[str]:
            return [r["order_number"] for r in page_orders(session, Filters(**given)).rows]

        assert numbers(since=T0) == ["PO-1", "PO-3", "PO-2"]  # newest arrival first
        assert numbers(since=T0 + timedelta(minutes=15)) == ["PO-1", "PO-3"]
        assert numbers(until=T0 + timedelta(minutes=15)) == ["PO-2"]
        assert numbers(since=T0 + timedelta(hours=1)) == []
        assert numbers() == ["PO-3", "PO-2", "PO-1"]  # no time filter: newest id first
        page = page_orders(session, Filters(since=T0, search="PO-"), limit=2, offset=1)
        assert [r["order_number"] for r in page.rows] == ["PO-3", "PO-2"] and page.total == 3


def test_connector_filter_is_exact(store: Store) -> None:
    intake(
        store,
        [
            _envelope(s, "a")
            for s in ("folder:in", "sftp:in", "cli", "folder:main", "folder:xin", "in")
        ],
    )
    with store.reading() as session:

        def sources(name: str) -> list[str]:
            rows = page_messages(session, Filters(connector=name)).rows
            return sorted(r["source"] for r in rows)

        assert sources("in") == ["folder:in", "in", "sftp:in"]
        assert sources("cli") == ["cli"]
        assert sources("main") == ["folder:main"]
        assert sources("%") == []


def test_outbox_error_code_follows_last_error(store: Store) -> None:
    assert error_code_of("DELIVERY_FAILED: refused") == "DELIVERY_FAILED"
    for text in (None, "", "withdrawn: order cancelled", "no code here", ": x", "A B: x"):
        assert error_code_of(text) is None
    with store.session() as session:
        row = OutboxRow(
            created_at=T0,
            partner="p",
            connector="c",
            kind="Order",
            doc_number="D1",
            filename="d1.xml",
            media_type="application/xml",
            state="pending",
            attempts=0,
            next_attempt_at=T0,
        )
        session.add(row)
        session.flush()
        row.last_error = "TRANSPORT_UNREACHABLE: no route"
        session.flush()
        assert row.error_code == "TRANSPORT_UNREACHABLE"
        row.last_error = None
        assert row.error_code is None
        row.last_error = "RULES_FAILED: BR-01"
    with store.reading() as session:
        assert page_outbox(session, Filters(code="rules_failed")).total == 1
        assert page_outbox(session, Filters(code="RULES")).total == 0
        assert page_outbox(session, Filters(code="TRANSPORT_UNREACHABLE")).total == 0


def test_migration_0025_fills_error_codes_of_stored_rows(database_url: str) -> None:
    """An outbox stored before 0025 gets ``error_code`` from each ``last_error``; rows
    without a code (none, a withdrawal) stay NULL; ``--code`` then finds them."""
    from alembic import command
    from sqlalchemy import create_engine, text

    from edi_gateway.store.db import alembic_config, open_store

    open_store(database_url).close()
    engine = create_engine(database_url)
    command.downgrade(alembic_config(engine), "0020")
    with engine.begin() as conn:
        for n, error in enumerate(["DELIVERY_FAILED: 503", "withdrawn: order PO-1", None]):
            conn.execute(
                text(
                    "INSERT INTO outbox (created_at, partner, connector, kind, doc_number, "
                    "filename, media_type, payload, state, attempts, next_attempt_at, "
                    "last_error) VALUES (:t, 'p', 'c', 'Order', :d, :d, 'x', :b, 'failed', 1, "
                    ":t, :e)"
                ),
                {"t": T0, "d": f"D{n}", "b": b"x", "e": error},
            )
    engine.dispose()
    store = open_store(database_url)
    try:
        with store.reading() as session:
            codes = dict(session.execute(select(OutboxRow.doc_number, OutboxRow.error_code)).all())
            assert codes == {"D0": "DELIVERY_FAILED", "D1": None, "D2": None}
            assert page_outbox(session, Filters(code="delivery_failed")).total == 1
    finally:
        store.close()


def test_outbox_names_are_found_free_by_exact_name_past_a_window(store: Store) -> None:
    """enqueue asks the unique index for exact names, 64 at a time (no LIKE over the whole
    outbox): 70 files of one name get name, name-2 ... name-70; another connector's and a
    name that merely starts alike do not count; case matters."""
    from edi_gateway.config import Settings
    from edi_gateway.outbound.outbox import Outgoing, enqueue

    settings = Settings.model_validate({"path": "gateway.yaml"})

    def queue(connector: str, filename: str) -> str:
        item = Outgoing(
            partner="p",
            connector=connector,
            kind="OrderBundle",
            doc_number="B",
            payload=b"x",
            filename=filename,
        )
        with store.session() as session:
            row = session.get_one(OutboxRow, enqueue(session, item, settings))
            return row.filename

    assert queue("c", "orders-export.csv") == "orders-export.csv"  # starts like "orders"
    assert queue("c", "Orders.csv") == "Orders.csv"
    assert queue("other", "orders.csv") == "orders.csv"
    got = [queue("c", "orders.csv") for _ in range(70)]
    assert got == ["orders.csv"] + [f"orders-{n}.csv" for n in range(2, 71)]


def test_an_outbox_row_refuses_bytes_set_on_it() -> None:
    """Its bytes live in outbox_payloads, written by enqueue (docs/adr/0042): set on the row,
    the ORM would drop them without a word and the row fail delivery later."""
    with pytest.raises(AttributeError, match="enqueue"):
        OutboxRow(partner="p", payload=b"x")
    row = OutboxRow(partner="p")
    with pytest.raises(AttributeError, match="enqueue"):
        row.payload = b"x"


def test_partner_pages_are_the_partners_orders_in_list_order(store: Store, tmp_path: Path) -> None:
    """The partner filter's page is taken among the first orders of each of its four sides
    (docs/adr/0036): every page, at every offset, with and without a time filter (arrival
    out of id order), must be exactly the slice of the whole ordered list, an order matching
    on two sides included once."""
    gateway = Gateway(make_settings(tmp_path), store)
    for n in range(1, 25):
        receive(gateway, f.order(f"PO-{n}", f.items(1)))
    sides = ("buyer_partner", "seller_partner", "buyer_key", "seller_key")
    with store.connect() as conn:
        for order_id in range(1, 25):
            # "p" on no side, one side, or two sides of the order; arrival times shuffled
            values: dict[str, object] = {
                "created_at": T0 + timedelta(minutes=(order_id * 7) % 24),
                **{side: f"other-{order_id}" for side in sides},
            }
            if order_id % 3:
                values[sides[order_id % 4]] = "p"
            if order_id % 5 == 0:
                values[sides[(order_id + 1) % 4]] = "p"
            conn.execute(orders.update().where(orders.c.id == order_id).values(**values))
        rows = conn.execute(select(orders.c.id, orders.c.created_at, *orders.c[sides])).all()
    mine = [
        r for r in rows if "p" in (r.buyer_partner, r.seller_partner, r.buyer_key, r.seller_key)
    ]
    by_id = [r.id for r in sorted(mine, key=lambda r: r.id, reverse=True)]
    by_time = [r.id for r in sorted(mine, key=lambda r: (r.created_at, r.id), reverse=True)]
    assert 10 < len(mine) < 24
    with store.session() as session:
        for given, expected in (({}, by_id), ({"since": T0}, by_time)):
            for limit in (1, 3, 5, 50):
                for offset in range(0, len(mine) + 2):
                    page = page_orders(session, Filters(partner="p", **given), limit, offset)
                    assert [r["id"] for r in page.rows] == expected[offset : offset + limit]
                    assert page.total == len(mine)
