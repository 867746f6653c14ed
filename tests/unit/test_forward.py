"""Forwarding orders to suppliers: formats, bundles, schedules, hold/release, crash safety."""

from __future__ import annotations

import csv
import io
import shutil
import zipfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import openpyxl
import pytest
from pydantic import ValidationError
from sqlalchemy import select, update

from edi_gateway.app import Gateway
from edi_gateway.config import ForwardProfile, Settings
from edi_gateway.outbound import forward, outbox
from edi_gateway.outbound.bundle import is_due, next_instant
from edi_gateway.outbound.forward import flush_all, flush_forwards, release
from edi_gateway.outbound.issuing import NotAllowed
from edi_gateway.pipeline.history import now
from edi_gateway.store.db import Store
from edi_gateway.store.tables import Forward, Order, OutboxRow
from tests import factory as f
from tests.unit.support import detail, receive

MAPPINGS = Path(__file__).resolve().parents[2] / "mappings"
LATER = timedelta(days=2)


def settings(tmp_path: Path, layouts: str = "nordisk", **profile: Any) -> Settings:
    """A buyer and a supplier ``seller`` forwarding by ``profile``, layouts of ``layouts``."""
    if not (tmp_path / "mappings" / "seller").exists():
        shutil.copytree(MAPPINGS / layouts, tmp_path / "mappings" / "seller")
    (tmp_path / "sup").mkdir(exist_ok=True)
    return Settings.model_validate(
        {
            "path": tmp_path / "gateway.yaml",
            "partners": [
                f.buyer_partner(),
                f.seller_partner(language="sv", outbound="to-seller", forward=profile),
            ],
            "connectors": [
                {"name": "to-seller", "type": "folder", "direction": "out", "path": "sup"}
            ],
        },
        context={"base_dir": tmp_path},
    )


def gateway(store: Store, tmp_path: Path, layouts: str = "nordisk", **profile: Any) -> Gateway:
    return Gateway(settings(tmp_path, layouts, **profile), store)


def states(gw: Gateway) -> list[str]:
    with gw.store.session() as session:
        return list(session.scalars(select(Forward.state).order_by(Forward.id)))


def events(gw: Gateway, ref: str = "PO-1") -> list[str]:
    return [h["event"] for h in detail(gw, ref)["history"] if h["event"].startswith("forward.")]


def sent(tmp_path: Path) -> list[Path]:
    return sorted((tmp_path / "sup").iterdir())


def test_one_file_per_order_goes_at_once(store: Store, tmp_path: Path) -> None:
    gw = gateway(store, tmp_path, "delftlab", formats=["ubl", "layout:bestelling"])
    original = f.order("PO-1", f.items(2))
    receive(gw, original)
    assert states(gw) == ["queued"]  # queued in the react step, no schedule
    flush_all(gw.store, gw.settings)
    files = sent(tmp_path)
    assert [p.name for p in files] == ["seller-PO-1-bestelling.xml", "seller-PO-1-ubl.xml"]
    assert files[1].read_bytes() == original  # ubl: the order's bytes unchanged
    assert b"<Bestelling" in files[0].read_bytes()
    assert states(gw) == ["delivered"]
    assert events(gw) == ["forward.waiting", "forward.queued", "forward.delivered"]


def test_zip_bundle_holds_every_format_of_every_order(store: Store, tmp_path: Path) -> None:
    formats = ["ubl", "xlsx", "pdf", "csv", "layout:erp"]
    gw = gateway(store, tmp_path, formats=formats, bundle="zip", when_waiting=2)
    receive(gw, f.order("PO-1", f.items(2)))
    assert flush_all(gw.store, gw.settings) == {} and states(gw) == ["waiting"]
    receive(gw, f.order("PO-2", f.items(3)))
    flush_all(gw.store, gw.settings)
    [bundle] = sent(tmp_path)
    assert bundle.suffix == ".zip"
    archive = zipfile.ZipFile(bundle)
    names = sorted(archive.namelist())
    assert names == sorted(
        f"seller-{o}-{fmt}.{ext}"
        for o in ("PO-1", "PO-2")
        for fmt, ext in (
            ("ubl", "xml"),
            ("xlsx", "xlsx"),
            ("pdf", "pdf"),
            ("csv", "csv"),
            ("erp", "txt"),
        )
    )
    assert archive.read("seller-PO-2-pdf.pdf").startswith(b"%PDF")
    book = openpyxl.load_workbook(io.BytesIO(archive.read("seller-PO-2-xlsx.xlsx")))
    assert len(book.sheetnames) == 1
    rows = list(
        csv.reader(
            io.StringIO(archive.read("seller-PO-2-csv.csv").decode("utf-8-sig")), delimiter=";"
        )
    )
    assert len(rows) == 1 + 3
    erp = archive.read("seller-PO-1-erp.txt").decode().splitlines()
    assert [r[0] for r in erp] == ["H", "L", "L", "T"]
    assert states(gw) == ["delivered", "delivered"]
    assert events(gw, "PO-2") == ["forward.waiting", "forward.queued", "forward.delivered"]


