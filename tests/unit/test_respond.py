"""Order Responses the gateway issues: composed, checked, recorded, queued, delivered once."""

from __future__ import annotations

import subprocess
import sys
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from lxml import etree
from sqlalchemy import select

from edi_gateway.app import Gateway
from edi_gateway.errors import LookupFailed
from edi_gateway.outbound import outbox
from edi_gateway.outbound.respond import Decision, LineChange, ResponseRefused, respond
from edi_gateway.pipeline.history import now
from edi_gateway.store.db import Store
from edi_gateway.store.tables import OutboxRow
from edi_gateway.ubl.read import interpret
from tests import factory as f
from tests.conftest import shared_dir
from tests.unit.support import detail, make_settings, receive


def test_accept_is_recorded_queued_and_delivered_once(gateway: Gateway, tmp_path: Path) -> None:
    receive(gateway, f.order("PO-1", f.items(2)))
    issued = respond(gateway.store, gateway.settings, "PO-1", Decision("AP"), actor="ops-anna")
    assert issued.status == "Accepted"
    order = detail(gateway)
    assert [d["direction"] for d in order["documents"]] == ["in", "out"]
    assert all(line["confirmed"] == line["ordered"] for line in order["lines"])
    assert any(
        h["actor"] == "ops-anna" and h["event"] == "document.issued" for h in order["history"]
    )
    assert outbox.flush(gateway.store, gateway.settings) == {issued.outbox_id: "sent"}
    files = list((tmp_path / "out").iterdir())
    assert [p.name for p in files] == ["OrderResponse-PO-1-OR1.xml"]
    sent = interpret(etree.fromstring(files[0].read_bytes()))
    assert sent.kind.value == "OrderResponse" and sent.order_refs == ["PO-1"]
    assert getattr(sent, "response_code", None) == "AP"
    assert outbox.flush(gateway.store, gateway.settings) == {}  # nothing sent twice
    assert len(list((tmp_path / "out").iterdir())) == 1


def test_accept_with_changes_moves_confirmed_quantities(gateway: Gateway) -> None:
    receive(gateway, f.order("PO-1", f.items(3)))
    decision = Decision(
        "CA",
        changes=(LineChange("2", Decimal("4")), LineChange("3", Decimal("0"))),
    )
    issued = respond(gateway.store, gateway.settings, "PO-1", decision, actor="ops")
    assert issued.status == "Accepted with changes"
    lines = {line["line_id"]: line for line in detail(gateway)["lines"]}
    assert (lines["1"]["confirmed"], lines["1"]["status_code"]) == ("10", "5")
    assert (lines["2"]["confirmed"], lines["2"]["status_code"]) == ("4", "3")
    assert (lines["3"]["confirmed"], lines["3"]["status_code"]) == ("0", "7")


def test_what_the_state_does_not_allow_is_refused(gateway: Gateway) -> None:
    receive(gateway, f.order("PO-1", f.items(1)))
    with pytest.raises(ResponseRefused, match="needs a reason"):
        respond(gateway.store, gateway.settings, "PO-1", Decision("RE"), actor="ops")
    with pytest.raises(ResponseRefused, match="no order line 9"):
        change = Decision("CA", changes=(LineChange("9", Decimal(1)),))
        respond(gateway.store, gateway.settings, "PO-1", change, actor="ops")
    receive(gateway, f.despatch_advice("D-1", "PO-1", [("1", "10")]))
    with pytest.raises(ResponseRefused, match=r"Fully delivered.*--force"):
        respond(gateway.store, gateway.settings, "PO-1", Decision("AP"), actor="ops")
    forced = respond(
        gateway.store, gateway.settings, "PO-1", Decision("AP"), actor="ops", force=True
    )
    assert forced.status == "Fully delivered"
    assert any(h["event"] == "response.forced" for h in detail(gateway)["history"])


def test_rejection_with_reason(gateway: Gateway) -> None:
    receive(gateway, f.order("PO-1"))
    issued = respond(
        gateway.store,
        gateway.settings,
        "PO-1",
        Decision("RE", reason="Artikel utgått – ersätts av 4711"),
        actor="ops",
    )
    assert issued.status == "Rejected"
    with gateway.store.session() as session:
        payload = session.execute(select(OutboxRow.id, OutboxRow.payload)).one().payload
    assert "Artikel utgått – ersätts av 4711".encode() in payload


