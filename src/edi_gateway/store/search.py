"""The orders free-text search and the indexes it runs on (docs/adr/0035).

``orders list --search TEXT`` and the console's search find an order when TEXT occurs, with
any case, in its order number, buyer or seller name, or in a line's item name, seller's or
buyer's item ID: ``ILIKE '%TEXT%'`` (``%`` and ``_`` in TEXT stay wildcards, as they always
were). Read plainly, that reads every order and every line. Here it runs on trigram indexes:

- SQLite: two FTS5 tables with the ``trigram`` tokenizer, *external content* (they store only
  the index; the text stays in ``orders`` / ``order_lines``), kept in step by triggers on
  insert, update of the searched columns and delete, whoever writes. FTS5 answers ``LIKE`` on
  such a table from the index (SQLite then checks each candidate with the real ``LIKE``), and
  on SQLite ``lower(x) LIKE lower(y)`` (what ``ILIKE`` compiles to) equals ``x LIKE y``.
- PostgreSQL: the ``pg_trgm`` extension and one multi-column GIN index per table, which the
  planner uses for ``ILIKE`` itself (with a recheck), so the condition stays the same.

Both run one branch per column joined with UNION: an OR across columns (or across the two
tables) would fall back to reading a whole table on either backend. A later migration that
rebuilds ``orders`` or ``order_lines`` on SQLite (Alembic's batch mode drops the table and
with it the triggers) must call :func:`install` again; it is idempotent.
"""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    String,
    bindparam,
    column,
    literal_column,
    or_,
    select,
    table,
    union,
)

from edi_gateway.store import schema

ORDER_COLUMNS = ("order_number", "buyer_name", "seller_name")
LINE_COLUMNS = ("item_name", "seller_item_id", "buyer_item_id")
SQLITE_TABLES = {
    "orders": ("orders_search", ORDER_COLUMNS),
    "order_lines": ("lines_search", LINE_COLUMNS),
}
POSTGRESQL_INDEXES = {"orders": "ix_orders_search", "order_lines": "ix_order_lines_search"}


def _fts_table(name: str, columns: tuple[str, ...]) -> Any:
    return table(name, column("rowid"), *(column(c) for c in columns))


WATERMARKS = "search_watermarks"
AUTOMERGE = 8
"""FTS5 merges a level's segments once it holds this many (its default is 4). Each merge
rewrites what it merges, so the levels a line passes through cost every insert; with 8 there
are a third fewer of them, and a processing transaction into a store of 50,000 orders spends
about as long indexing its lines as into an empty one (docs/adr/0036). A search reads at most
7 segments a level instead of 3, on fewer levels."""


def _sqlite_ddl(source: str, fts: str, columns: tuple[str, ...]) -> list[str]:
    # names from the constants above only, never from input: no injection (S608)
    names = ", ".join(columns)
    new = ", ".join(f"new.{c}" for c in columns)
    old = ", ".join(f"old.{c}" for c in columns)
    mark = f"(SELECT indexed_to FROM {WATERMARKS} WHERE name = '{source}')"  # noqa: S608
    add = f"INSERT INTO {fts}(rowid, {names}) SELECT new.id, {new} WHERE new.id <= {mark};"
    remove = f"INSERT INTO {fts}({fts}, rowid, {names}) SELECT 'delete', old.id, {old} WHERE old.id <= {mark};"  # noqa: E501
    # after a delete the watermark stays at or below the highest id left: SQLite gives a new
    # row that id + 1 (it may reuse a deleted one), so every new row is past the watermark
    lower = (
        f"UPDATE {WATERMARKS} SET indexed_to = min(indexed_to, "  # noqa: S608
        f"(SELECT coalesce(max(id), 0) FROM {source})) WHERE name = '{source}';"
    )
    return [
        f"CREATE VIRTUAL TABLE IF NOT EXISTS {fts} USING fts5({names}, "
        f"content='{source}', content_rowid='id', tokenize='trigram', columnsize=0)",
        merging(fts),
        # no insert trigger: a new row's id is past the watermark (kept <= the highest id)
        f"DROP TRIGGER IF EXISTS {fts}_insert",
        f"CREATE TRIGGER IF NOT EXISTS {fts}_delete AFTER DELETE ON {source} "
        f"BEGIN {remove} {lower} END",
        f"CREATE TRIGGER IF NOT EXISTS {fts}_update AFTER UPDATE OF id, {names} ON {source} "
        f"BEGIN {remove} {add} END",
        # (re)index what the table already holds: a migrated store, or triggers re-created
        f"INSERT INTO {fts}({fts}) VALUES ('rebuild')",  # noqa: S608
        f"INSERT OR REPLACE INTO {WATERMARKS} (name, indexed_to) "  # noqa: S608
        f"SELECT '{source}', coalesce(max(id), 0) FROM {source}",
    ]