def test_workbook_bundle_every_30_minutes(store: Store, tmp_path: Path) -> None:
    gw = gateway(store, tmp_path, formats=["xlsx"], bundle="workbook", every_minutes=30)
    receive(gw, f.order("PO-1", f.items(2)))
    receive(gw, f.order("PO-2", f.items(1)))
    start = now()
    assert flush_forwards(gw.store, gw.settings, at=start) == {}
    queued = flush_forwards(gw.store, gw.settings, at=start + timedelta(minutes=31))
    assert len(queued["seller"]) == 1
    outbox.flush(gw.store, gw.settings)
    [book_file] = sent(tmp_path)
    book = openpyxl.load_workbook(book_file)
    assert len(book.sheetnames) == 2


def test_workbook_bundle_by_column_map(store: Store, tmp_path: Path) -> None:
    gw = gateway(store, tmp_path, formats=["layout:inkop"], bundle="workbook", at=["08:00"])
    receive(gw, f.order("PO-1", f.items(2)))
    receive(gw, f.order("PO-2", f.items(1)))
    flush_all(gw.store, gw.settings, at=now() + LATER)
    [book_file] = sent(tmp_path)
    book = openpyxl.load_workbook(book_file)
    assert book.sheetnames == ["Order PO-1", "Order PO-2"]
    assert book["Order PO-2"].cell(row=6, column=2).value == "SKU-00001"


def test_csv_bundle_has_every_line(store: Store, tmp_path: Path) -> None:
    gw = gateway(store, tmp_path, formats=["csv"], bundle="csv", at=["08:00", "14:30"])
    receive(gw, f.order("PO-1", f.items(2)))
    receive(gw, f.order("PO-2", f.items(3)))
    flush_all(gw.store, gw.settings, at=now() + LATER)
    [file] = sent(tmp_path)
    assert file.read_bytes().startswith(b"\xef\xbb\xbf")  # utf-8-sig, as configured
    rows = list(csv.reader(io.StringIO(file.read_text("utf-8-sig")), delimiter=";"))
    assert len(rows) == 1 + 5
    assert {r[0] for r in rows[1:]} == {"PO-1", "PO-2"}


def test_schedule_every_at_and_when_waiting() -> None:
    def profile(**kw: Any) -> ForwardProfile:
        return ForwardProfile.model_validate({"formats": ["csv"], "bundle": "csv", **kw})

    t = datetime(2026, 11, 22, 10, 5, tzinfo=UTC)
    every = profile(every_minutes=30)
    assert next_instant(every, t) == t.replace(minute=30)
    assert not is_due(every, waiting=3, oldest=t, now=t + timedelta(minutes=24))
    assert is_due(every, waiting=3, oldest=t, now=t + timedelta(minutes=25))
    assert not is_due(every, waiting=0, oldest=None, now=t + LATER)
    fixed = profile(at=["14:30", "08:00"])
    assert next_instant(fixed, t) == t.replace(hour=14, minute=30)
    assert next_instant(fixed, t.replace(hour=15)) == datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
    assert not is_due(fixed, waiting=1, oldest=t, now=t.replace(hour=14, minute=29))
    assert is_due(fixed, waiting=1, oldest=t, now=t.replace(hour=14, minute=30))
    both = profile(at=["23:00"], when_waiting=5)
    assert not is_due(both, waiting=4, oldest=t, now=t + timedelta(hours=1))
    assert is_due(both, waiting=5, oldest=t, now=t)
    assert is_due(both, waiting=1, oldest=t, now=t.replace(hour=23))
    once = ForwardProfile.model_validate({"formats": ["ubl"]})
    assert is_due(once, waiting=1, oldest=t, now=t)


