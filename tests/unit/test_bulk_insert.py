"""store/bulk.py: rows inserted through the driver hold exactly what SQLAlchemy would store,
column by column or row by row, with constants bound or written into the statement."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import Connection, event, insert, select

from edi_gateway.domain.documents import Line, Quantity
from edi_gateway.pipeline.orders import LINE_COLUMNS, NEW_LINE, add_line_columns, line_rows
from edi_gateway.store import schema
from edi_gateway.store.bulk import insert_columns, insert_many
from edi_gateway.store.db import Store

STAMP = datetime(2026, 12, 5, 11, 0, tzinfo=UTC)
PRICE = Decimal("2.25")  # one object on two lines, as read_lines shares equal values
LINES = [
    Line("1", Quantity(Decimal("10"), "C62"), item_name="Bolt", price=PRICE),
    Line(
        "2",
        Quantity(Decimal("1E+2"), None),  # stored exponent-free: "100"
        item_name="Nut, 'quoted' 50%",
        seller_item_id="S-2",
        buyer_item_id="B-2",
        standard_item_id="0735000000002",
        price=Decimal("0.0001"),
        delivery_date=date(2026, 12, 24),
        delivery_place="Dock 4; Main Street 1, Utrecht",
    ),
    Line("3"),  # no quantity: ordered zero, no unit
    Line("4", Quantity(Decimal("1.50"), "KGM"), price=PRICE),
    Line("5", Quantity(Decimal("1.5"), "KGM"), price=Decimal("2.250")),  # equal, other text
]


def _order(conn: Connection, number: str) -> int:
    values = {
        "buyer_key": "0088:1",
        "order_number": number,
        "status": "Received",
        "cancelled": False,
        "created_at": STAMP,
        "updated_at": STAMP,
    }
    return int(conn.execute(insert(schema.orders).values(values)).inserted_primary_key[0])


def _stored(conn: Connection, order_id: int) -> list[dict[str, Any]]:
    c = schema.order_lines.c
    query = select(schema.order_lines).where(c.order_id == order_id).order_by(c.position)
    return [
        {k: v for k, v in row._mapping.items() if k not in ("id", "order_id")}
        for row in conn.execute(query)
    ]


def _statements(conn: Connection) -> list[str]:
    seen: list[str] = []

    def note(*args: Any) -> None:
        seen.append(args[2])  # (conn, cursor, statement, parameters, context, executemany)

    event.listen(conn, "before_cursor_execute", note)
    return seen


def test_line_columns_are_the_line_rows_column_by_column() -> None:
    columns: dict[str, list[Any]] = {name: [] for name in LINE_COLUMNS}
    add_line_columns(columns, 7, LINES)
    add_line_columns(columns, 8, LINES[:1])
    rows = line_rows(7, LINES, start=0) + line_rows(8, LINES[:1], start=0)
    assert set(rows[0]) == set(LINE_COLUMNS)
    assert [dict(zip(columns, r, strict=True)) for r in zip(*columns.values())] == rows


def test_columns_store_what_sqlalchemy_stores(store: Store) -> None:
    with store.connect() as conn:
        plain, ours = _order(conn, "PO-SQLA"), _order(conn, "PO-BULK")
        conn.execute(
            insert(schema.order_lines),
            [{**row, **NEW_LINE} for row in line_rows(plain, LINES, start=0)],
        )
        columns: dict[str, list[Any]] = {name: [] for name in LINE_COLUMNS}
        add_line_columns(columns, ours, LINES)
        seen = _statements(conn)
        insert_columns(conn, schema.order_lines, columns, constants=NEW_LINE)
        expected = _stored(conn, plain)
        assert _stored(conn, ours) == expected
        assert expected[1]["qty_ordered"] == Decimal(100) and expected[2]["unit"] is None
        stored = _stored(conn, ours)
        assert [str(row["price"]) for row in stored[3:]] == ["2.25", "2.250"]  # as written
        assert [str(row["qty_ordered"]) for row in stored[3:]] == ["1.50", "1.5"]
    # the constants every line shares are literals in the statement, not bound per row
    [statement] = [s for s in seen if s.startswith("INSERT INTO order_lines")]
    assert "'0'" in statement and "NULL" in statement


def test_constants_that_are_not_plain_words_are_bound(store: Store) -> None:
    """A quote, a ``%`` or a non-text value never goes into the statement."""
    with store.connect() as conn:
        plain, ours = _order(conn, "PO-SQLA"), _order(conn, "PO-BULK")
        odd = {**NEW_LINE, "status_code": "x'%"}
        rows = line_rows(plain, LINES, start=0)
        conn.execute(insert(schema.order_lines), [{**row, **odd} for row in rows])
        seen = _statements(conn)
        insert_many(conn, schema.order_lines, line_rows(ours, LINES, start=0), constants=odd)
        assert _stored(conn, ours) == _stored(conn, plain)
        assert {r["status_code"] for r in _stored(conn, ours)} == {"x'%"}
        orders = [{"buyer_key": "0088:2", "order_number": f"PO-{n}"} for n in range(3)]
        fixed = {"status": "Received", "cancelled": True, "created_at": STAMP, "updated_at": STAMP}
        insert_many(conn, schema.orders, orders, constants=fixed)
        c = schema.orders.c
        got = conn.execute(select(c.cancelled, c.created_at).where(c.buyer_key == "0088:2")).all()
        assert got == [(True, STAMP)] * 3
    assert not any("x'%" in s for s in seen)


def test_columns_of_different_lengths_are_refused_and_none_is_nothing(store: Store) -> None:
    with store.connect() as conn:
        order = _order(conn, "PO-1")
        with pytest.raises(ValueError, match="different lengths"):
            insert_columns(conn, schema.order_lines, {"order_id": [order], "line_id": []})
        empty: dict[str, list[Any]] = {name: [] for name in LINE_COLUMNS}
        insert_columns(conn, schema.order_lines, empty, constants=NEW_LINE)
        insert_columns(conn, schema.order_lines, {})
        assert _stored(conn, order) == []
