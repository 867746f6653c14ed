"""The orders free-text search on its trigram indexes (store/search.py, docs/adr/0035).

The oracle is the query the search ran before the indexes: ``ILIKE '%text%'`` read straight
off ``orders`` and ``order_lines``. Every search here must give exactly its orders, on SQLite
and on PostgreSQL, for texts a hostile operator would type, and must keep doing so while rows
are inserted, changed and deleted by any writer.
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, delete, insert, or_, select, text, update

from edi_gateway.app import Gateway
from edi_gateway.errors import ErrorCode, GatewayError
from edi_gateway.store import search
from edi_gateway.store.db import Store, open_store, upgrade
from edi_gateway.store.queries import Filters, page_orders
from edi_gateway.store.schema import order_lines, orders
from tests.unit.support import receive
from tests.unit.test_advanced_ordering import changed, corpus, settings

NAMES = [
    "Region Alpha",
    "BETA ab",
    "Müller & Söhne GmbH",
    "MÜLLER",
    "École Privée",
    "ecole",
    'O\'Brien "Quoted" Ltd',
    "100% Pure_Water",
    "100x Purex-Water",
    "back\\slash",
    "  spaced  out  ",
    "Ærøskøbing",
    "ΑΘΉΝΑ",
    "αθήνα",
    "日本の会社",
    "",
    None,
]
ITEMS = [
    "Widget",
    "WIDGET large",
    "widgets_10%",
    "Gauze 10 x 10 cm",
    "Straße",
    "STRASSE",
    "crème brûlée",
    'Pipe 1/2" brass',
    "it's",
    "a%b_c",
    None,
]
SEARCHES = [
    "PO-0001",
    "po-0001",
    "PO-000",
    "-0000",
    "alpha",
    "ALPHA",
    "beta",
    "müller",
    "MÜLLER",
    "Müller",
    "üll",
    "ÜLL",
    "École",
    "école",
    "ecole",
    "O'Brien",
    "'",
    "''",
    '"Quoted"',
    '"',
    "100%",
    "% Pure",
    "0% P",
    "Pure_Water",
    "Pure_",
    "_Water",
    "%",
    "%%",
    "_",
    "___",
    "a%b",
    "a%b_c",
    "widget",
    "WIDGETS",
    "dget",
    "Straße",
    "strasse",
    "ß",
    "brûlée",
    "BRÛLÉE",
    '1/2" b',
    "it's",
    "back\\slash",
    "\\",
    "k\\s",
    "  ",
    "spaced  out",
    "æRØ",
    "αθή",
    "ΑΘΉ",
    "日本",
    "の会社",
    "SKU-0",
    "sku-00042",
    "B-7",
    "no such thing at all",
    "x",
    "ab",
    "Item",
]


def oracle(store: Store, text_: str, status: str | None = None) -> list[int]:
    """The ids the search found before the indexes (newest first)."""
    like = f"%{text_}%"
    in_lines = select(order_lines.c.order_id).where(
        or_(
            order_lines.c.item_name.ilike(like),
            order_lines.c.seller_item_id.ilike(like),
            order_lines.c.buyer_item_id.ilike(like),
        )
    )
    query = select(orders.c.id).where(
        or_(
            orders.c.order_number.ilike(like),
            orders.c.buyer_name.ilike(like),
            orders.c.seller_name.ilike(like),
            orders.c.id.in_(in_lines),
        )
    )
    if status:
        query = query.where(orders.c.status.ilike(status))
    with store.connect() as conn:
        return list(conn.scalars(query.order_by(orders.c.id.desc())))


def found(store: Store, text_: str, limit: int = 500, offset: int = 0, **extra: Any) -> Any:
    with store.reading() as session:
        return page_orders(session, Filters(search=text_, **extra), limit=limit, offset=offset)


def ids(store: Store, text_: str, **extra: Any) -> list[int]:
    return [row["id"] for row in found(store, text_, **extra).rows]


def fill(store: Store, count: int = 60) -> None:
    """``count`` orders whose names, numbers and lines take every value above in turn."""
    at = datetime(2026, 11, 1, tzinfo=UTC)
    names = itertools.cycle(NAMES)
    items = itertools.cycle(ITEMS)
    heads, lines = [], []
    for n in range(1, count + 1):
        heads.append(
            {
                "id": n,
                "buyer_key": f"0088:{n % 3}",
                "order_number": f"PO-{n:05d}" if n % 7 else f"po-{n:05d}_%'x",
                "buyer_name": next(names),
                "seller_key": "0088:7310000000003",
                "seller_name": next(names),
                "currency": "EUR",
                "status": ["Received", "Accepted"][n % 2],
                "cancelled": False,
                "created_at": at + timedelta(minutes=n),
                "updated_at": at + timedelta(minutes=n),
            }
        )
        for i in range(n % 4):  # some orders have no lines
            lines.append(
                {
                    "order_id": n,
                    "position": i,
                    "line_id": str(i + 1),
                    "item_name": next(items),
                    "seller_item_id": f"SKU-{n * 10 + i:05d}" if i != 2 else None,
                    "buyer_item_id": f"B-{n}{i}" if i == 1 else None,
                    "qty_ordered": Decimal(1),
                    "qty_despatched": Decimal(0),
                    "qty_received": Decimal(0),
                    "qty_invoiced": Decimal(0),
                    "qty_credited": Decimal(0),
                }
            )
    with store.connect() as conn:
        conn.execute(insert(orders), heads)
        conn.execute(insert(order_lines), lines)


@pytest.fixture(params=["indexed", "just added"])
def filled(store: Store, request: pytest.FixtureRequest) -> Store:
    """The data set, indexed as a processing transaction leaves it, or just added (past the
    watermark on SQLite: found by reading those rows)."""
    fill(store)
    if request.param == "indexed":
        with store.connect() as conn:
            search.catch_up(conn)
    return store


def test_every_search_finds_what_ilike_found(filled: Store) -> None:
    """Case, accents, LIKE wildcards, quotes, backslashes, short and empty-handed texts."""
    some = 0
    for text_ in SEARCHES:
        expected = oracle(filled, text_)
        page = found(filled, text_)
        assert [row["id"] for row in page.rows] == expected, text_
        assert page.total == len(expected), text_
        some += bool(expected)
    assert some > 40  # the data set is varied enough for the comparison to mean something


def test_paging_and_other_filters_combine_with_the_search(filled: Store) -> None:
    expected = oracle(filled, "PO-0")
    assert len(expected) > 20
    pages = [found(filled, "PO-0", limit=7, offset=start) for start in range(0, 70, 7)]
    assert [row["id"] for page in pages for row in page.rows] == expected
    assert {page.total for page in pages} == {len(expected)}
    beyond = found(filled, "PO-0", limit=7, offset=500)
    assert (beyond.rows, beyond.total) == ([], len(expected))
    accepted = oracle(filled, "sku-0", status="accepted")
    assert ids(filled, "sku-0", state="accepted") == accepted
    assert 0 < len(accepted) < len(oracle(filled, "sku-0"))


def test_the_search_follows_updates_and_deletes(filled: Store) -> None:
    with filled.connect() as conn:
        conn.execute(update(orders).where(orders.c.id == 5).values(buyer_name="Zebra Zulu"))
        conn.execute(update(orders).where(orders.c.id == 6).values(status="Closed"))
        conn.execute(update(order_lines).where(order_lines.c.order_id == 3).values(item_name="Yak"))
        conn.execute(delete(order_lines).where(order_lines.c.order_id == 2))
        conn.execute(update(orders).where(orders.c.id == 12).values(id=999))
    assert ids(filled, "zebra zulu") == [5]
    assert ids(filled, "yak") == [3]
    assert ids(filled, "PO-00012") == [999]
    assert ids(filled, "SKU-00020") == []  # order 2's lines are gone
    for text_ in ("Region", "BETA", "Widget", "Müller", "SKU-", "Straße", "PO-0"):
        assert ids(filled, text_) == oracle(filled, text_), text_
    with filled.connect() as conn:  # an order with its lines deleted leaves nothing behind
        conn.execute(delete(order_lines).where(order_lines.c.order_id == 5))
        conn.execute(delete(orders).where(orders.c.id == 5))
    assert ids(filled, "zebra zulu") == []
    if filled.engine.dialect.name == "sqlite":
        with filled.connect() as conn:  # FTS5's own check of both indexes against the tables
            search.catch_up(conn)  # rows past the watermark (id 999) are not in it till then
            for fts, _ in search.SQLITE_TABLES.values():
                check = f"INSERT INTO {fts}({fts}, rank) VALUES ('integrity-check', 1)"
                conn.exec_driver_sql(check)


def test_an_id_used_again_after_a_delete_is_found(tmp_path: Path) -> None:
    """SQLite gives a new row the highest id + 1, so deleting the newest order and adding one
    reuses its id: the new order must not pass for indexed (PostgreSQL's sequences never
    give an id twice)."""
    store = open_store(f"sqlite:///{tmp_path / 'reuse.db'}")
    fill(store, 8)  # order 8 has no lines
    with store.connect() as conn:
        search.catch_up(conn)
        conn.execute(delete(orders).where(orders.c.id == 8))
        conn.execute(delete(order_lines).where(order_lines.c.order_id == 7))
        conn.execute(delete(orders).where(orders.c.id == 7))
    at = datetime(2026, 11, 2, tzinfo=UTC)
    head = {"buyer_key": "k", "status": "Received", "cancelled": False, "created_at": at}
    with store.connect() as conn:
        conn.execute(insert(orders), [head | {"order_number": "NEW-ONE", "updated_at": at}])
    assert ids(store, "new-one") == [7]
    assert ids(store, "PO-00008") == [] and ids(store, "PO-0000") == oracle(store, "PO-0000")
    with store.connect() as conn:
        search.catch_up(conn)
        for fts, _ in search.SQLITE_TABLES.values():
            check = f"INSERT INTO {fts}({fts}, rank) VALUES ('integrity-check', 1)"
            conn.exec_driver_sql(check)
    assert ids(store, "new-one") == [7]
    store.close()


def test_an_order_change_adding_a_line_is_found_by_its_item(store: Store, tmp_path: Path) -> None:
    """The pipeline's own writes: an order received and a line an OrderChange adds."""
    gw = Gateway(settings(tmp_path), store)
    for name in ("sc1/Order_sc1.xml", "sc1/OrderResponse_sc1.xml", "sc1/OrderChange_sc1.xml"):
        receive(gw, corpus(name))
    [order_id] = ids(store, "Order-1")
    assert ids(store, "item 2") == [order_id]
    assert ids(store, "Scalpel") == []
    change = changed(
        corpus("sc2/OrderChange_sc2.xml"),
        "<cbc:Name>Item 1</cbc:Name>",
        "<cbc:Name>Scalpel No. 11</cbc:Name>",
    )
    change = changed(
        change,
        "<cbc:ID>1</cbc:ID>\n      <cbc:LineStatusCode>4",
        "<cbc:ID>3</cbc:ID>\n      <cbc:LineStatusCode>1",
    )
    receive(gw, change)
    with store.connect() as conn:
        added = conn.execute(
            select(order_lines.c.line_id).where(order_lines.c.item_name == "Scalpel No. 11")
        ).all()
    assert added == [("3",)]
    assert ids(store, "scalpel no") == [order_id]
    if store.engine.dialect.name == "sqlite":  # each processing transaction indexed its rows
        with store.connect() as conn:
            for source in ("orders", "order_lines"):
                mark = conn.exec_driver_sql(
                    f"SELECT indexed_to FROM {search.WATERMARKS} WHERE name = '{source}'"
                ).scalar_one()
                assert mark == conn.exec_driver_sql(f"SELECT max(id) FROM {source}").scalar_one()


