"""The orders free-text search and the indexes it runs on (docs/adr/0035).

``orders list --search TEXT`` and the console's search find an order when TEXT occurs, with
any case, in its order number, buyer or seller name, or in a line's item name, seller's or
buyer's item ID: ``ILIKE '%TEXT%'`` (``%`` and ``_`` in TEXT stay wildcards, as they always
were). Read plainly, that reads every order and every line. Here it runs on indexes:

- SQLite: every distinct value of those six columns once in ``search_terms``, with an FTS5
  ``trigram`` index over it (``search_terms_fts``, external content), and a plain index on each
  of the six columns. Triggers on ``orders`` and ``order_lines`` add new values (insert, update
  of a searched column), whoever writes. A search finds the candidate values by trigram (from
  the index alone), keeps those that match ``ILIKE`` itself, then the rows holding exactly those
  values through the column indexes. Values repeat (item names and IDs across orders, party
  names), so intake indexes little text: a value seen before costs one unique-index probe.
- PostgreSQL: the ``pg_trgm`` extension and one multi-column GIN index per table, which the
  planner uses for ``ILIKE`` itself (with a recheck), so the condition stays the same.

Both run one branch per column joined with UNION: an OR across columns (or across the two
tables) would fall back to reading a whole table on either backend. A later migration that
rebuilds ``orders`` or ``order_lines`` on SQLite (Alembic's batch mode drops the table and
with it its triggers and indexes) must call :func:`install` again; it is idempotent. Values no
row holds any more stay in ``search_terms`` (they only cost a little room; they find nothing).
"""

from __future__ import annotations

import re

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
SEARCHED = {"orders": ORDER_COLUMNS, "order_lines": LINE_COLUMNS}
TERMS, TERMS_FTS = "search_terms", "search_terms_fts"
POSTGRESQL_INDEXES = {"orders": "ix_orders_search", "order_lines": "ix_order_lines_search"}
# names from the constants above only, never from input: no injection (S608)
_ADD_TERM = f"INSERT INTO {TERMS_FTS}(rowid, value) VALUES (new.id, new.value);"  # noqa: S608
_DROP_TERM = (
    f"INSERT INTO {TERMS_FTS}({TERMS_FTS}, rowid, value) VALUES ('delete', old.id, old.value);"  # noqa: S608
)
_TERMS_DDL = [
    f"CREATE TABLE IF NOT EXISTS {TERMS} (id INTEGER PRIMARY KEY, value TEXT NOT NULL UNIQUE)",
    f"CREATE VIRTUAL TABLE IF NOT EXISTS {TERMS_FTS} USING fts5(value, content='{TERMS}', "
    "content_rowid='id', tokenize='trigram')",
    f"CREATE TRIGGER IF NOT EXISTS {TERMS}_insert AFTER INSERT ON {TERMS} BEGIN {_ADD_TERM} END",
    f"CREATE TRIGGER IF NOT EXISTS {TERMS}_delete AFTER DELETE ON {TERMS} BEGIN {_DROP_TERM} END",
]


def _index_name(source: str, name: str) -> str:
    return f"ix_search_{source}_{name}"


def _sqlite_ddl(source: str, columns: tuple[str, ...]) -> list[str]:
    values = " UNION ALL ".join(f"SELECT new.{c} AS v" for c in columns)
    add = f"INSERT OR IGNORE INTO {TERMS}(value) SELECT v FROM ({values}) WHERE v IS NOT NULL;"  # noqa: S608
    known = " UNION ".join(f"SELECT {c} FROM {source} WHERE {c} IS NOT NULL" for c in columns)  # noqa: S608
    return [
        *(
            f"CREATE INDEX IF NOT EXISTS {_index_name(source, c)} ON {source} ({c})"
            for c in columns
        ),
        f"CREATE TRIGGER IF NOT EXISTS {TERMS}_{source}_insert AFTER INSERT ON {source} "
        f"BEGIN {add} END",
        f"CREATE TRIGGER IF NOT EXISTS {TERMS}_{source}_update AFTER UPDATE OF "
        f"{', '.join(columns)} ON {source} BEGIN {add} END",
        f"INSERT OR IGNORE INTO {TERMS}(value) {known}",  # what the table already holds
    ]