def merging(fts: str, segments: int = AUTOMERGE) -> str:
    """The statement that sets an FTS5 table's ``automerge`` (kept in its config table)."""
    return f"INSERT INTO {fts}({fts}, rank) VALUES ('automerge', {int(segments)})"  # noqa: S608


def catch_up(conn: Connection) -> None:
    """Index the rows added since the last call, in one statement per table (SQLite; nothing
    to do on PostgreSQL). Rows past the watermark are found by the search all the same, by
    reading them; this keeps that read short. Called by each processing transaction."""
    if conn.dialect.name != "sqlite":
        return
    for source, (fts, columns) in SQLITE_TABLES.items():
        names = ", ".join(columns)
        ask = f"SELECT indexed_to FROM {WATERMARKS} WHERE name = ?"  # noqa: S608
        mark = conn.exec_driver_sql(ask, (source,)).scalar_one()
        top = conn.exec_driver_sql(f"SELECT coalesce(max(id), 0) FROM {source}").scalar_one()  # noqa: S608
        if top <= mark:
            continue
        conn.exec_driver_sql(
            f"INSERT INTO {fts}(rowid, {names}) SELECT id, {names} FROM {source} "  # noqa: S608
            "WHERE id > ? AND id <= ?",
            (mark, top),
        )
        move = f"UPDATE {WATERMARKS} SET indexed_to = ? WHERE name = ?"  # noqa: S608
        conn.exec_driver_sql(move, (top, source))


def _postgresql_ddl(source: str, index: str, columns: tuple[str, ...]) -> list[str]:
    ops = ", ".join(f"{c} gin_trgm_ops" for c in columns)
    return [f"CREATE INDEX IF NOT EXISTS {index} ON {source} USING gin ({ops})"]


def install(conn: Connection) -> None:
    """Create the search indexes (and on SQLite fill them from the rows already stored)."""
    columns = {"orders": ORDER_COLUMNS, "order_lines": LINE_COLUMNS}
    statements: list[str] = []
    if conn.dialect.name == "sqlite":
        statements.append(
            f"CREATE TABLE IF NOT EXISTS {WATERMARKS} "
            "(name TEXT PRIMARY KEY, indexed_to INTEGER NOT NULL)"
        )
        for source, (fts, cols) in SQLITE_TABLES.items():
            statements += _sqlite_ddl(source, fts, cols)
    elif conn.dialect.name == "postgresql":
        statements.append("CREATE EXTENSION IF NOT EXISTS pg_trgm")
        for source, index in POSTGRESQL_INDEXES.items():
            statements += _postgresql_ddl(source, index, columns[source])
    for statement in statements:
        conn.exec_driver_sql(statement)


def uninstall(conn: Connection) -> None:
    """Drop what :func:`install` created (the extension stays: others may use it)."""
    if conn.dialect.name == "sqlite":
        for fts, _ in SQLITE_TABLES.values():
            for event in ("insert", "delete", "update"):
                conn.exec_driver_sql(f"DROP TRIGGER IF EXISTS {fts}_{event}")
            conn.exec_driver_sql(f"DROP TABLE IF EXISTS {fts}")
        conn.exec_driver_sql(f"DROP TABLE IF EXISTS {WATERMARKS}")
    elif conn.dialect.name == "postgresql":
        for index in POSTGRESQL_INDEXES.values():
            conn.exec_driver_sql(f"DROP INDEX IF EXISTS {index}")


def is_search_object(name: str | None, type_: str) -> bool:
    """Whether ``name`` is one of the search's own tables (SQLite, with FTS5's shadow tables)
    or indexes (PostgreSQL): not declared in the metadata, so schema comparisons skip them."""
    if name is None:
        return False
    if type_ == "table":
        return name == WATERMARKS or any(
            name == fts or name.startswith(f"{fts}_") for fts, _ in SQLITE_TABLES.values()
        )
    return type_ == "index" and name in POSTGRESQL_INDEXES.values()