def test_a_store_migrated_from_0019_indexes_its_orders(database_url: str) -> None:
    engine = create_engine(database_url)
    try:
        upgrade(engine, "0019")
        fill(Store(engine), 30)
        upgrade(engine)
    finally:
        engine.dispose()
    store = open_store(database_url)
    try:
        for text_ in ("PO-0001", "müller", "widget", "SKU-00", "%", "ab"):
            assert ids(store, text_) == oracle(store, text_), text_
    finally:
        store.close()


def plan(store: Store, text_: str) -> str:
    """The query plan of the search's id query, as text."""
    with store.reading() as session:
        query = select(orders.c.id).where(search.search_condition(store.engine.dialect.name, text_))
        compiled = query.compile(store.engine, compile_kwargs={"literal_binds": True})
        conn = session.connection()
        if store.engine.dialect.name == "sqlite":
            rows = conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {compiled}").all()
            return "\n".join(str(row[-1]) for row in rows)
        conn.execute(text("SET LOCAL enable_seqscan = off"))
        return "\n".join(row[0] for row in conn.exec_driver_sql(f"EXPLAIN {compiled}").all())


def test_the_search_reads_indexes_not_tables(filled: Store) -> None:
    """No full scan of orders or order_lines for a text with three characters in a row (on
    PostgreSQL with sequential scans discouraged: a tiny table would rightly be scanned)."""
    for text_ in ("PO-0001", "müller", "Pure_Water", "0%_Pure", "it's"):
        shown = plan(filled, text_)
        if filled.engine.dialect.name == "sqlite":
            assert "SCAN orders\n" not in shown + "\n" and "SCAN order_lines" not in shown, shown
            assert "orders_search VIRTUAL TABLE" in shown, shown
            assert "lines_search VIRTUAL TABLE" in shown, shown
        else:
            assert "Seq Scan" not in shown, shown
            assert "ix_orders_search" in shown and "ix_order_lines_search" in shown, shown
    assert (
        search.indexable("PO-0001")
        and not search.indexable("ab")
        and not search.indexable("a%bc_d")
    )


@pytest.mark.parametrize("text_", ["PO\x00-0001", "\x00", "\x00\x00\x00"])
def test_a_nul_in_the_search_is_a_usage_error(filled: Store, text_: str) -> None:
    """Not a database error: PostgreSQL refuses NUL in any text, FTS5 ends a string at it."""
    with pytest.raises(GatewayError) as caught:
        found(filled, text_)
    assert caught.value.code == ErrorCode.USAGE and "NUL" in caught.value.message


def test_fts_query_quotes_every_fragment() -> None:
    assert search._fts_query('say "hi" now') == '"say ""hi"" now"'
    assert search._fts_query("abc%de_fgh") == '"abc" AND "fgh"'
    assert search._fts_query("AND OR NOT*") == '"AND OR NOT*"'
