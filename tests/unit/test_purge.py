"""Retention (docs/adr/0037): what a purge removes and keeps, its archive, its restore, its dedup
keys, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import shutil
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import and_, func, insert, select, type_coerce, update
from sqlalchemy.types import NullType

from edi_gateway import crashpoints
from edi_gateway.app import Gateway
from edi_gateway.config import Settings
from edi_gateway.domain.status import EXACT
from edi_gateway.errors import ErrorCode, GatewayError
from edi_gateway.outbound.forward import flush_all
from edi_gateway.pipeline.operator import dismiss
from edi_gateway.store import schema as s
from edi_gateway.store.archive import file_sha256
from edi_gateway.store.db import Store
from edi_gateway.store.leases import hold
from edi_gateway.store.purge import purge, restore, runs
from edi_gateway.store.queries import Filters, page_orders
from edi_gateway.store.types import UTCDateTime
from tests import factory as f
from tests.unit.support import detail, receive
from tests.unit.test_cancel import settings

MAPPINGS = Path(__file__).resolve().parents[2] / "mappings"
OLD = datetime(2025, 1, 15, 9, 30, tzinfo=UTC)
BEFORE = datetime(2025, 6, 1, tzinfo=UTC)
BOOKKEEPING = {"purge_runs", "purged_messages", "purged_documents", "leases"}
"""Tables a purge and a restore write by design: compared apart."""


def invoiced(gw: Gateway, ref: str) -> None:
    """``ref`` forwarded, answered, despatched and invoiced in full: Fully invoiced."""
    receive(gw, f.order(ref, f.items(2)))
    flush_all(gw.store, gw.settings)
    receive(gw, f.order_response(f"R-{ref}", ref, "AP"))
    receive(gw, f.despatch_advice(f"D-{ref}", ref, [("1", "10"), ("2", "10")]))
    receive(gw, f.invoice(f"INV-{ref}", ref, [("1", "10", "2.25"), ("2", "10", "3.25")]))
    flush_all(gw.store, gw.settings)
    assert detail(gw, ref)["status"] == "Fully invoiced"


def cancelled(gw: Gateway, ref: str) -> None:
    receive(gw, f.order(ref, f.items(1)))
    receive(gw, f.order_cancellation(f"C-{ref}", ref))
    flush_all(gw.store, gw.settings)
    assert detail(gw, ref)["status"] == "Cancelled"


def backdate(store: Store, at: datetime = OLD) -> None:
    """Every moment the store holds, moved to ``at``: all of it happened long ago."""
    with store.connect() as conn:
        for table in s.metadata.sorted_tables:
            if table.name in BOOKKEEPING:
                continue
            moments = {c.name: at for c in table.columns if isinstance(c.type, UTCDateTime)}
            moments = {k: v for k, v in moments.items() if k not in ("next_attempt_at",)}
            if moments:
                conn.execute(update(table).values(**moments))
        conn.execute(
            update(s.orders).values(
                response_due_at=None, despatch_due_at=None, response_overdue_at=None
            )
        )


def dump(store: Store) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table but the purge's own, in primary key order, every value as the
    driver returns it (no type's processing: the text SQLite holds, byte for byte)."""
    with store.connect() as conn:
        return {
            table.name: [
                tuple(bytes(v) if isinstance(v, memoryview) else v for v in r)
                for r in conn.execute(
                    select(*(type_coerce(c, NullType()).label(c.name) for c in table.columns))
                    .select_from(table)
                    .order_by(*table.primary_key.columns)
                )
            ]
            for table in s.metadata.sorted_tables
            if table.name not in BOOKKEEPING
        }


def count(store: Store, table: Any, *where: Any) -> int:
    with store.connect() as conn:
        return int(conn.scalar(select(func.count()).select_from(table).where(*where)) or 0)


def refs(store: Store) -> list[str]:
    with store.connect() as conn:
        return sorted(conn.scalars(select(s.orders.c.order_number)))


@pytest.fixture
def world(store: Store, tmp_path: Path) -> Gateway:
    return make_world(store, tmp_path)