def test_hold_and_release(store: Store, tmp_path: Path) -> None:
    gw = gateway(store, tmp_path, formats=["ubl"], hold=True)
    receive(gw, f.order("PO-1"))
    flush_all(gw.store, gw.settings, at=now() + LATER)
    assert states(gw) == ["held"] and sent(tmp_path) == []
    done = release(gw.store, gw.settings, "PO-1", actor="ops-anna")
    assert done.states == {"seller": "queued"}
    flush_all(gw.store, gw.settings)
    assert len(sent(tmp_path)) == 1 and states(gw) == ["delivered"]
    history = detail(gw)["history"]
    assert any(h["event"] == "forward.released" and h["actor"] == "ops-anna" for h in history)
    with pytest.raises(NotAllowed, match=r"PO-1 is not held.*to seller: delivered"):
        release(gw.store, gw.settings, "PO-1", actor="ops-anna")
    receive(gw, f.order("PO-9", seller="7399999999994", seller_name="Elsewhere"))
    with pytest.raises(NotAllowed, match="not forwarded to a supplier"):
        release(gw.store, gw.settings, "PO-9", actor="ops-anna")


def test_cli_release(store: Store, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from edi_gateway import cli

    gw = gateway(store, tmp_path, formats=["ubl"], hold=True)
    receive(gw, f.order("PO-1"))
    (tmp_path / "gateway.yaml").write_text(_yaml(gw, tmp_path))
    config = str(tmp_path / "gateway.yaml")
    assert cli.main(["--config", config, "orders", "release", "PO-1"]) == 0
    assert "released PO-1 (seller: queued)" in capsys.readouterr().out
    assert cli.main(["--config", config, "orders", "release", "PO-1"]) == 1
    assert "PO-1 is not held" in capsys.readouterr().err


def _yaml(gw: Gateway, tmp_path: Path) -> str:
    import yaml

    data = gw.settings.model_dump(mode="json", exclude={"path"}, exclude_defaults=True)
    data["store"] = {"url": str(gw.store.engine.url.render_as_string(hide_password=False))}
    return yaml.safe_dump(data)


def test_crash_between_bundle_built_and_rows_marked(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    gw = gateway(store, tmp_path, formats=["ubl", "pdf"], bundle="zip", when_waiting=2)
    receive(gw, f.order("PO-1"))
    receive(gw, f.order("PO-2"))

    def crash(*_args: Any) -> None:
        raise RuntimeError("power cut")

    monkeypatch.setattr(forward, "_mark", crash)  # the zip is built and queued, then:
    with pytest.raises(RuntimeError, match="power cut"):
        flush_all(gw.store, gw.settings)
    with gw.store.session() as session:
        assert session.scalars(select(OutboxRow)).all() == []  # the built bundle is gone
    assert states(gw) == ["waiting", "waiting"] and sent(tmp_path) == []  # nothing is lost
    monkeypatch.undo()
    flush_all(gw.store, gw.settings)
    flush_all(gw.store, gw.settings)  # a re-run sends nothing twice
    [bundle] = sent(tmp_path)
    assert len(zipfile.ZipFile(bundle).namelist()) == 4
    assert states(gw) == ["delivered"] * 2


def test_crash_after_delivery_before_the_outbox_row_is_marked(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    gw = gateway(store, tmp_path, formats=["csv"], bundle="csv", when_waiting=1)
    receive(gw, f.order("PO-1"))
    flush_forwards(gw.store, gw.settings)
    real = outbox.record

    def crash_on_sent(session: Any, event: str, *args: Any, **kw: Any) -> None:
        if event == "outbox.sent":
            raise RuntimeError("power cut")
        real(session, event, *args, **kw)

    monkeypatch.setattr(outbox, "record", crash_on_sent)
    with pytest.raises(RuntimeError):
        flush_all(gw.store, gw.settings)
    assert len(sent(tmp_path)) == 1 and states(gw) == ["queued"]  # written, not marked
    monkeypatch.undo()
    flush_all(gw.store, gw.settings)
    assert len(sent(tmp_path)) == 1 and states(gw) == ["delivered"]
    assert events(gw).count("forward.delivered") == 1


def test_file_names_never_collide(store: Store, tmp_path: Path) -> None:
    gw = gateway(
        store,
        tmp_path,
        formats=["csv"],
        bundle="csv",
        when_waiting=1,
        bundle_filename="{supplier}.{ext}",
    )
    for n in range(3):
        receive(gw, f.order(f"PO-{n}"))
        flush_all(gw.store, gw.settings)
    assert [p.name for p in sent(tmp_path)] == ["seller-2.csv", "seller-3.csv", "seller.csv"]
    with gw.store.session() as session:
        names = session.scalars(select(OutboxRow.filename)).all()
    assert len(set(names)) == 3


def test_an_order_cancelled_while_waiting_is_withdrawn_by_the_flush(
    store: Store, tmp_path: Path
) -> None:
    """The flush's own look at ``cancelled`` (a cancellation normally withdraws the forward
    itself): the order is left out of the bundle and its forward withdrawn, once."""
    gw = gateway(store, tmp_path, formats=["csv"], bundle="csv", when_waiting=2)
    receive(gw, f.order("PO-1"))
    with gw.store.session() as session:  # cancelled without touching its waiting forward
        session.execute(update(Order).where(Order.order_number == "PO-1").values(cancelled=True))
    receive(gw, f.order("PO-2"))
    flush_all(gw.store, gw.settings)
    assert states(gw) == ["withdrawn", "delivered"]
    assert events(gw) == ["forward.waiting", "forward.withdrawn"]
    [bundle] = sent(tmp_path)
    rows = list(csv.reader(io.StringIO(bundle.read_text("utf-8-sig")), delimiter=";"))
    assert {row[0] for row in rows[1:]} == {"PO-2"}
    flush_all(gw.store, gw.settings, at=now() + LATER)
    assert states(gw) == ["withdrawn", "delivered"] and len(sent(tmp_path)) == 1


def test_one_order_that_cannot_render_does_not_hold_back_the_rest(
    store: Store, tmp_path: Path
) -> None:
    gw = gateway(store, tmp_path, formats=["layout:erp"], bundle="zip", when_waiting=2)
    (tmp_path / "mappings" / "seller" / "erp.txt.j2").write_text(
        "{{ order.document_id }}{% if order.document_id == 'PO-1' %}{{ order.nope }}{% endif %}"
    )
    receive(gw, f.order("PO-1"))
    receive(gw, f.order("PO-2"))
    flush_all(gw.store, gw.settings)
    assert states(gw) == ["failed", "delivered"]
    assert events(gw) == ["forward.waiting", "forward.failed"]
    assert zipfile.ZipFile(sent(tmp_path)[0]).namelist() == ["seller-PO-2-erp.txt"]


@pytest.mark.parametrize(
    ("profile", "message"),
    [
        ({"formats": ["layout:nope"]}, r"formats\[0\]: no layout 'nope'.*layouts there: erp"),
        ({"formats": ["word"]}, "expected one of ubl, xlsx, pdf, csv or layout:NAME"),
        ({"filename": "{supplier}-{colour}.{ext}"}, r"found \{colour\}.*expected only"),
        ({"filename": "{supplier}-{order}"}, r"expected it to contain \{ext\}"),
        ({"bundle": "zip", "bundle_filename": "{order}.{ext}", "every_minutes": 5}, "{order}"),
        ({"bundle": "zip"}, "needs a schedule"),
        ({"every_minutes": 5}, "with bundle: none"),
        ({"bundle": "workbook", "formats": ["pdf"], "at": ["08:00"]}, r"expected \[xlsx or"),
        ({"bundle": "workbook", "formats": ["layout:erp"], "at": ["08:00"]}, "column map"),
        ({"at": ["8:00"], "bundle": "csv", "formats": ["csv"]}, "expected a quoted UTC time"),
        ({"connector": "nowhere"}, r"forward.connector: found 'nowhere'.*: to-seller"),
    ],
)
def test_config_errors(tmp_path: Path, profile: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        settings(tmp_path, **profile)


def test_routes_choose_the_supplier_first_match_wins(store: Store, tmp_path: Path) -> None:
    from edi_gateway.envelope import Envelope
    from edi_gateway.pipeline.intake import intake
    from edi_gateway.pipeline.process import process_messages

    base = settings(tmp_path, formats=["ubl"]).model_dump(mode="json", exclude={"path"})
    hub = {  # a second supplier; the orders name "seller", routes may send them here instead
        "id": "hub",
        "name": "Hub Supplies",
        "role": "supplier",
        "endpoint": {"scheme": "0088", "value": "7310000000010"},
        "outbound": "to-seller",
        "forward": {"formats": ["ubl"], "filename": "hub-{order}.{ext}"},
    }
    base["partners"].append(hub)
    base["connectors"].append({"name": "edi-in", "type": "folder", "direction": "in", "path": "i"})
    base["routes"] = [
        {
            "name": "via-edi-in",
            "match": {"sender": "buyer", "connector": "edi-in"},
            "deliver_to": "hub",
        },
        {"name": "everything", "match": {"connector": "edi-in"}, "deliver_to": "seller"},
    ]
    gw = Gateway(
        Settings.model_validate(
            {**base, "path": tmp_path / "gateway.yaml"}, context={"base_dir": tmp_path}
        ),
        store,
    )

    def arrive(payload: bytes, source: str, ref: str) -> None:
        [mid] = intake(gw.store, [Envelope(payload, source, ref, f"{ref}.xml")])
        process_messages(gw.store, gw.policy, [mid], react=gw.react)

    arrive(f.order("PO-1"), "folder:edi-in", "a")  # the first route: to the hub
    arrive(f.order("PO-2"), "cli", "b")  # no route matches: the supplier the order names
    flush_all(gw.store, gw.settings)
    assert [p.name for p in sent(tmp_path)] == ["hub-PO-1.xml", "seller-PO-2-ubl.xml"]
    [waiting] = [h for h in detail(gw, "PO-1")["history"] if h["event"] == "forward.waiting"]
    assert waiting["detail"] == "waiting to go to hub (route via-edi-in)"


def test_a_supplier_another_gateway_is_bundling_is_left_to_it_then_taken(
    postgres_url: str, tmp_path: Path
) -> None:
    """While another gateway holds a supplier's bundling lock, processing and the daemon's
    flush leave that supplier (named in ``skipped``) instead of waiting; the forward stays
    waiting and the next flush queues it."""
    from sqlalchemy import create_engine

    from edi_gateway.store.db import open_store
    from edi_gateway.store.leases import SUPPLIER, xact_locks

    shared = open_store(postgres_url)
    other = create_engine(postgres_url)
    try:
        gw = gateway(shared, tmp_path, "delftlab", formats=["ubl"])
        with other.begin() as conn:  # another gateway, bundling "seller" right now
            xact_locks(conn, SUPPLIER, ["seller"])
            receive(gw, f.order("PO-1", f.items(2)))  # processing does not wait for it
            assert states(gw) == ["waiting"]
            skipped: set[str] = set()
            assert flush_forwards(shared, gw.settings, wait=False, skipped=skipped) == {}
            assert skipped == {"seller"} and states(gw) == ["waiting"]
        flush_all(shared, gw.settings, wait=False)  # the lock is gone: taken and delivered
        assert states(gw) == ["delivered"]
    finally:
        other.dispose()
        shared.close()


def test_waiting_bundles_say_when_each_order_goes(store: Store, tmp_path: Path) -> None:
    from edi_gateway.outbound.forward import waiting_bundles

    gw = gateway(store, tmp_path, formats=["xlsx"], bundle="workbook", at=["14:30"])
    receive(gw, f.order("PO-1", f.items(1)))
    receive(gw, f.order("PO-2", f.items(1)))
    since = now()
    with gw.store.session() as session:
        rows, total = waiting_bundles(session, gw.settings, since)
        profile = gw.settings.partner("seller").forward  # type: ignore[union-attr]
        assert profile is not None
        due = next_instant(profile, since)
        assert due is not None
        assert total == 2 and [r["order_number"] for r in rows] == ["PO-1", "PO-2"]
        assert {r["goes"] for r in rows} == {f"at {due:%Y-%m-%dT%H:%M:%SZ}"}
        assert {r["bundled_with"] for r in rows} == {2}
        later, _ = waiting_bundles(session, gw.settings, due + timedelta(minutes=1))
        assert {r["goes"] for r in later} == {"with the next delivery cycle"}
        first, total = waiting_bundles(session, gw.settings, since, limit=1)
        assert total == 2 and len(first) == 1
    other = Settings.model_validate(  # the supplier's forward profile removed from the config
        {"path": tmp_path / "gateway.yaml", "partners": [f.buyer_partner(), f.seller_partner()]},
        context={"base_dir": tmp_path},
    )
    with gw.store.session() as session:
        rows, _ = waiting_bundles(session, other, since)
    assert {r["goes"] for r in rows} == {"never: seller has no forward profile in gateway.yaml"}
    flush_forwards(gw.store, gw.settings, at=due + timedelta(minutes=1))
    with gw.store.session() as session:
        assert waiting_bundles(session, gw.settings, since) == ([], 0)  # queued: in the outbox
