"""Peppol advanced ordering end to end: the official scenarios replayed (ADR 0025).

The documents are read from ``../shared/corpus`` (never copied). Every scenario of the 2026.5
artefacts continues order ``Order-1`` of scenario 1: the buyer City Hospital
(0088:7300010000001) orders from The Supplier AB (0088:7302347231110); the gateway sits
between them. Each step asserts the order's status and line quantities.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from lxml import etree
from sqlalchemy import select

from edi_gateway.app import Gateway
from edi_gateway.config import Settings
from edi_gateway.domain.documents import OrderResponse
from edi_gateway.outbound.forward import flush_all
from edi_gateway.store.db import Store
from edi_gateway.store.tables import Message
from edi_gateway.ubl.read import interpret
from tests.conftest import shared_dir
from tests.unit.support import detail, receive

BUYER, SUPPLIER = "7300010000001", "7302347231110"
SCENARIOS = "peppol-validation-artefacts/2026.5/examples/Advanced Ordering scenarios"


def corpus(name: str) -> bytes:
    """``sc2/OrderChange_sc2.xml`` -> the bytes of that official example."""
    folder, file = name.split("/")
    path = shared_dir() / "corpus" / SCENARIOS / f"advanced_ordering_{folder}" / file
    return path.read_bytes()


def settings(tmp_path: Path) -> Settings:
    (tmp_path / "out").mkdir(exist_ok=True)
    return Settings.model_validate(
        {
            "path": tmp_path / "gateway.yaml",
            "partners": [
                {
                    "id": "hospital",
                    "name": "City Hospital",
                    "role": "buyer",
                    "endpoint": {"scheme": "0088", "value": BUYER},
                    "outbound": "to-buyer",
                },
                {
                    "id": "supplier",
                    "name": "The Supplier AB",
                    "role": "supplier",
                    "endpoint": {"scheme": "0088", "value": SUPPLIER},
                },
            ],
            "connectors": [
                {"name": "to-buyer", "type": "folder", "direction": "out", "path": "out"},
            ],
        },
        context={"base_dir": tmp_path},
    )


@pytest.fixture
def gw(store: Store, tmp_path: Path) -> Gateway:
    return Gateway(settings(tmp_path), store)


def state(gw: Gateway) -> tuple[str, dict[str, tuple[str | None, str | None, str | None]]]:
    """The order's status and, per line, (ordered, confirmed, unit)."""
    found = detail(gw, "Order-1")
    lines = {
        line["line_id"]: (line["ordered"], line["confirmed"], line["unit"])
        for line in found["lines"]
    }
    return found["status"], lines


def events(gw: Gateway, prefix: str) -> list[str]:
    return [
        h["detail"] or "" for h in detail(gw, "Order-1")["history"] if h["event"].startswith(prefix)
    ]


def message(gw: Gateway, message_id: int) -> tuple[str, str | None]:
    with gw.store.session() as session:
        row = session.execute(
            select(Message.state, Message.error_code).where(Message.id == message_id)
        ).one()
        return row.state, row.error_code


def told(gw: Gateway, tmp_path: Path) -> list[tuple[Path, OrderResponse]]:
    """The Order Responses the buyer got (the outbox flushed), oldest first, with their files."""
    flush_all(gw.store, gw.settings)
    out = []
    for path in sorted((tmp_path / "out").iterdir()):
        document = interpret(etree.fromstring(path.read_bytes()))
        assert isinstance(document, OrderResponse)
        out.append((path, document))
    return out


