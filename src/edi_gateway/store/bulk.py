"""Insert many rows with one driver ``executemany``, for the hot path of intake.

SQLAlchemy's own executemany re-processes every row through its compiled-statement machinery
(about 10 µs a row here); a 20,000-line order spends more time there than in SQLite. This
builds the INSERT once per column set, converts values with each column type's own public
``bind_processor`` for the dialect, and hands tuples to the driver. Same values in the database,
on SQLite and PostgreSQL alike (tests run the pipeline on both).

Constants shared by every row (``constants=``) are converted once; a converted constant that is
NULL or a short plain word (:data:`_PLAIN`, e.g. ``'0'``) is written into the statement as a
literal, so the driver does not bind it again for every row (a fifth of SQLite's time for an
order line). :func:`insert_columns` takes the values column by column, as the hot path has
them, and converts each column in one pass.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from operator import itemgetter
from typing import Any

from sqlalchemy import Column, Connection, Dialect, Insert, Table, select

CHUNK = 5000
KEY_CHUNK = 500  # key values per read-back query (bound parameters; SQLite allows 32766)
_PLACEHOLDERS = {"qmark": "?", "format": "%s", "pyformat": "%s"}
_PLAIN = re.compile(r"[0-9A-Za-z_.:-]{0,64}")
"""A converted constant that may stand in the SQL as a quoted literal: nothing to escape (no
quote, no backslash, no ``%``, which the ``format`` paramstyles would read), on every backend."""


def insert_many(
    conn: Connection,
    table: Table,
    rows: Sequence[Mapping[str, Any]],
    constants: Mapping[str, Any] | None = None,
) -> None:
    """INSERT every row (all rows must have the same keys, which name columns of ``table``).

    ``constants`` are column values shared by every row, converted once rather than per row.
    """
    if not rows:
        return
    dialect = conn.dialect
    fixed = dict(constants or {})
    names = list(rows[0])
    if dialect.paramstyle not in _PLACEHOLDERS:  # a style we did not plan for: SQLAlchemy does it
        conn.execute(table.insert(), [{**row, **fixed} for row in rows])
        return
    sql, bound = _insert_sql(table, names, fixed, dialect)
    convert = _converter(table, names, dialect)
    tail = tuple(bound.values())
    for start in range(0, len(rows), CHUNK):
        conn.exec_driver_sql(sql, [convert(row) + tail for row in rows[start : start + CHUNK]])


def insert_columns(
    conn: Connection,
    table: Table,
    columns: Mapping[str, Sequence[Any]],
    constants: Mapping[str, Any] | None = None,
) -> None:
    """INSERT one row per position of ``columns`` (column name -> its values, all as long),
    as :func:`insert_many` does; each column is converted in one pass."""
    lengths = {len(values) for values in columns.values()}
    if len(lengths) > 1:
        raise ValueError(f"columns of different lengths for {table.name}: {sorted(lengths)}")
    if not columns or not lengths or not lengths.pop():
        return
    dialect = conn.dialect
    fixed = dict(constants or {})
    names = list(columns)
    if dialect.paramstyle not in _PLACEHOLDERS:  # a style we did not plan for: SQLAlchemy does it
        values = zip(*columns.values(), strict=True)
        conn.execute(table.insert(), [dict(zip(names, row, strict=True)) | fixed for row in values])
        return
    sql, bound = _insert_sql(table, names, fixed, dialect)
    converted = [_convert_column(table, name, values, dialect) for name, values in columns.items()]
    size = len(converted[0])
    converted += [[value] * size for value in bound.values()]
    rows = list(zip(*converted, strict=True))
    for start in range(0, len(rows), CHUNK):
        conn.exec_driver_sql(sql, rows[start : start + CHUNK])


def _convert_column(table: Table, name: str, values: Sequence[Any], dialect: Dialect) -> list[Any]:
    """The column's values converted by its type's bind processor, each object once: a
    document's equal quantities and prices are one object each (``read_lines`` shares them)."""
    process = table.c[name].type.bind_processor(dialect)
    if process is None:
        return list(values)
    done: dict[int, Any] = {}  # id -> converted; ``values`` keeps every object alive meanwhile
    out = []
    for value in values:
        key = id(value)
        if key in done:
            out.append(done[key])
        else:
            done[key] = converted = None if value is None else process(value)
            out.append(converted)
    return out


def _insert_sql(
    table: Table, names: list[str], constants: dict[str, Any], dialect: Dialect
) -> tuple[str, dict[str, Any]]:
    """The INSERT of ``names`` (bound per row) and ``constants``: those that convert to NULL or
    a :data:`_PLAIN` word are literals in the statement; the rest (returned, converted) are
    bound with every row after ``names``."""
    placeholder = _PLACEHOLDERS[dialect.paramstyle]
    quote = dialect.identifier_preparer.quote
    literals: dict[str, str] = {}
    bound: dict[str, Any] = {}
    for name, given in constants.items():
        process = table.c[name].type.bind_processor(dialect)
        value = process(given) if process is not None and given is not None else given
        if value is None:
            literals[name] = "NULL"
        elif isinstance(value, str) and _PLAIN.fullmatch(value):
            literals[name] = f"'{value}'"
        else:
            bound[name] = value
    # Table and column names come from our own schema; every other value is bound, or a literal
    # that _PLAIN allows (nothing in it can end the quoted string).
    targets = ", ".join(quote(n) for n in [*names, *bound, *literals])
    values = ", ".join([placeholder] * (len(names) + len(bound)) + list(literals.values()))
    sql = f"INSERT INTO {quote(table.name)} ({targets}) VALUES ({values})"  # noqa: S608
    return sql, bound


