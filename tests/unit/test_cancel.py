"""Cancellations towards the supplier and the buyer (docs/adr/0008-cancellations.md)."""

from __future__ import annotations

import csv
import io
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest
from lxml import etree
from sqlalchemy import select

from edi_gateway.app import Gateway
from edi_gateway.config import Settings
from edi_gateway.domain.documents import OrderResponse
from edi_gateway.outbound.cancel import answer
from edi_gateway.outbound.forward import flush_all, flush_forwards, release
from edi_gateway.outbound.issuing import NotAllowed
from edi_gateway.store.db import Store
from edi_gateway.store.tables import Forward, OutboxRow
from edi_gateway.ubl.read import interpret
from tests import factory as f
from tests.conftest import shared_dir
from tests.unit.support import detail, receive

MAPPINGS = Path(__file__).resolve().parents[2] / "mappings"
ACCEPTED = "Order cancelled as requested by cancellation C-1"


def settings(tmp_path: Path, **profile: Any) -> Settings:
    """A buyer with an outbound folder, a supplier ``seller`` forwarding by ``profile``."""
    if not (tmp_path / "mappings" / "seller").exists():
        shutil.copytree(MAPPINGS / "delftlab", tmp_path / "mappings" / "seller")
    for folder in ("sup", "out"):
        (tmp_path / folder).mkdir(exist_ok=True)
    return Settings.model_validate(
        {
            "path": tmp_path / "gateway.yaml",
            "partners": [
                f.buyer_partner(outbound="to-buyer"),
                f.seller_partner(outbound="to-seller", forward=profile or {"formats": ["ubl"]}),
            ],
            "connectors": [
                {"name": "to-seller", "type": "folder", "direction": "out", "path": "sup"},
                {"name": "to-buyer", "type": "folder", "direction": "out", "path": "out"},
            ],
        },
        context={"base_dir": tmp_path},
    )


def gateway(store: Store, tmp_path: Path, **profile: Any) -> Gateway:
    return Gateway(settings(tmp_path, **profile), store)


def files(tmp_path: Path, folder: str) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((tmp_path / folder).iterdir())}


def events(gw: Gateway, ref: str = "PO-1") -> list[tuple[str, str]]:
    return [(h["event"], h["detail"] or "") for h in detail(gw, ref)["history"]]


def told(tmp_path: Path) -> list[OrderResponse]:
    """The Order Responses the buyer got, oldest first."""
    out = [interpret(etree.fromstring(data)) for data in files(tmp_path, "out").values()]
    assert all(isinstance(r, OrderResponse) for r in out)
    return [r for r in out if isinstance(r, OrderResponse)]