def ubl_check(*paths: Path) -> None:
    tool = shared_dir() / "tools" / "ubl-check"
    done = subprocess.run(
        [sys.executable, str(tool), *map(str, paths)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_sc1_order_response_change(gw: Gateway) -> None:
    receive(gw, corpus("sc1/Order_sc1.xml"))
    assert state(gw) == ("Received", {"1": ("10", None, "NAR"), "2": ("50", None, "NAR")})
    receive(gw, corpus("sc1/OrderResponse_sc1.xml"))  # CA: line 1 reduced to 5
    status, lines = state(gw)
    assert status == "Accepted with changes"
    assert lines["1"] == ("10", "5", "NAR")
    receive(gw, corpus("sc1/OrderChange_sc1.xml"))  # the buyer accepts: line 1 changed to 5
    status, lines = state(gw)
    assert lines == {"1": ("5", "5", "NAR"), "2": ("50", "50", "NAR")}
    assert events(gw, "line.") == [
        "line 1 quantity changed from 10 to 5 NAR by order change Change-1",
        "line 2 changed, quantity 50 NAR as before by order change Change-1",
    ]
    assert events(gw, "order_change.") == [
        "order change Change-1 (sequence 1, the order's first numbered change): 2 line actions"
    ]


def test_sc2_change_deletes_line_2(gw: Gateway) -> None:
    for name in ("sc1/Order_sc1.xml", "sc1/OrderResponse_sc1.xml", "sc1/OrderChange_sc1.xml"):
        receive(gw, corpus(name))
    receive(gw, corpus("sc2/OrderChange_sc2.xml"))  # line 1 no action, line 2 deleted (2)
    status, lines = state(gw)
    assert lines["1"] == ("5", "5", "NAR")
    assert lines["2"][0] == "0"
    assert events(gw, "line.deleted") == ["line 2 deleted (was 50 NAR) by order change Change-2"]
    assert detail(gw, "Order-1")["lines"][1]["deleted"] is True
    assert detail(gw, "Order-1")["lines"][0]["deleted"] is False
    # The supplier's T116 accepting the change uses cac:OrderChangeDocumentReference (UBL 2.2
    # only): refused as XSD_INVALID, the order stays as the change left it (ADR 0002, 0025).
    refused = receive(gw, corpus("sc2/OrderResponse_sc2.xml"))
    assert message(gw, refused) == ("failed", "XSD_INVALID")
    assert state(gw) == (status, lines)


def test_sc3_change_with_a_repeated_sequence_is_refused(gw: Gateway) -> None:
    for name in ("sc1/Order_sc1.xml", "sc1/OrderResponse_sc1.xml", "sc1/OrderChange_sc1.xml"):
        receive(gw, corpus(name))
    receive(gw, corpus("sc2/OrderChange_sc2.xml"))  # sequence 2
    before = state(gw)
    late = receive(gw, corpus("sc3/OrderChange_sc3.xml"))  # sequence 2 again
    assert message(gw, late) == ("failed", "CHANGE_OUT_OF_SEQUENCE")
    assert state(gw) == before


def test_sc3_response_then_change(gw: Gateway) -> None:
    receive(gw, corpus("sc1/Order_sc1.xml"))
    receive(gw, corpus("sc3/OrderResponse_sc3.xml"))  # CA: new delivery period for line 1
    status, lines = state(gw)
    assert status == "Accepted with changes"
    assert lines == {"1": ("10", "10", "NAR"), "2": ("50", "50", "NAR")}
    receive(gw, corpus("sc3/OrderChange_sc3.xml"))  # sequence 2 after none: a gap, applied
    status, lines = state(gw)
    # a CA line without a quantity confirms what is ordered (ledger, ADR 0003)
    assert lines == {"1": ("5", "5", "NAR"), "2": ("50", "50", "NAR")}
    assert events(gw, "order_change.") == [
        "order change Change-3 (sequence 2, the order's first numbered change): 2 line actions"
    ]


@pytest.mark.parametrize(
    ("folder", "code", "status", "outcome"),
    [("sc4", "AP", "Cancelled", "accepted"), ("sc5", "RE", "Accepted with changes", "refused")],
)
def test_cancellation_answered_by_the_supplier(
    gw: Gateway, tmp_path: Path, folder: str, code: str, status: str, outcome: str
) -> None:
    receive(gw, corpus("sc1/Order_sc1.xml"))
    receive(gw, corpus("sc1/OrderResponse_sc1.xml"))  # CA: the order is confirmed
    receive(gw, corpus(f"{folder}/OrderCancellation_{folder}.xml"))
    found = detail(gw, "Order-1")
    assert found["pending_cancellation"] is not None
    assert found["status"] == "Accepted with changes"
    receive(gw, corpus(f"{folder}/OrderResponse_{folder}.xml"))
    found = detail(gw, "Order-1")
    assert found["status"] == status
    assert {d["state"] for d in found["documents"] if d["type"] == "OrderCancellation"} == {outcome}
    _, lines = state(gw)
    assert lines["1"] == ("10", "5", "NAR")
    # The buyer is told with a T116 answering its cancellation: AP accepted, RE refused.
    [(path, response)] = told(gw, tmp_path)
    assert response.response_code == code
    assert response.customization_id == "urn:fdc:peppol.eu:poacc:trns:order_response_advanced:3"
    assert response.profile_id == "urn:fdc:peppol.eu:poacc:bis:advanced_ordering:3"
    assert response.lines == []
    assert any("Cancellation-1" in note for note in response.notes)
    ubl_check(path)


def test_sc1_cancellation_of_an_unconfirmed_order_is_accepted_at_once(
    gw: Gateway, tmp_path: Path
) -> None:
    receive(gw, corpus("sc1/Order_sc1.xml"))
    receive(gw, corpus("sc1/OrderCancellation_sc1.xml"))
    assert state(gw)[0] == "Cancelled"
    [(path, response)] = told(gw, tmp_path)
    assert response.response_code == "AP"
    assert response.customization_id == "urn:fdc:peppol.eu:poacc:trns:order_response_advanced:3"
    ubl_check(path)