def update_many(
    conn: Connection, table: Table, rows: Sequence[Mapping[str, Any]], key: str = "id"
) -> None:
    """UPDATE one row per mapping: ``key`` picks the row, every other key is a column to set."""
    if not rows:
        return
    dialect = conn.dialect
    placeholder = _PLACEHOLDERS.get(dialect.paramstyle)
    names = [name for name in rows[0] if name != key]
    if placeholder is None:  # a driver style we did not plan for: let SQLAlchemy do it
        for row in rows:
            values = {name: row[name] for name in names}
            conn.execute(table.update().where(table.c[key] == row[key]).values(values))
        return
    quote = dialect.identifier_preparer.quote
    # Table and column names come from our own schema; every value is a bound parameter.
    assignments = ", ".join(f"{quote(name)} = {placeholder}" for name in names)
    sql = f"UPDATE {quote(table.name)} SET {assignments} WHERE {quote(key)} = {placeholder}"  # noqa: S608
    convert = _converter(table, [*names, key], dialect)
    for start in range(0, len(rows), CHUNK):
        conn.exec_driver_sql(sql, [convert(row) for row in rows[start : start + CHUNK]])


def insert_keyed(
    conn: Connection, table: Table, rows: Sequence[Mapping[str, Any]], key: Sequence[str]
) -> list[int]:
    """INSERT every row and return the new ``id`` of each, in row order.

    ``key`` names columns that are unique together (a constraint of ``table``): the ids are
    read back by them. Much faster than ``INSERT ... RETURNING`` with parameter order on
    SQLite, which SQLAlchemy runs one row at a time; the same on every backend.
    """
    if not rows:
        return []
    insert_many(conn, table, rows)
    wanted = [tuple(row[name] for name in key) for row in rows]
    found = ids_by_key(conn, table, key, wanted)
    return [found[k] for k in wanted]


def ids_by_key(
    conn: Connection, table: Table, key: Sequence[str], wanted: Sequence[tuple[Any, ...]]
) -> dict[tuple[Any, ...], int]:
    """key values -> ``id`` of the rows of ``table`` that have them (those that exist).

    ``key`` names columns with a unique index in that order. The lookup runs on that index on
    every backend: the keys are grouped by all but their last column, and each group is one
    ``a = ? AND b IN (...)`` query (a batch's keys share a few leading values: one connector,
    a few buyers). A row-value ``(a, b) IN (VALUES ...)`` reads the whole index on SQLite and
    a growing store pays for every row it holds (docs/adr/0036)."""
    *lead, last = (table.c[name] for name in key)
    groups: dict[tuple[Any, ...], list[Any]] = {}
    for values in dict.fromkeys(wanted):
        groups.setdefault(tuple(values[:-1]), []).append(values[-1])
    found: dict[tuple[Any, ...], int] = {}
    for prefix, tails in groups.items():
        same = [column == value for column, value in zip(lead, prefix, strict=True)]
        for start in range(0, len(tails), KEY_CHUNK):
            chunk = tails[start : start + KEY_CHUNK]
            query = select(table.c.id, *lead, last).where(*same, last.in_(chunk))
            found.update({tuple(k): row_id for row_id, *k in conn.execute(query)})
    return found


def _converter(
    table: Table, names: list[str], dialect: Dialect
) -> Callable[[Mapping[str, Any]], tuple[Any, ...]]:
    """row -> driver values, applying only the columns whose type has a bind processor."""
    getter = itemgetter(*names)
    converted: list[tuple[int, Callable[[Any], Any]]] = []
    for index, name in enumerate(names):
        process = table.c[name].type.bind_processor(dialect)
        if process is not None:
            converted.append((index, process))
    single = len(names) == 1

    def convert(row: Mapping[str, Any]) -> tuple[Any, ...]:
        values = [getter(row)] if single else list(getter(row))
        for index, process in converted:
            value = values[index]
            if value is not None:
                values[index] = process(value)
        return tuple(values)

    return convert


def insert_if_new(dialect: str, table: Table, keys: Sequence[Column[Any]]) -> Insert:
    """``INSERT ... ON CONFLICT (keys) DO NOTHING`` in the store's dialect (SQLite or
    PostgreSQL): no row when another holds the keys. On PostgreSQL it waits for a transaction
    that just inserted them and, once that one committed, inserts nothing: the look for them
    that follows sees its row. A SELECT then a plain INSERT lets two transactions at once both
    find the keys free, and the second fails on the unique index."""
    if dialect == "postgresql":  # each dialect's module imported only where it is used
        from sqlalchemy.dialects import postgresql

        return postgresql.insert(table).on_conflict_do_nothing(index_elements=list(keys))
    from sqlalchemy.dialects import sqlite

    return sqlite.insert(table).on_conflict_do_nothing(index_elements=list(keys))