def _fragments(text: str) -> list[str]:
    """The runs of three or more characters of ``text`` between ``LIKE`` wildcards (and NULs,
    which end an FTS5 string): what every value matching ``%text%`` contains, and what a
    trigram index can look up."""
    return [run for run in re.split(r"[%_\x00]", text) if len(run) >= 3]


def indexable(text: str) -> bool:
    """Whether a trigram index can narrow ``ILIKE '%text%'``: only when ``text`` holds three
    characters in a row that are not wildcards (a shorter pattern has no trigram to look up)."""
    return bool(_fragments(text))


def _fts_query(text: str) -> str:
    """An FTS5 query for the rows holding every fragment of ``text`` (each an FTS5 string:
    double quotes doubled, nothing else special inside), in any column, any case."""
    return " AND ".join('"' + run.replace('"', '""') + '"' for run in _fragments(text))


def search_condition(dialect: str, text: str) -> ColumnElement[bool]:
    """The condition on ``orders.id`` for orders whose number, buyer or seller name, or one of
    whose lines' item name, seller's or buyer's item ID contains ``text`` (``ILIKE``)."""
    like = f"%{text}%"
    orders, lines = schema.orders, schema.order_lines
    in_order = or_(*(orders.c[c].ilike(like) for c in ORDER_COLUMNS))
    in_line = or_(*(lines.c[c].ilike(like) for c in LINE_COLUMNS))
    if not indexable(text):  # a scan either way: the plain condition reads fewest rows
        return or_(in_order, orders.c.id.in_(select(lines.c.order_id).where(in_line)))
    if dialect == "sqlite":
        # FTS5 finds the rows holding the fragments (a superset, from the index alone); the
        # ILIKE of old then decides on those rows only, so the result is the same by design
        query = _fts_query(text)
        fts_orders, fts_lines = (_fts_table(n, ()) for n, _ in SQLITE_TABLES.values())
        marks = table(WATERMARKS, column("name", String), column("indexed_to"))

        def past(source: str) -> Any:  # rows not indexed yet: read, they are the newest few
            return select(marks.c.indexed_to).where(marks.c.name == source).scalar_subquery()

        indexed_orders = select(fts_orders.c.rowid).where(text_match(fts_orders.name, query))
        indexed_lines = select(fts_lines.c.rowid).where(text_match(fts_lines.name, query))
        return orders.c.id.in_(
            union(
                select(orders.c.id).where(orders.c.id.in_(indexed_orders), in_order),
                select(orders.c.id).where(orders.c.id > past("orders"), in_order),
                select(lines.c.order_id).where(lines.c.id.in_(indexed_lines), in_line),
                select(lines.c.order_id).where(lines.c.id > past("order_lines"), in_line),
            )
        )
    # PostgreSQL: its trigram GIN indexes serve ILIKE itself, one column per branch
    return orders.c.id.in_(
        union(
            *(select(orders.c.id).where(orders.c[c].ilike(like)) for c in ORDER_COLUMNS),
            *(select(lines.c.order_id).where(lines.c[c].ilike(like)) for c in LINE_COLUMNS),
        )
    )


def text_match(fts: str, query: str) -> ColumnElement[bool]:
    """``fts MATCH :query`` on the FTS5 table named ``fts``."""
    return literal_column(fts).bool_op("MATCH")(bindparam(None, query, type_=String))


def index_rows(conn: Connection, source: str, ids: list[int]) -> None:
    """Index again rows of ``source`` (orders, order_lines) put back with their old ids
    (a purge restored, store/purge.py): rows at or below the watermark are indexed only by the
    triggers, which an insert does not fire (SQLite; PostgreSQL's indexes need nothing)."""
    if conn.dialect.name != "sqlite" or not ids:
        return
    fts, columns = SQLITE_TABLES[source]
    names = ", ".join(columns)
    ask = f"SELECT indexed_to FROM {WATERMARKS} WHERE name = ?"  # noqa: S608
    mark = conn.exec_driver_sql(ask, (source,)).scalar_one()
    below = [i for i in ids if i <= mark]
    for start in range(0, len(below), 500):
        chunk = below[start : start + 500]
        marks = ", ".join("?" * len(chunk))
        conn.exec_driver_sql(
            f"INSERT INTO {fts}(rowid, {names}) SELECT id, {names} FROM {source} "  # noqa: S608
            f"WHERE id IN ({marks})",
            tuple(chunk),
        )