def make_world(store: Store, tmp_path: Path) -> Gateway:
    """PO-1 Fully invoiced, PO-2 Cancelled, PO-3 still Received (and forwarded last: the
    supplier's latest bundle), a dismissed failed message and a failed one not dismissed."""
    gw = Gateway(settings(tmp_path), store)
    invoiced(gw, "PO-1")
    cancelled(gw, "PO-2")
    receive(gw, f.order("PO-3", f.items(1)))
    flush_all(gw.store, gw.settings)
    bad = receive(gw, b"<Order>not UBL")
    receive(gw, b"<Invoice>broken too")
    dismiss(store, bad, "junk from a test harness", actor="tester")
    backdate(store)
    return gw


def test_a_purge_takes_what_is_finished_and_a_restore_brings_back_every_row(
    world: Gateway, tmp_path: Path
) -> None:
    store = world.store
    before = dump(store)
    done = purge(store, BEFORE, actor="tester", archive_dir=tmp_path / "archive")
    assert refs(store) == ["PO-3"]
    with store.connect() as conn:
        states = sorted(conn.scalars(select(s.messages.c.state)))
    assert states == ["failed", "processed"]  # PO-3's order, the failed one not dismissed
    assert done.counts["orders"] == 2 and done.counts["messages"] == 7
    assert done.counts["message_payloads"] == 7 and done.counts["forwards"] == 2
    assert done.oldest == OLD and done.newest == OLD
    assert done.archive is not None and done.archive_sha256 is not None
    assert Path(done.archive).stat().st_mode & 0o777 == 0o600
    [run] = runs(store)
    assert run["state"] == "done" and run["actor"] == "tester"
    assert run["counts"] == dict(done.counts) and run["archive_sha256"] == done.archive_sha256
    for table in ("document_lines", "history", "order_lines", "outbox", "order_keys"):
        assert done.counts[table] > 0, table
    got = restore(store, Path(done.archive))
    assert got["restored"] == dict(done.counts) and got["skipped_batches"] == 0
    assert dump(store) == before  # row for row, payload bytes included
    assert count(store, s.purged_messages) == 0 and count(store, s.purged_documents) == 0
    assert runs(store)[0]["restored_at"] is not None
    again = restore(store, Path(done.archive))  # everything is there: nothing to do
    batches = len(Path(done.archive).read_text().splitlines()) - 1
    assert again["restored"] == {} and again["skipped_batches"] == batches == 2
    assert dump(store) == before


def test_a_documents_preceding_invoice_is_archived_and_restored(
    world: Gateway, tmp_path: Path
) -> None:
    """``documents.preceding_ref`` (0030: a bill's preceding invoice, which its orphan waits
    for) goes into the archive with the rest of its row and comes back from it."""
    store = world.store
    d = s.documents.c
    with store.connect() as conn:
        conn.execute(
            update(s.documents).where(d.doc_number == "INV-PO-1").values(preceding_ref="1000")
        )
    before = dump(store)
    done = purge(store, BEFORE, actor="tester", archive_dir=tmp_path / "archive")
    assert done.archive is not None
    assert count(store, s.documents, d.preceding_ref == "1000") == 0
    restore(store, Path(done.archive))
    assert dump(store) == before
    assert count(store, s.documents, d.preceding_ref == "1000") == 1


def test_a_restored_order_is_found_by_the_search_again(world: Gateway, tmp_path: Path) -> None:
    store = world.store
    done = purge(store, BEFORE, actor="tester", archive_dir=tmp_path / "archive")
    with store.reading() as session:
        assert page_orders(session, Filters(search="PO-1")).rows == []
    assert done.archive is not None
    restore(store, Path(done.archive))
    with store.reading() as session:
        found = page_orders(session, Filters(search="PO-1")).rows
        by_item = page_orders(session, Filters(search="SKU-00002")).rows
    assert [r["order_number"] for r in found] == ["PO-1"]
    assert "PO-1" in [r["order_number"] for r in by_item]