def ubl_check(paths: list[Path]) -> None:
    tool = shared_dir() / "tools" / "ubl-check"
    done = subprocess.run(
        [sys.executable, str(tool), *map(str, paths)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr


def confirmed(gw: Gateway, tmp_path: Path) -> None:
    """PO-1 forwarded and delivered to the supplier, which accepted it (AP)."""
    receive(gw, f.order("PO-1", f.items(2)))
    flush_all(gw.store, gw.settings)
    receive(gw, f.order_response("R-1", "PO-1", "AP"))
    assert detail(gw)["status"] == "Accepted"


def test_unconfirmed_cancellation_withdraws_a_held_forward(store: Store, tmp_path: Path) -> None:
    gw = gateway(store, tmp_path, formats=["ubl"], hold=True)
    receive(gw, f.order("PO-1", f.items(2)))
    receive(gw, f.order_cancellation("C-1", "PO-1"))
    order = detail(gw)
    assert order["status"] == "Cancelled" and order["pending_cancellation"] is None
    assert (
        "forward.withdrawn",
        "withdrawn: seller never gets order PO-1 (cancellation C-1 accepted)",
    ) in events(gw)
    with pytest.raises(NotAllowed, match="to seller: withdrawn"):
        release(gw.store, gw.settings, "PO-1", actor="ops")
    flush_all(gw.store, gw.settings)
    assert files(tmp_path, "sup") == {}  # the supplier never gets the order, nor anything else
    [notice] = told(tmp_path)
    assert notice.response_code == "AP" and notice.notes == [ACCEPTED]  # T116: AP accepts
    assert detail(gw)["status"] == "Cancelled"  # the notice leaves the order as it is
    docs = {d["document_id"]: d["state"] for d in detail(gw)["documents"]}
    assert docs == {"PO-1": "attached", "C-1": "accepted", "PO-1-OR1": "notice"}


def test_unconfirmed_cancellation_withdraws_an_unsent_bundle(store: Store, tmp_path: Path) -> None:
    gw = gateway(store, tmp_path, formats=["ubl", "csv"], bundle="zip", when_waiting=2)
    receive(gw, f.order("PO-1", f.items(1)))
    receive(gw, f.order("PO-2", f.items(1)))
    assert flush_forwards(gw.store, gw.settings)  # one zip of both, queued in the outbox
    receive(gw, f.order_cancellation("C-1", "PO-1"))
    with gw.store.session() as session:
        assert session.scalars(
            select(OutboxRow.state).where(OutboxRow.partner == "seller")
        ).all() == ["withdrawn"]
        assert session.scalars(select(Forward.state).order_by(Forward.id)).all() == [
            "withdrawn",
            "waiting",
        ]
    flush_forwards(gw.store, gw.settings, force=True)
    flush_all(gw.store, gw.settings)
    [bundle] = files(tmp_path, "sup").values()
    names = sorted(zipfile.ZipFile(io.BytesIO(bundle)).namelist())
    assert names == ["seller-PO-2-csv.csv", "seller-PO-2-ubl.xml"]  # PO-1 never goes


def test_unconfirmed_cancellation_after_delivery_is_sent_on(store: Store, tmp_path: Path) -> None:
    gw = gateway(store, tmp_path, formats=["ubl", "csv", "layout:bestelling"])
    receive(gw, f.order("PO-1", f.items(2)))
    flush_all(gw.store, gw.settings)
    assert len(files(tmp_path, "sup")) == 3
    cancellation = f.order_cancellation("C-1", "PO-1", "Wrong ward; ordered again as PO-2")
    receive(gw, cancellation)
    assert detail(gw)["status"] == "Cancelled"
    flush_all(gw.store, gw.settings)
    sent = files(tmp_path, "sup")
    assert sorted(sent) == [
        "seller-PO-1-bestelling-cancellation.xml",
        "seller-PO-1-bestelling.xml",
        "seller-PO-1-csv-cancellation.csv",
        "seller-PO-1-csv.csv",
        "seller-PO-1-ubl-cancellation.xml",
        "seller-PO-1-ubl.xml",
    ]
    assert sent["seller-PO-1-ubl-cancellation.xml"] == cancellation  # as received
    rows = list(
        csv.reader(
            io.StringIO(sent["seller-PO-1-csv-cancellation.csv"].decode("utf-8-sig")), delimiter=";"
        )
    )
    assert rows[0][:2] == ["Status", "Cancellation"] and len(rows) == 3
    assert rows[1][:2] == ["CANCELLED", "C-1: Wrong ward; ordered again as PO-2"]
    layout = etree.fromstring(sent["seller-PO-1-bestelling-cancellation.xml"])
    assert layout.get("status") == "geannuleerd"
    assert any(e == "cancellation.sent" for e, _ in events(gw))
    [notice] = told(tmp_path)
    assert notice.response_code == "AP" and notice.notes == [ACCEPTED]  # T116: AP accepts


def test_confirmed_cancellation_waits_for_the_supplier_who_accepts(
    store: Store, tmp_path: Path
) -> None:
    gw = gateway(store, tmp_path)
    confirmed(gw, tmp_path)
    receive(gw, f.order_cancellation("C-1", "PO-1"))
    order = detail(gw)
    assert order["status"] == "Accepted"  # a request: the order goes on meanwhile
    assert order["pending_cancellation"]["document_id"] == "C-1"
    assert order["pending_cancellation"]["waiting_for"] == "seller"
    assert any(
        e == "cancellation.requested"
        and d.startswith("cancellation C-1 requested, waiting for seller")
        for e, d in events(gw)
    )
    flush_all(gw.store, gw.settings)
    assert "seller-PO-1-ubl-cancellation.xml" in files(tmp_path, "sup")  # the request
    assert told(tmp_path) == []  # nothing decided yet
    receive(gw, f.order_response("R-2", "PO-1", "AP"))
    order = detail(gw)
    assert order["status"] == "Cancelled" and order["pending_cancellation"] is None
    flush_all(gw.store, gw.settings)
    [notice] = told(tmp_path)
    assert notice.response_code == "AP" and notice.notes == [ACCEPTED]  # T116: AP accepts
    assert detail(gw)["status"] == "Cancelled"  # the RE told does not reject the order
    ubl_check(sorted((tmp_path / "out").iterdir()))


def test_confirmed_cancellation_refused_by_the_supplier(store: Store, tmp_path: Path) -> None:
    gw = gateway(store, tmp_path)
    confirmed(gw, tmp_path)
    receive(gw, f.order_cancellation("C-1", "PO-1"))
    refusal = f.order_response("R-2", "PO-1", "RE").replace(
        b"</cbc:OrderResponseCode>", b"</cbc:OrderResponseCode><cbc:Note>Already packed</cbc:Note>"
    )
    receive(gw, refusal)
    order = detail(gw)
    assert order["status"] == "Accepted" and order["response_code"] == "AP"  # not Rejected
    assert all(line["confirmed"] == line["ordered"] for line in order["lines"])
    states = {d["document_id"]: d["state"] for d in order["documents"]}
    assert states["C-1"] == "refused" and states["R-2"] == "answer"
    flush_all(gw.store, gw.settings)
    [notice] = told(tmp_path)
    assert notice.response_code == "RE"  # T116: RE refuses the cancellation
    assert notice.notes == ["Cancellation C-1 refused by the supplier: Already packed"]
    assert detail(gw)["status"] == "Accepted"
    ubl_check(sorted((tmp_path / "out").iterdir()))
    receive(gw, f.order_response("R-3", "PO-1", "RE"))  # no cancellation pending: the order
    assert detail(gw)["status"] == "Rejected"


def test_supplier_rejecting_every_line_accepts_the_cancellation(
    store: Store, tmp_path: Path
) -> None:
    gw = gateway(store, tmp_path)
    confirmed(gw, tmp_path)
    receive(gw, f.order_cancellation("C-1", "PO-1"))
    receive(gw, f.order_response("R-2", "PO-1", "CA", [("1", "7", "0"), ("2", "7", "0")]))
    assert detail(gw)["status"] == "Cancelled"


def test_operator_answers_through_the_cli(
    store: Store,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from edi_gateway import cli

    gw = gateway(store, tmp_path)
    confirmed(gw, tmp_path)
    receive(gw, f.order("PO-2", f.items(1)))
    receive(gw, f.order_response("R-9", "PO-2", "AP"))
    receive(gw, f.order_cancellation("C-1", "PO-1"))
    receive(gw, f.order_cancellation("C-2", "PO-2"))
    config = tmp_path / "gateway.yaml"
    config.write_text(_yaml(gw))
    monkeypatch.setenv("EDI_GATEWAY_OPERATOR", "ops-anna")
    base = ["--config", str(config)]
    assert cli.main([*base, "orders", "show", "PO-1"]) == 0
    assert "Pending cancellation C-1" in capsys.readouterr().out
    assert cli.main([*base, "orders", "cancel", "PO-1", "--refused", "--reason", "Shipped"]) == 0
    assert "cancellation C-1 of PO-1 refused; order is Accepted" in capsys.readouterr().out
    history = detail(gw)["history"]
    assert any(
        h["event"] == "cancellation.refused"
        and h["actor"] == "ops-anna"
        and h["detail"] == "Cancellation C-1 refused by the supplier: Shipped"
        for h in history
    )
    assert cli.main([*base, "orders", "cancel", "PO-2", "--accepted", "--json"]) == 0
    out = capsys.readouterr().out
    assert '"outcome": "accepted"' in out and '"order_status": "Cancelled"' in out
    assert detail(gw, "PO-2")["status"] == "Cancelled"
    assert any(
        h["event"] == "cancellation.accepted" and h["actor"] == "ops-anna"
        for h in detail(gw, "PO-2")["history"]
    )
    flush_all(gw.store, gw.settings)
    codes = sorted((r.order_refs[0], r.response_code) for r in told(tmp_path))
    assert codes == [("PO-1", "RE"), ("PO-2", "AP")]  # PO-1 refused, PO-2 accepted


def test_cancel_without_a_pending_cancellation_fails(
    store: Store, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from edi_gateway import cli

    gw = gateway(store, tmp_path)
    receive(gw, f.order("PO-1", f.items(1)))
    with pytest.raises(NotAllowed, match="no cancellation waiting") as caught:
        answer(gw.store, gw.settings, "PO-1", accepted=True, reason=None, actor="ops")
    assert caught.value.code.value == "NOT_ALLOWED"
    config = tmp_path / "gateway.yaml"
    config.write_text(_yaml(gw))
    assert cli.main(["--config", str(config), "orders", "cancel", "PO-1", "--accepted"]) == 1
    err = capsys.readouterr().err
    assert "NOT_ALLOWED" in err and "the buyer has not cancelled it" in err
    receive(gw, f.order_cancellation("C-1", "PO-1"))  # unconfirmed: accepted at once
    assert cli.main(["--config", str(config), "orders", "cancel", "PO-1", "--refused"]) == 1
    assert "its cancellations: C-1 accepted" in capsys.readouterr().err


def test_fully_despatched_order_refuses_the_cancellation(store: Store, tmp_path: Path) -> None:
    gw = gateway(store, tmp_path)
    receive(gw, f.order("PO-1", f.items(2)))
    receive(gw, f.despatch_advice("D-1", "PO-1", [("1", "10"), ("2", "10")]))
    assert detail(gw)["status"] == "Fully delivered"
    receive(gw, f.order_cancellation("C-1", "PO-1"))
    order = detail(gw)
    assert order["status"] == "Fully delivered" and order["pending_cancellation"] is None
    why = "Cancellation C-1 refused by the supplier: everything ordered has been despatched"
    assert any(e == "cancellation.refused" and d.startswith(why) for e, d in events(gw))
    flush_all(gw.store, gw.settings)
    [notice] = told(tmp_path)
    assert notice.response_code == "RE" and notice.notes[0].startswith(why)
    assert not any(name.endswith("-cancellation.xml") for name in files(tmp_path, "sup"))


def _yaml(gw: Gateway) -> str:
    import yaml

    data = gw.settings.model_dump(mode="json", exclude={"path"}, exclude_defaults=True)
    data["store"] = {"url": str(gw.store.engine.url.render_as_string(hide_password=False))}
    return yaml.safe_dump(data)


def test_supplier_csv_reply_with_every_line_zero_accepts(store: Store, tmp_path: Path) -> None:
    from edi_gateway.config import load_config
    from edi_gateway.transports import open_inbound
    from tests.unit.test_reply_intake import SAMPLES, project

    config = project(tmp_path, {"*confirmation*": "confirmation"})
    gw = Gateway(load_config(config), store)
    gw.ingest([SAMPLES / "order-vastra-1002.xml"])
    inbox = config.parent / "from-nordisk"
    transport = open_inbound(gw.settings.connector("from-nordisk"))
    sample = (SAMPLES / "replies" / "nordisk-confirmation-VS-2026-1002.csv").read_text("utf-8-sig")
    (inbox / "nordisk-confirmation-1.csv").write_text(sample, "utf-8-sig")
    gw.poll(transport)
    assert detail(gw, "VS-2026-1002")["status"] == "Accepted with changes"
    vastra, nordisk = (gw.settings.partner(p) for p in ("vastra", "nordisk"))
    assert vastra is not None and nordisk is not None
    cancellation = f.order_cancellation(
        "C-1", "VS-2026-1002", buyer=vastra.endpoint.value, seller=nordisk.endpoint.value
    )
    receive(gw, cancellation)
    assert detail(gw, "VS-2026-1002")["pending_cancellation"]["document_id"] == "C-1"
    rows = [row.split(";") for row in sample.splitlines()]
    for row in rows[1:]:
        row[5], row[7], row[9] = "0", "Utgår", ""
    (inbox / "nordisk-confirmation-2.csv").write_text(
        "\n".join(";".join(row) for row in rows) + "\n", "utf-8-sig"
    )
    gw.poll(transport)
    order = detail(gw, "VS-2026-1002")
    assert order["status"] == "Cancelled" and order["pending_cancellation"] is None
    states = [d["state"] for d in order["documents"] if d["type"] == "OrderResponse"]
    assert states == ["attached", "answer", "notice"]


def _cancelled(store: Store, tmp_path: Path, *, reached: bool = False) -> Gateway:
    """PO-1 (2 lines of 10), cancelled by C-1: accepted at once (not confirmed). ``reached``:
    the order had reached the supplier, which is sent the cancellation; else it was held and
    withdrawn, and the supplier never hears of the cancellation."""
    gw = gateway(store, tmp_path, formats=["ubl"], hold=not reached)
    receive(gw, f.order("PO-1", f.items(2)))
    flush_all(gw.store, gw.settings)
    receive(gw, f.order_cancellation("C-1", "PO-1"))
    flush_all(gw.store, gw.settings)
    assert detail(gw)["status"] == "Cancelled"
    assert any(e == "cancellation.sent" for e, _ in events(gw)) is reached
    return gw


def _late(gw: Gateway, response: bytes, *, attention: bool, event: str) -> str:
    """Receive ``response`` on the cancelled PO-1: the order stays as it ended, the response
    is kept (state late) outside its quantities; the history event's detail."""
    receive(gw, response)
    order = detail(gw)
    assert order["status"] == "Cancelled" and order["attention"] is attention
    assert [line["confirmed"] for line in order["lines"]] == [None, None]
    assert {d["document_id"]: d["state"] for d in order["documents"]}["R-9"] == "late"
    [said] = [d for e, d in events(gw) if e == event]
    assert said.startswith(
        "OrderResponse R-9 ("
        + response.split(b"<cbc:OrderResponseCode>")[1][:2].decode()
        + ") from seller arrived after cancellation C-1 ended order PO-1; kept outside its "
        "quantities: "
    )
    return said


def test_an_acceptance_of_a_cancelled_order_needs_attention(store: Store, tmp_path: Path) -> None:
    """A T76 AP answers the order it had (T76 cannot answer a cancellation): the supplier may
    deliver what the buyer cancelled. It replaced the confirmations silently (10 and 10)."""
    gw = _cancelled(store, tmp_path)
    said = _late(
        gw, f.order_response("R-9", "PO-1", "AP"), attention=True, event="cancellation.disputed"
    )
    assert said.endswith("it does not agree (no reason given)")


def test_a_rejection_of_a_cancelled_order_agrees(store: Store, tmp_path: Path) -> None:
    """A T76 RE: the supplier will not deliver, as the buyer asked."""
    gw = _cancelled(store, tmp_path, reached=True)
    said = _late(
        gw, f.order_response("R-9", "PO-1", "RE"), attention=False, event="cancellation.answered"
    )
    assert said.endswith("it agrees")


def test_an_advanced_acceptance_of_a_sent_cancellation_agrees(store: Store, tmp_path: Path) -> None:
    """A T116 AP after the supplier was sent the cancellation accepts it (ADR 0008)."""
    gw = _cancelled(store, tmp_path, reached=True)
    advanced = (
        f.order_response("R-9", "PO-1", "AP")
        .replace(b"trns:order_response:3", b"trns:order_response_advanced:3")
        .replace(b"bis:ordering:3", b"bis:advanced_ordering:3")
    )
    said = _late(gw, advanced, attention=False, event="cancellation.answered")
    assert said.endswith("it agrees")


def test_a_response_still_delivering_after_the_cancellation_needs_attention(
    store: Store, tmp_path: Path
) -> None:
    """A CA keeping line 1: the supplier may be shipping goods the buyer cancelled."""
    gw = _cancelled(store, tmp_path, reached=True)
    response = f.order_response("R-9", "PO-1", "CA", [("1", "5", "10"), ("2", "7", "0")])
    said = _late(gw, response, attention=True, event="cancellation.disputed")
    assert said.endswith("it does not agree (it still delivers part of the order (R-9))")