def install(conn: Connection) -> None:
    """Create the search indexes (and on SQLite fill them from the rows already stored)."""
    statements: list[str] = []
    if conn.dialect.name == "sqlite":
        statements += _TERMS_DDL
        for source, columns in SEARCHED.items():
            statements += _sqlite_ddl(source, columns)
    elif conn.dialect.name == "postgresql":
        statements.append("CREATE EXTENSION IF NOT EXISTS pg_trgm")
        for source, index in POSTGRESQL_INDEXES.items():
            ops = ", ".join(f"{c} gin_trgm_ops" for c in SEARCHED[source])
            statements.append(f"CREATE INDEX IF NOT EXISTS {index} ON {source} USING gin ({ops})")
    for statement in statements:
        conn.exec_driver_sql(statement)


def uninstall(conn: Connection) -> None:
    """Drop what :func:`install` created (the extension stays: others may use it)."""
    if conn.dialect.name == "sqlite":
        for source, columns in SEARCHED.items():
            for event in ("insert", "update"):
                conn.exec_driver_sql(f"DROP TRIGGER IF EXISTS {TERMS}_{source}_{event}")
            for c in columns:
                conn.exec_driver_sql(f"DROP INDEX IF EXISTS {_index_name(source, c)}")
        conn.exec_driver_sql(f"DROP TABLE IF EXISTS {TERMS_FTS}")
        conn.exec_driver_sql(f"DROP TABLE IF EXISTS {TERMS}")  # its triggers go with it
    elif conn.dialect.name == "postgresql":
        for index in POSTGRESQL_INDEXES.values():
            conn.exec_driver_sql(f"DROP INDEX IF EXISTS {index}")


def is_search_object(name: str | None, type_: str) -> bool:
    """Whether ``name`` is one of the search's own tables (SQLite, with FTS5's shadow tables)
    or indexes: not declared in the metadata, so schema comparisons skip them."""
    if name is None:
        return False
    if type_ == "table":
        return name in {TERMS, TERMS_FTS} or name.startswith(f"{TERMS_FTS}_")
    return type_ == "index" and (
        name in POSTGRESQL_INDEXES.values() or name.startswith("ix_search_")
    )


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
    """An FTS5 query for the values holding every fragment of ``text`` (each an FTS5 string:
    double quotes doubled, nothing else special inside), in any case."""
    return " AND ".join('"' + run.replace('"', '""') + '"' for run in _fragments(text))


def search_condition(dialect: str, text: str) -> ColumnElement[bool]:
    """The condition on ``orders.id`` for orders whose number, buyer or seller name, or one of
    whose lines' item name, seller's or buyer's item ID contains ``text`` (``ILIKE``)."""
    like = f"%{text}%"
    orders, lines = schema.orders, schema.order_lines
    if not indexable(text):  # a scan either way: the plain condition reads fewest rows
        in_order = or_(*(orders.c[c].ilike(like) for c in ORDER_COLUMNS))
        in_line = or_(*(lines.c[c].ilike(like) for c in LINE_COLUMNS))
        return or_(in_order, orders.c.id.in_(select(lines.c.order_id).where(in_line)))
    if dialect == "sqlite":
        # the trigram index finds candidate values (a superset); ILIKE on each value decides,
        # exactly as it decided on the column holding it; the column indexes find the rows
        terms = table(TERMS, column("id"), column("value", String))
        fts = table(TERMS_FTS, column("rowid"))
        candidates = select(fts.c.rowid).where(text_match(TERMS_FTS, _fts_query(text)))
        matching = (
            select(terms.c.value)
            .where(terms.c.id.in_(candidates), terms.c.value.ilike(like))
            .cte("matching_values")
        )
        values = select(matching.c.value)
        return orders.c.id.in_(
            union(
                *(select(orders.c.id).where(orders.c[c].in_(values)) for c in ORDER_COLUMNS),
                *(select(lines.c.order_id).where(lines.c[c].in_(values)) for c in LINE_COLUMNS),
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