def test_a_dry_run_counts_exactly_what_the_purge_then_removes(
    world: Gateway, tmp_path: Path
) -> None:
    store = world.store
    before = dump(store)
    dry = purge(store, BEFORE, actor="tester", archive_dir=tmp_path / "a", dry_run=True)
    assert dump(store) == before and runs(store) == [] and not (tmp_path / "a").exists()
    real = purge(store, BEFORE, actor="tester", archive_dir=tmp_path / "a", batch=1)
    assert dry.counts == real.counts and (dry.oldest, dry.newest) == (real.oldest, real.newest)
    assert dry.as_dict()["dry_run"] is True and dry.run_id is None


def test_bytes_and_numbers_of_purged_documents_are_never_taken_as_new(
    world: Gateway, tmp_path: Path
) -> None:
    store = world.store
    purge(store, BEFORE, actor="tester", archive_dir=None)
    same = receive(world, f.order("PO-1", f.items(2)))  # the very bytes again
    other = receive(world, f.order("PO-1", f.items(3)))  # the same number, other content
    with store.connect() as conn:
        m = s.messages.c
        rows = {r.id: r for r in conn.execute(select(m.id, m.state, m.error_code, m.error_detail))}
    assert rows[same].state == "duplicate" and "(purged since)" in rows[same].error_detail
    assert rows[other].state == "failed" and rows[other].error_code == "DUPLICATE_ID_CONFLICT"
    assert refs(store) == ["PO-3"]
    dismissed_again = receive(world, b"<Order>not UBL")  # a dismissed failure leaves no key
    assert rows.get(dismissed_again) is None
    with store.connect() as conn:
        state = conn.scalar(select(s.messages.c.state).where(s.messages.c.id == dismissed_again))
    assert state == "failed"


def test_nothing_open_goes(world: Gateway, tmp_path: Path) -> None:
    store = world.store
    with store.connect() as conn:
        x, o = s.outbox.c, s.orders.c
        po1 = conn.scalar(select(o.id).where(o.order_number == "PO-1"))
        po2 = conn.scalar(select(o.id).where(o.order_number == "PO-2"))
        # PO-1: one of its outbox rows is still waiting to be delivered
        first = conn.scalar(select(func.min(x.id)).where(x.order_id == po1))
        conn.execute(update(s.outbox).where(x.id == first).values(state="pending"))
        # PO-2: a ledger discrepancy nobody cleared
        conn.execute(update(s.orders).where(o.id == po2).values(attention=True))
    done = purge(store, BEFORE, actor="tester", archive_dir=None)
    assert refs(store) == ["PO-1", "PO-2", "PO-3"]
    assert done.counts["orders"] == 0 and done.counts["messages"] == 1  # the dismissed one
    with store.connect() as conn:
        conn.execute(update(s.outbox).values(state="sent"))
        conn.execute(update(s.orders).values(attention=False))
        # PO-1 unanswered past its response due time: its clock is still running
        conn.execute(
            update(s.orders).where(o.id == po1).values(response_due_at=OLD, response_code=None)
        )
        # PO-2 touched after the purge date
        conn.execute(
            update(s.history)
            .where(
                s.history.c.id
                == select(func.max(s.history.c.id))
                .where(s.history.c.order_id == po2)
                .scalar_subquery()
            )
            .values(at=BEFORE + timedelta(days=1))
        )
    assert purge(store, BEFORE, actor="tester", archive_dir=None).counts["orders"] == 0
    assert refs(store) == ["PO-1", "PO-2", "PO-3"]


def test_a_message_shared_with_an_order_that_stays_keeps_both(
    world: Gateway, tmp_path: Path
) -> None:
    """A duplicate of PO-1's order message that also belongs to PO-3 (by its history)."""
    store = world.store
    with store.connect() as conn:
        m, o, h = s.messages.c, s.orders.c, s.history.c
        po1 = conn.scalar(select(o.id).where(o.order_number == "PO-1"))
        po3 = conn.scalar(select(o.id).where(o.order_number == "PO-3"))
        first = conn.scalar(select(func.min(m.id)).where(m.order_id == po1))
        received = and_(h.message_id == first, h.event == "message.received")
        conn.execute(update(s.history).where(received).values(order_id=po3))
    purge(store, BEFORE, actor="tester", archive_dir=None)
    assert refs(store) == ["PO-1", "PO-3"]
    assert count(store, s.messages, s.messages.c.id == first) == 1


