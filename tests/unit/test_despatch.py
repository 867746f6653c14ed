"""Despatch Advices the gateway issues: partial and full deliveries, refusals, T16 conformance."""

from __future__ import annotations

import subprocess
import sys
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
from lxml import etree

from edi_gateway.app import Gateway
from edi_gateway.domain.documents import DespatchAdvice
from edi_gateway.outbound import outbox
from edi_gateway.outbound.despatch import DespatchRequest, despatch
from edi_gateway.outbound.issuing import NotAllowed
from edi_gateway.outbound.respond import Decision, LineChange, respond
from edi_gateway.ubl.read import interpret
from tests import factory as f
from tests.conftest import shared_dir
from tests.unit.support import detail, receive


def lines_of(gateway: Gateway) -> dict[str, dict[str, str | None]]:
    return {line["line_id"]: line for line in detail(gateway)["lines"]}


def test_two_partial_despatches_complete_the_order(gateway: Gateway, tmp_path: Path) -> None:
    receive(gateway, f.order("PO-1", f.items(2)))
    respond(
        gateway.store,
        gateway.settings,
        "PO-1",
        Decision("CA", changes=(LineChange("2", Decimal("6")),)),
        actor="ops",
    )
    first = despatch(
        gateway.store,
        gateway.settings,
        "PO-1",
        DespatchRequest(
            ((("1", Decimal("4"))),),
            carrier="PostNord",
            tracking="PN123SE",
            estimated_delivery=date(2026, 12, 3),
        ),
        actor="ops",
    )
    assert first.status == "Partially delivered"
    assert lines_of(gateway)["1"]["despatched"] == "4"
    second = despatch(gateway.store, gateway.settings, "PO-1", DespatchRequest(), actor="ops")
    assert second.status == "Fully delivered"
    got = lines_of(gateway)
    assert (got["1"]["despatched"], got["2"]["despatched"]) == ("10", "6")
    outbox.flush(gateway.store, gateway.settings)
    sent = sorted(p for p in (tmp_path / "out").iterdir() if "Despatch" in p.name)
    assert [p.name for p in sent] == ["DespatchAdvice-PO-1-DA1.xml", "DespatchAdvice-PO-1-DA2.xml"]
    advice = interpret(etree.fromstring(sent[0].read_bytes()))
    assert isinstance(advice, DespatchAdvice)
    assert (advice.carrier, advice.tracking_id) == ("PostNord", "PN123SE")
    assert advice.estimated_delivery_date == date(2026, 12, 3)
    [line] = advice.lines
    assert line.order_line_ref == "1" and line.quantity is not None
    assert line.quantity.value == Decimal("4")
    assert line.backorder_quantity is not None and line.backorder_quantity.value == Decimal("6")


def test_despatching_more_than_open_is_refused_unless_forced(gateway: Gateway) -> None:
    receive(gateway, f.order("PO-1", f.items(1)))
    too_much = DespatchRequest((("1", Decimal("11")),))
    with pytest.raises(NotAllowed, match="11 asked, 10 open"):
        despatch(gateway.store, gateway.settings, "PO-1", too_much, actor="ops")
    with pytest.raises(NotAllowed, match="no order line 7"):
        despatch(
            gateway.store,
            gateway.settings,
            "PO-1",
            DespatchRequest((("7", Decimal(1)),)),
            actor="ops",
        )
    forced = despatch(gateway.store, gateway.settings, "PO-1", too_much, actor="ops", force=True)
    assert forced.status == "Fully delivered"
    assert any(
        h["event"] == "despatch.forced" and h["actor"] == "ops" for h in detail(gateway)["history"]
    )
    with pytest.raises(NotAllowed, match="nothing is open"):
        despatch(gateway.store, gateway.settings, "PO-1", DespatchRequest(), actor="ops")


def test_a_rejected_order_cannot_be_despatched(gateway: Gateway) -> None:
    receive(gateway, f.order("PO-1"))
    respond(gateway.store, gateway.settings, "PO-1", Decision("RE", reason="No stock"), actor="ops")
    with pytest.raises(NotAllowed, match="Rejected"):
        despatch(gateway.store, gateway.settings, "PO-1", DespatchRequest(), actor="ops")


def test_despatch_advices_pass_the_official_checks(gateway: Gateway, tmp_path: Path) -> None:
    check = shared_dir() / "tools" / "ubl-check"
    receive(gateway, f.order("PO-1", f.items(3)))
    despatch(
        gateway.store,
        gateway.settings,
        "PO-1",
        DespatchRequest(
            (("1", Decimal("3")), ("2", Decimal("10"))), carrier="DHL", tracking="JD0001"
        ),
        actor="ops",
    )
    despatch(gateway.store, gateway.settings, "PO-1", DespatchRequest(), actor="ops")
    outbox.flush(gateway.store, gateway.settings)
    files = sorted((tmp_path / "out").iterdir())
    assert len(files) == 2
    done = subprocess.run(
        [sys.executable, str(check), *map(str, files)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_an_item_without_seller_id_or_gtin_is_refused_with_its_code(gateway: Gateway) -> None:
    """A valid order may name its items by name (and the buyer's ID) only; a T16 line must
    give the seller's ID or a GTIN (PEPPOL-T16-R003): NOT_ALLOWED naming the line, not an
    INTERNAL_ERROR from the writer, and nothing moves. The line with an ID still goes."""
    known = f.Item("2", "5", seller_item="SKU-2")
    receive(gateway, f.order("PO-1", [f.Item("1", "5"), known]))
    with pytest.raises(NotAllowed, match=r"order line\(s\) 1 name neither .*T16-R003"):
        despatch(gateway.store, gateway.settings, "PO-1", DespatchRequest(), actor="ops")
    assert lines_of(gateway)["1"]["despatched"] == "0"
    request = DespatchRequest((("2", Decimal(5)),))
    assert despatch(gateway.store, gateway.settings, "PO-1", request, actor="ops").status
    assert lines_of(gateway)["2"]["despatched"] == "5"
