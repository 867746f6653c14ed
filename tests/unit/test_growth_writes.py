"""What intake and processing write stays local in a large store (docs/adr/0036, issue 12).

Ingest's cost grew with the store because of what it *wrote*: on SQLite the outcome UPDATE of
every message set ``duplicate_of``, a foreign key to its own table, which makes SQLite rewrite
every index entry of the row, the sha256 and ``(source, source_ref)`` ones too, whose keys lie
at random places (a page of each index per message in a large store); and the CLI's
``source_ref`` began with a random UUID, so each new message's unique-index entry landed on a
random page as well. These tests hold the results the same and the writes local.
"""

from __future__ import annotations

import hashlib
import itertools
import sqlite3
import struct
from pathlib import Path
from typing import Any

from sqlalchemy import event, select

from edi_gateway.app import Gateway
from edi_gateway.envelope import Envelope
from edi_gateway.pipeline.intake import intake
from edi_gateway.pipeline.process import Policy, process_messages
from edi_gateway.store.db import Store, open_store
from edi_gateway.store.schema import SHA256_KEY_CHARS, messages
from tests import factory as f
from tests.unit.support import make_settings


def _batch(prefix: str) -> list[Envelope]:
    """Two orders, a byte-identical copy of the first, and a file that is not XML."""
    first = f.order(f"{prefix}-1", f.items(2))
    payloads = [first, f.order(f"{prefix}-2", f.items(1)), first, b"<Order>not UBL"]
    return [
        Envelope(payload=p, source="test", source_ref=f"{prefix}-{n}", filename=f"{n}.xml")
        for n, p in enumerate(payloads)
    ]


def test_only_a_duplicate_has_duplicate_of_set(store: Store, policy: Policy) -> None:
    """Stored outcomes as before; the UPDATE that sets ``duplicate_of`` carries only the
    duplicate's row (the others keep the NULL intake wrote, and no UPDATE names the column)."""
    carried: list[int] = []

    def record(_c: Any, _cur: Any, statement: str, params: Any, _ctx: Any, many: bool) -> None:
        if statement.startswith("UPDATE messages SET") and "duplicate_of" in statement:
            carried.append(len(params) if many else 1)

    event.listen(store.engine, "before_cursor_execute", record)
    try:
        ids = intake(store, _batch("PO"))
        states = process_messages(store, policy, ids)
    finally:
        event.remove(store.engine, "before_cursor_execute", record)
    assert [states[i] for i in ids] == ["processed", "processed", "duplicate", "failed"]
    with store.connect() as conn:
        rows = conn.execute(
            select(messages.c.id, messages.c.duplicate_of, messages.c.error_code).order_by(
                messages.c.id
            )
        )
        stored = {mid: (dup, code) for mid, dup, code in rows}
    assert stored == {
        ids[0]: (None, None),
        ids[1]: (None, None),
        ids[2]: (ids[0], "DUPLICATE"),
        ids[3]: (None, "NOT_WELL_FORMED"),
    }
    assert carried == [1]


def test_a_redriven_message_gets_duplicate_of_written(store: Store, policy: Policy) -> None:
    """A message processed before (attempts > 0) is written with the column whatever it ends
    as: the rule that leaves it out holds only for a message's first outcome."""
    [original] = intake(store, _batch("PO")[:1])
    process_messages(store, policy, [original])
    copy = Envelope(payload=f.order("PO-1", f.items(2)), source="t", source_ref="c", filename="c")
    [mid] = intake(store, [copy])
    with store.connect() as conn:  # as if it had failed once and was redriven
        conn.execute(messages.update().where(messages.c.id == mid).values(attempts=1))
    assert process_messages(store, policy, [mid]) == {mid: "duplicate"}
    with store.connect() as conn:
        row = conn.execute(
            select(messages.c.duplicate_of, messages.c.attempts).where(messages.c.id == mid)
        ).one()
    assert tuple(row) == (original, 2)