def test_a_message_that_also_holds_an_orphan_document_keeps_its_order(
    world: Gateway, tmp_path: Path
) -> None:
    """A supplier's CSV reply may hold documents of several orders: one still waiting for its
    order (an orphan) keeps the message, and so the order its other document belongs to."""
    store = world.store
    with store.connect() as conn:
        d = s.documents.c
        row = conn.execute(
            select(s.documents).where(d.kind == "Invoice", d.doc_number == "INV-PO-1")
        ).one()
        orphan = {**row._asdict(), "order_id": None, "doc_number": "INV-PO-9", "order_ref": "PO-9"}
        orphan.pop("id")
        conn.execute(insert(s.documents).values(**orphan))
    purge(store, BEFORE, actor="tester", archive_dir=None)
    assert refs(store) == ["PO-1", "PO-3"]


def test_the_latest_bundle_of_each_supplier_stays(world: Gateway, tmp_path: Path) -> None:
    """The next bundle's number counts up from the highest kept: PO-2 holds the seller's latest
    (2), and stays, though another supplier's bundles number higher."""
    store = world.store
    with store.connect() as conn:
        o, fw = s.orders.c, s.forwards.c
        po3 = conn.scalar(select(o.id).where(o.order_number == "PO-3"))
        conn.execute(update(s.forwards).where(fw.order_id == po3).values(partner="x", seq=99))
        seqs = dict(conn.execute(select(fw.order_id, fw.seq).where(fw.order_id != po3)).all())
    assert sorted(seqs.values()) == [1, 2]
    purge(store, BEFORE, actor="tester", archive_dir=None)
    assert refs(store) == ["PO-2", "PO-3"]


def test_another_purge_holding_the_lease_is_refused(world: Gateway) -> None:
    store = world.store
    with store.connect() as conn:
        hold(conn, "purge", "someone else", 300)
    with pytest.raises(GatewayError) as caught:
        purge(store, BEFORE, actor="tester", archive_dir=None)
    assert caught.value.code is ErrorCode.PURGE_RUNNING
    assert "someone else" in caught.value.message
    assert refs(store) == ["PO-1", "PO-2", "PO-3"] and runs(store) == []