def test_auto_rule_acknowledges_on_receipt(store: Store, tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()
    gateway = Gateway(make_settings(tmp_path, auto="acknowledge"), store)
    receive(gateway, f.order("PO-1"))
    assert detail(gateway)["status"] == "Acknowledged"
    assert outbox.flush(gateway.store, gateway.settings)  # one AB delivered


def test_failed_delivery_backs_off_then_gives_up(store: Store, tmp_path: Path) -> None:
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("a file where the outbound folder should be")
    gateway = Gateway(make_settings(tmp_path, out=blocked), store)
    receive(gateway, f.order("PO-1"))
    issued = respond(gateway.store, gateway.settings, "PO-1", Decision("AB"), actor="ops")
    first = now()
    assert outbox.flush(gateway.store, gateway.settings, at=first) == {issued.outbox_id: "pending"}
    assert outbox.flush(gateway.store, gateway.settings, at=first) == {}  # not due yet
    moment = first
    for _ in range(outbox.MAX_ATTEMPTS - 1):
        moment += timedelta(hours=2)
        states = outbox.flush(gateway.store, gateway.settings, at=moment)
    assert states == {issued.outbox_id: "failed"}
    with gateway.store.session() as session:
        row = session.get_one(OutboxRow, issued.outbox_id)
        assert row.attempts == outbox.MAX_ATTEMPTS and row.last_error

    # The operator fixes the folder and asks for a new round: it goes, once.
    with pytest.raises(LookupFailed, match="no failed outbox row #999"):
        outbox.retry(gateway.store, [issued.outbox_id, 999], actor="ops-kim")
    blocked.unlink()
    blocked.mkdir()
    assert outbox.retry(gateway.store, [], actor="ops-kim", every=True) == [issued.outbox_id]
    assert outbox.flush(gateway.store, gateway.settings) == {issued.outbox_id: "sent"}
    assert outbox.retry(gateway.store, [], actor="ops-kim", every=True) == []
    assert len(list(blocked.iterdir())) == 1
    [event] = [h for h in detail(gateway)["history"] if h["event"] == "outbox.retried"]
    assert event["actor"] == "ops-kim" and "after:" in event["detail"]


def test_every_response_passes_the_official_checks(gateway: Gateway, tmp_path: Path) -> None:
    check = shared_dir() / "tools" / "ubl-check"
    receive(gateway, f.order("PO-1", f.items(3)))
    receive(gateway, f.order("PO-2", f.items(2)))
    receive(gateway, f.order("PO-3", f.items(1)))
    respond(gateway.store, gateway.settings, "PO-1", Decision("AB"), actor="ops")
    respond(
        gateway.store,
        gateway.settings,
        "PO-1",
        Decision("CA", changes=(LineChange("2", Decimal("4")),), notes=(("3", "Slut i lager"),)),
        actor="ops",
    )
    respond(gateway.store, gateway.settings, "PO-2", Decision("AP"), actor="ops")
    respond(gateway.store, gateway.settings, "PO-3", Decision("RE", reason="Sold out"), actor="ops")
    outbox.flush(gateway.store, gateway.settings)
    files = sorted((tmp_path / "out").iterdir())
    assert len(files) == 4
    done = subprocess.run(
        [sys.executable, str(check), *map(str, files)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_line_notes_travel_with_a_ca_response(gateway: Gateway, tmp_path: Path) -> None:
    receive(gateway, f.order("PO-1", f.items(3)))
    decision = Decision(
        "CA",
        changes=(LineChange("2", Decimal("4")),),
        notes=(("2", "Tillfälligt slut i lager – resten vecka 49"), ("3", "暂时缺货")),
    )
    respond(gateway.store, gateway.settings, "PO-1", decision, actor="ops")
    outbox.flush(gateway.store, gateway.settings)
    [sent] = list((tmp_path / "out").iterdir())
    lines = {line.line_id: line for line in interpret(etree.fromstring(sent.read_bytes())).lines}
    assert lines["2"].note == "Tillfälligt slut i lager – resten vecka 49"
    assert lines["3"].note == "暂时缺货" and lines["1"].note is None
    with pytest.raises(ResponseRefused, match="only with an acceptance with changes"):
        respond(
            gateway.store,
            gateway.settings,
            "PO-1",
            Decision("AP", notes=(("1", "x"),)),
            actor="ops",
        )
    with pytest.raises(ResponseRefused, match="no order line 9"):
        respond(
            gateway.store,
            gateway.settings,
            "PO-1",
            Decision("CA", changes=(LineChange("1", Decimal(1)),), notes=(("9", "x"),)),
            actor="ops",
        )


def test_a_transport_bug_fails_one_row_and_keeps_the_rows_already_sent(
    gateway: Gateway,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    from edi_gateway.transports.folder import FolderOutbound

    for n in (1, 2, 3):
        receive(gateway, f.order(f"PO-{n}"))
        respond(gateway.store, gateway.settings, f"PO-{n}", Decision("AB"), actor="ops")
    real = FolderOutbound.deliver

    def flaky(self: FolderOutbound, filename: str, payload: bytes, headers: object = None) -> str:
        if b"PO-2" in payload:
            raise RuntimeError("a bug in a transport")
        return real(self, filename, payload)

    monkeypatch.setattr(FolderOutbound, "deliver", flaky)
    states = outbox.flush(gateway.store, gateway.settings)
    assert sorted(states.values()) == ["pending", "sent", "sent"]  # PO-2 retried later
    assert len(list((tmp_path / "out").iterdir())) == 2
    assert "a bug in a transport" in caplog.text