def _orders_sharing_a_sha256_key() -> tuple[bytes, bytes]:
    """Two orders (other numbers, other bytes) whose sha256 begin with the same 8 hex digits,
    the duplicate check's index key (``schema.sha256_key``): a real collision, found by the
    birthday bound in ~80,000 numbers (the payload's hash resumed after its constant head)."""
    marker = b"PO-0000000"
    head, *rest = f.order(marker.decode()).split(marker)
    hashed = hashlib.sha256(head)
    seen: dict[str, bytes] = {}
    for n in itertools.count(1):
        number = b"PO-%07d" % n
        digest = hashed.copy()
        digest.update(number + number.join(rest))
        key = digest.hexdigest()[:SHA256_KEY_CHARS]
        if key in seen:
            earlier = seen[key]
            return head + earlier + earlier.join(rest), head + number + number.join(rest)
        seen[key] = number
    raise AssertionError("unreachable")


def test_bytes_sharing_the_sha256_key_are_no_duplicates(store: Store, policy: Policy) -> None:
    """The duplicate check finds candidates by a prefix of the sha256 and must compare the
    whole of it: two different orders with the same prefix are each processed, and a
    byte-identical re-send of the second is the duplicate of the second, not of the first."""
    first, second = _orders_sharing_a_sha256_key()
    assert first != second
    assert hashlib.sha256(first).hexdigest()[:8] == hashlib.sha256(second).hexdigest()[:8]
    sent = [first, second, second]
    ids = [
        intake(store, [Envelope(payload=p, source="t", source_ref=f"k{n}", filename="k")])[0]
        for n, p in enumerate(sent)
    ]
    states = [process_messages(store, policy, [mid])[mid] for mid in ids]
    assert states == ["processed", "processed", "duplicate"]
    with store.connect() as conn:
        rows = conn.execute(
            select(messages.c.id, messages.c.duplicate_of).where(messages.c.id.in_(ids))
        )
        assert dict(rows.all()) == {ids[0]: None, ids[1]: None, ids[2]: ids[1]}


def _wal_pages(wal: Path, start: int) -> list[int]:
    """Page numbers of the frames of a WAL file from byte ``start`` on (4 KiB pages)."""
    data = wal.read_bytes()
    size = struct.unpack(">I", data[8:12])[0]
    return [
        struct.unpack(">I", data[at : at + 4])[0]
        for at in range(max(start, 32), len(data) - 24 - size + 1, 24 + size)
    ]


def test_processing_writes_no_page_of_the_random_key_indexes(
    tmp_path: Path, policy: Policy
) -> None:
    """SQLite: a store of 3,000 messages, then a batch of 60 orders taken in and processed.
    Processing changes each message's state; the pages of the sha256 and ``(source,
    source_ref)`` indexes it writes (read from the WAL, checkpoints off) must be none: before
    the fix it wrote about one page of each per message."""
    db = tmp_path / "gateway.db"
    store = open_store(f"sqlite:///{db}")

    def no_checkpoints(dbapi: Any, _record: Any, _proxy: Any) -> None:
        dbapi.execute("PRAGMA wal_autocheckpoint=0")

    event.listen(store.engine, "checkout", no_checkpoints)
    try:
        seeds = [
            Envelope(payload=f"<x>{n}</x>".encode(), source="seed", source_ref=f"{n}", filename="s")
            for n in range(3000)
        ]
        intake(store, seeds)
        batch = [
            Envelope(payload=f.order(f"PO-{n}"), source="test", source_ref=f"b{n}", filename="b")
            for n in range(60)
        ]
        ids = intake(store, batch)
        wal = Path(f"{db}-wal")
        before = wal.stat().st_size
        states = process_messages(store, policy, ids)
        assert set(states.values()) == {"processed"}
        written = set(_wal_pages(wal, before))
        with sqlite3.connect(db) as reader:
            pages = reader.execute(
                "SELECT name, pageno FROM dbstat WHERE name IN "
                "('ix_messages_sha256_key', 'sqlite_autoindex_messages_1')"
            ).fetchall()
        reader.close()
        index_pages = {name: {p for n, p in pages if n == name} for name, _ in pages}
        assert all(len(p) > 10 for p in index_pages.values())  # the indexes span many pages
        assert {name: p & written for name, p in index_pages.items()} == {
            name: set() for name in index_pages
        }
    finally:
        store.close()