def test_a_restore_and_a_purge_refuse_each_other_while_they_run(
    world: Gateway, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The lease a restore takes is committed before it works: a purge (or a second restore)
    started meanwhile is refused at once with PURGE_RUNNING, and the restore still completes;
    a restore started while a purge runs is refused the same way."""
    store = world.store
    first = purge(store, BEFORE, actor="tester", archive_dir=tmp_path / "archive")
    assert first.archive is not None
    archived = Path(first.archive)
    refused: list[str] = []

    def attempt(what: Any) -> None:
        with pytest.raises(GatewayError) as caught:
            what()
        assert "the purge lease is held by" in caught.value.message
        refused.append(caught.value.code.value)

    real = crashpoints.reach

    def meanwhile(point: str) -> None:
        real(point)
        if point == "restore-leased":
            attempt(lambda: purge(store, BEFORE, actor="other", archive_dir=None))
            attempt(lambda: restore(store, archived))

    monkeypatch.setattr(crashpoints, "reach", meanwhile)
    assert restore(store, archived)["skipped_batches"] == 0
    assert refused == [ErrorCode.PURGE_RUNNING.value] * 2
    assert refs(store) == ["PO-1", "PO-2", "PO-3"] and len(runs(store)) == 1
    monkeypatch.setattr(crashpoints, "reach", real)

    def restore_meanwhile() -> bool:
        attempt(lambda: restore(store, archived))
        return True

    again = purge(store, BEFORE, actor="tester", archive_dir=None, keep_going=restore_meanwhile)
    assert again.complete and len(refused) > 2  # once after each batch
    assert set(refused) == {ErrorCode.PURGE_RUNNING.value}
    assert refs(store) == ["PO-3"]


def test_a_restore_longer_than_its_lease_completes_when_nobody_took_it(
    world: Gateway, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A big archive takes longer than the lease: the restore's own lease ran out, nobody
    else took it, so the restore commits (and renews it while it does)."""
    from edi_gateway.store import purge as purge_module

    store = world.store
    done = purge(store, BEFORE, actor="tester", archive_dir=tmp_path / "archive")
    assert done.archive is not None
    monkeypatch.setattr(purge_module, "LEASE_SECONDS", 0.2)
    real = crashpoints.reach

    def slow(point: str) -> None:
        real(point)
        if point == "restore-leased":
            time.sleep(0.5)

    monkeypatch.setattr(crashpoints, "reach", slow)
    assert restore(store, Path(done.archive))["skipped_batches"] == 0
    assert refs(store) == ["PO-1", "PO-2", "PO-3"]


def test_a_restore_whose_lease_was_taken_over_restores_nothing(
    world: Gateway, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A restore that outlives its lease, taken by another meanwhile, is rolled back whole."""
    store = world.store
    done = purge(store, BEFORE, actor="tester", archive_dir=tmp_path / "archive")
    assert done.archive is not None
    real = crashpoints.reach

    def taken_over(point: str) -> None:
        real(point)
        if point == "restore-leased":
            with store.connect() as conn:
                hold(conn, "purge", "a purge that found it run out", 300, force=True)

    monkeypatch.setattr(crashpoints, "reach", taken_over)
    with pytest.raises(GatewayError) as caught:
        restore(store, Path(done.archive))
    assert caught.value.code is ErrorCode.PURGE_RUNNING
    assert refs(store) == ["PO-3"]
    assert runs(store)[0]["restored_at"] is None


def test_hostile_dates_and_archives_are_refused_with_a_code(world: Gateway, tmp_path: Path) -> None:
    store = world.store
    with pytest.raises(GatewayError) as caught:
        purge(store, datetime.now(UTC) + timedelta(days=1), actor="t", archive_dir=None)
    assert caught.value.code is ErrorCode.USAGE
    done = purge(store, BEFORE, actor="tester", archive_dir=tmp_path / "archive")
    assert done.archive is not None
    path = Path(done.archive)
    tampered = tmp_path / "tampered.jsonl"
    shutil.copy(path, tampered)
    text = tampered.read_text()
    tampered.write_text(text.replace("PO-1", "PO-7", 1))
    for bad, why in [
        (tampered, "recorded"),
        (tmp_path / "missing.jsonl", "cannot be read"),
        (Path(__file__), "not JSON"),
    ]:
        with pytest.raises(GatewayError) as caught:
            restore(store, bad)
        assert caught.value.code is ErrorCode.PURGE_ARCHIVE_INVALID, bad
        assert why in caught.value.message
    assert refs(store) == ["PO-3"]
    header = json.loads(text.splitlines()[0])
    assert header["run"] == done.run_id


def test_an_archive_folder_that_cannot_be_written_purges_nothing(
    world: Gateway, tmp_path: Path
) -> None:
    store = world.store
    before = dump(store)
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with pytest.raises(GatewayError) as caught:
        purge(store, BEFORE, actor="tester", archive_dir=blocker)
    assert caught.value.code is ErrorCode.TARGET_UNWRITABLE
    assert dump(store) == before
    [run] = runs(store)
    assert run["state"] == "failed" and "cannot write the purge archive" in run["error"]
    assert purge(store, BEFORE, actor="tester", archive_dir=tmp_path / "ok").counts["orders"] == 2


def test_a_batch_cut_off_by_a_crash_is_ignored_and_ids_taken_again_conflict(
    world: Gateway, tmp_path: Path
) -> None:
    store = world.store
    before = dump(store)
    done = purge(store, BEFORE, actor="tester", archive_dir=tmp_path / "archive", batch=1)
    assert done.archive is not None
    path = Path(done.archive)
    cut = tmp_path / "cut.jsonl"
    cut.write_bytes(path.read_bytes() + b'{"batch": 9, "tables": {"orders": [')
    with store.connect() as conn:  # a run of another store: no sha256 to compare
        conn.execute(update(s.purge_runs).values(archive_sha256=None))
    got = restore(store, cut)
    assert got["incomplete_last_batch"] is True and dump(store) == before
    purge(store, BEFORE, actor="tester", archive_dir=None)
    kept = {r[0] for r in dump(store)["history"]}
    gone = min(r[0] for r in before["history"] if r[0] not in kept)
    with store.connect() as conn:  # an id of a purged history event taken by another since
        conn.execute(insert(s.history).values(id=gone, at=OLD, event="note", detail="x", actor="t"))
    with pytest.raises(GatewayError) as caught:
        restore(store, path)
    assert caught.value.code is ErrorCode.RESTORE_CONFLICT


def test_an_archive_written_before_outbox_payloads_moved_restores_into_them(
    world: Gateway, tmp_path: Path
) -> None:
    """An older release's outbox rows held their bytes and had no error_code, its messages no
    cut_off, its documents no preceding_ref: such an archive restores them into
    outbox_payloads (docs/adr/0042), byte for byte, error codes derived, the processing
    counts 0, no preceding invoice (as migration 0030 leaves stored documents)."""
    store = world.store
    ol, o = s.order_lines.c, s.orders.c
    with store.connect() as conn:  # a finished order's line despatched 1E-29 beyond its bill
        line = conn.execute(
            select(ol.id, ol.qty_invoiced)
            .join(s.orders, o.id == ol.order_id)
            .where(o.status == "Fully invoiced")
            .limit(1)
        ).one()
        more = EXACT.add(line.qty_invoiced, Decimal("1E-29"))
        conn.execute(
            update(s.order_lines).where(ol.id == line.id).values(qty_despatched=more, unbilled=True)
        )
    before = dump(store)
    done = purge(store, BEFORE, actor="tester", archive_dir=tmp_path / "archive")
    assert done.archive is not None and done.counts["outbox_payloads"] == done.counts["outbox"]
    lines = Path(done.archive).read_text(encoding="utf-8").splitlines()
    old, unbilled = [lines[0]], 0
    for line in lines[1:]:  # each batch as the older version wrote it
        batch = json.loads(line)
        tables = batch["tables"]
        payloads = {r["outbox_id"]: r["payload"] for r in tables.pop("outbox_payloads", [])}
        for row in tables.get("outbox", []):
            row["payload"] = payloads.pop(row["id"])
            del row["error_code"]  # nor had its outbox this column (0025)
        for row in tables.get("messages", []):
            del row["cut_off"]  # nor its messages this one (0026)
        for row in tables.get("order_lines", []):
            unbilled += bool(row.pop("unbilled"))  # nor its order lines this one (0029)
        for row in tables.get("documents", []):
            assert row.pop("preceding_ref") is None  # nor its documents this one (0030)
        assert not payloads
        old.append(json.dumps(batch))
    legacy = tmp_path / "legacy.jsonl"
    legacy.write_text("\n".join(old) + "\n", encoding="utf-8")
    with store.connect() as conn:  # as the older version recorded its own file's sha256
        conn.execute(update(s.purge_runs).values(archive_sha256=file_sha256(legacy)))
    got = restore(store, legacy)
    assert got["restored"]["outbox_payloads"] == done.counts["outbox"]
    assert unbilled  # a purged line was unbilled: restored so, from its quantities
    assert dump(store) == before


def test_invoice_numbers_of_purged_invoices_are_not_issued_again(
    store: Store, tmp_path: Path
) -> None:
    """The supplier billed PO-1 of one buyer; once that is purged, PO-1 of another buyer gets
    the next invoice number, never the purged one again."""
    from edi_gateway.outbound.invoice import InvoiceRequest, invoice
    from tests.unit.test_invoice import BUYER_LEGAL, SELLER_LEGAL

    (tmp_path / "out").mkdir()
    other = "7300010000018"
    config = Settings.model_validate(
        {
            "path": tmp_path / "gateway.yaml",
            "partners": [
                f.buyer_partner(outbound="to-buyer", legal=BUYER_LEGAL),
                {
                    **f.buyer_partner(outbound="to-buyer", legal=BUYER_LEGAL),
                    "id": "buyer2",
                    "endpoint": {"scheme": "0088", "value": other},
                },
                f.seller_partner(legal=SELLER_LEGAL),
            ],
            "connectors": [
                {"name": "to-buyer", "type": "folder", "direction": "out", "path": "out"}
            ],
        },
        context={"base_dir": tmp_path},
    )
    gw = Gateway(config, store)
    receive(gw, f.order("PO-1", f.items(1)))
    receive(gw, f.despatch_advice("D-1", "PO-1", [("1", "10")]))
    first = invoice(store, config, "PO-1", InvoiceRequest(), actor="ops")
    flush_all(store, config)
    assert (first.doc_number, first.status) == ("INV-PO-1-1", "Fully invoiced")
    backdate(store)
    assert purge(store, BEFORE, actor="tester", archive_dir=None).counts["orders"] == 1
    receive(gw, f.order("PO-1", f.items(1), buyer=other))
    receive(gw, f.despatch_advice("D-2", "PO-1", [("1", "10")], buyer=other))
    second = invoice(store, config, "PO-1", InvoiceRequest(), actor="ops")
    assert second.doc_number == "INV-PO-1-2"


@pytest.mark.parametrize(
    ("retention", "says"),
    [
        ({"after_days": 0, "archive_dir": "a"}, "greater than or equal to 1"),
        ({"after_days": "soon", "archive_dir": "a"}, "valid integer"),
        ({"after_days": 30}, "needs archive_dir"),
        ({"after_days": 30, "archive": False, "archive_dir": "a"}, "keep one of the two"),
        ({"after_days": 30, "archive_dir": "a", "every_hours": 0}, "greater than 0"),
        ({"after_days": 30, "archive_dir": "a", "keep_days": 3}, "keep_days"),
    ],
)
def test_a_wrong_retention_section_is_refused(
    tmp_path: Path, retention: dict[str, Any], says: str
) -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match=says):
        Settings.model_validate(
            {"path": tmp_path / "gateway.yaml", "retention": retention},
            context={"base_dir": tmp_path},
        )


def test_the_retention_archive_folder_is_relative_to_the_config(tmp_path: Path) -> None:
    config = Settings.model_validate(
        {"path": tmp_path / "gateway.yaml", "retention": {"after_days": 400, "archive_dir": "a"}},
        context={"base_dir": tmp_path},
    )
    assert config.retention is not None and config.retention.archive_dir == tmp_path / "a"
    assert config.retention.every_hours == 24


def test_a_purge_with_nothing_to_take_keeps_no_file_but_the_run(
    store: Store, tmp_path: Path
) -> None:
    done = purge(store, BEFORE, actor="tester", archive_dir=tmp_path / "a")
    assert done.counts == {} and done.archive is None and list((tmp_path / "a").iterdir()) == []
    [run] = runs(store)
    assert run["state"] == "done" and run["archive"] is None and run["counts"] == {}


def test_a_batch_holds_at_most_max_lines_order_lines(
    world: Gateway, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PO-1 has 2 lines, PO-2 1: at most 2 lines a batch, they go in two batches (and the
    dismissed message in a third); one order above the bound is a batch of its own."""
    from edi_gateway.store import purge as module

    monkeypatch.setattr(module, "MAX_LINES", 2)
    done = purge(store := world.store, BEFORE, actor="t", archive_dir=tmp_path / "a")
    assert done.archive is not None and done.counts["orders"] == 2
    assert len(Path(done.archive).read_text().splitlines()) == 1 + 3
    assert refs(store) == ["PO-3"]
    monkeypatch.setattr(module, "MAX_LINES", 1)  # PO-1 alone is above it: still purged
    restore(store, Path(done.archive))
    assert purge(store, BEFORE, actor="t", archive_dir=None).counts["orders"] == 2


def test_a_purge_told_to_stop_ends_after_the_batch_in_hand(world: Gateway, tmp_path: Path) -> None:
    """The daemon's time budget: stopped after one batch, the next look takes the rest."""
    store = world.store
    asked: list[int] = []

    def keep_going() -> bool:
        asked.append(1)
        return False

    first = purge(store, BEFORE, actor="t", archive_dir=None, batch=1, keep_going=keep_going)
    assert not first.complete and first.counts["orders"] == 1 and asked == [1]
    assert first.as_dict()["complete"] is False
    rest = purge(store, BEFORE, actor="t", archive_dir=None)
    assert rest.complete and rest.counts["orders"] == 1 and refs(store) == ["PO-3"]
    assert [r["state"] for r in runs(store)] == ["done", "done"]