def test_cli_source_refs_are_unique_and_in_time_order(tmp_path: Path) -> None:
    """``ingest`` twice over the same files: every message its own ``source_ref``, led by the
    time (a run's keys after the earlier run's) and as long as the UUID it replaced."""
    folder = tmp_path / "in"
    folder.mkdir()
    for n in range(5):
        (folder / f"po-{n}.xml").write_bytes(f.order(f"PO-{n}"))
    gateway = Gateway(make_settings(tmp_path), open_store(f"sqlite:///{tmp_path / 'g.db'}"))
    try:
        gateway.ingest([folder])
        gateway.ingest([folder])
        with gateway.store.connect() as conn:
            rows = conn.execute(
                select(messages.c.source_ref, messages.c.state).order_by(messages.c.id)
            ).all()
    finally:
        gateway.close()
    refs = [ref for ref, _ in rows]
    assert [state for _, state in rows] == ["processed"] * 5 + ["duplicate"] * 5
    assert len(set(refs)) == 10
    heads = [ref.split(":", 1)[0] for ref in refs]
    assert all(len(h) == 32 and int(h, 16) >= 0 for h in heads)
    stamps = [int(h[:16], 16) for h in heads]
    assert stamps == sorted(stamps)
    assert max(stamps[:5]) <= min(stamps[5:])
    files = {str(folder / f"po-{n}.xml") for n in range(5)}
    assert {ref.split(":", 1)[1] for ref in refs[:5]} == {ref.split(":", 1)[1] for ref in refs[5:]}
    assert {ref.split(":", 1)[1] for ref in refs} == files


def _automerge(db: Path) -> dict[str, int]:
    with sqlite3.connect(db) as conn:
        found = {
            fts: conn.execute(f"SELECT v FROM {fts}_config WHERE k = 'automerge'").fetchone()
            for fts in ("orders_search", "lines_search")
        }
    conn.close()
    return {fts: row[0] if row else 4 for fts, row in found.items()}  # no row: FTS5's default


def test_search_tables_merge_eight_segments_new_or_migrated(tmp_path: Path) -> None:
    """A new store's FTS5 tables merge at 8 segments a level; a store at 0026 (FTS5's default
    4) gets 8 from migration 0027, and 4 back when downgraded."""
    from alembic import command
    from sqlalchemy import create_engine

    from edi_gateway.store.db import alembic_config

    db = tmp_path / "gateway.db"
    open_store(f"sqlite:///{db}").close()
    assert _automerge(db) == {"orders_search": 8, "lines_search": 8}
    engine = create_engine(f"sqlite:///{db}")
    try:
        command.downgrade(alembic_config(engine), "0026")
        assert _automerge(db) == {"orders_search": 4, "lines_search": 4}
    finally:
        engine.dispose()
    open_store(f"sqlite:///{db}").close()
    assert _automerge(db) == {"orders_search": 8, "lines_search": 8}


def test_search_finds_every_batch_across_merges(store: Store, policy: Policy) -> None:
    """Forty batches (FTS5 writes a segment per processing transaction and merges them by 8):
    every order is still found by its number and by an item ID of one of its lines, and a
    text in none is not."""
    from edi_gateway.store.queries import Filters, page_orders

    for n in range(40):
        env = Envelope(
            payload=f.order(f"MRG-{n:03d}", [f.Item("1", "10", seller_item=f"ITEM-{n:03d}-X")]),
            source="test",
            source_ref=f"m{n}",
            filename="m.xml",
        )
        process_messages(store, policy, intake(store, [env]))
    with store.session() as session:
        for n in range(40):
            for text in (f"MRG-{n:03d}", f"ITEM-{n:03d}-X"):
                rows = page_orders(session, Filters(search=text)).rows
                assert [r["order_number"] for r in rows] == [f"MRG-{n:03d}"], text
        assert page_orders(session, Filters(search="ITEM-999")).total == 0
