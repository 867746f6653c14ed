"""Substitutions on an Order Response (Peppol T76 ``cac:SellerSubstitutedLineItem``)."""

from __future__ import annotations

import argparse
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest
from lxml import etree

from edi_gateway.app import Gateway
from edi_gateway.cli.outbound import line_substitute
from edi_gateway.domain.documents import Line, Substitute
from edi_gateway.outbound import outbox
from edi_gateway.outbound.respond import Decision, LineChange, ResponseRefused, respond
from edi_gateway.ubl.write import WriteError, write_order_response
from tests import factory as f
from tests.conftest import shared_dir
from tests.unit.support import detail, receive
from tests.unit.test_write import response

NS = {
    "cac": "urn:oasis:names:specification:ubl:schema:xsd:CommonAggregateComponents-2",
    "cbc": "urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2",
}

SUBSTITUTING = Decision(
    "CA",
    changes=(LineChange("1", Decimal("4")),),
    substitutes=(("2", "SKU-99999", "Article 2, new edition"),),
)


def _sent(gateway: Gateway, tmp_path: Path) -> Path:
    outbox.flush(gateway.store, gateway.settings)
    [sent] = list((tmp_path / "out").iterdir())
    return sent


def test_the_substitute_is_written_on_its_line(gateway: Gateway, tmp_path: Path) -> None:
    receive(gateway, f.order("PO-1", f.items(3)))
    issued = respond(gateway.store, gateway.settings, "PO-1", SUBSTITUTING, actor="ops")
    assert issued.status == "Accepted with changes"
    root = etree.fromstring(_sent(gateway, tmp_path).read_bytes())
    lines = {
        line.findtext("cac:LineItem/cbc:ID", namespaces=NS): line
        for line in root.iterfind("cac:OrderLine", NS)
    }
    status = {
        k: v.findtext("cac:LineItem/cbc:LineStatusCode", namespaces=NS) for k, v in lines.items()
    }
    assert status == {"1": "3", "2": "3", "3": "5"}
    [substituted] = lines["2"].findall("cac:SellerSubstitutedLineItem", NS)
    assert substituted.findtext("cbc:ID", namespaces=NS) == "2"
    assert substituted.findtext("cac:Item/cbc:Name", namespaces=NS) == "Article 2, new edition"
    assert (
        substituted.findtext("cac:Item/cac:SellersItemIdentification/cbc:ID", namespaces=NS)
        == "SKU-99999"
    )
    # the ordered item stays on the LineItem; the substitute sits before OrderLineReference
    assert lines["2"].findtext("cac:LineItem/cac:Item/cbc:Name", namespaces=NS) == "Article 2"
    tags = [etree.QName(child).localname for child in lines["2"]]
    assert tags == ["LineItem", "SellerSubstitutedLineItem", "OrderLineReference"]
    assert not lines["1"].findall("cac:SellerSubstitutedLineItem", NS)
    confirmed = {line["line_id"]: line["status_code"] for line in detail(gateway)["lines"]}
    assert confirmed == {"1": "3", "2": "3", "3": "5"}


def test_a_response_with_a_substitution_passes_the_official_checks(
    gateway: Gateway, tmp_path: Path
) -> None:
    check = shared_dir() / "tools" / "ubl-check"
    receive(gateway, f.order("PO-1", f.items(3)))
    respond(gateway.store, gateway.settings, "PO-1", SUBSTITUTING, actor="ops")
    sent = _sent(gateway, tmp_path)
    done = subprocess.run(
        [sys.executable, str(check), str(sent)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize(
    ("decision", "message"),
    [
        (Decision("AP", substitutes=(("1", "X", "Y"),)), "only with an acceptance with changes"),
        (
            Decision("CA", changes=(LineChange("1", Decimal(1)),), substitutes=(("9", "X", "Y"),)),
            "no order line 9",
        ),
        (
            Decision("CA", substitutes=(("1", "X", "Y"), ("1", "Z", "W"))),
            "substituted twice",
        ),
        (Decision("CA", substitutes=(("1", " ", "Y"),)), "seller item ID and a name"),
        (
            Decision("CA", changes=(LineChange("1", Decimal(0)),), substitutes=(("1", "X", "Y"),)),
            "cannot be substituted",
        ),
    ],
)
def test_what_a_substitution_does_not_allow_is_refused(
    gateway: Gateway, decision: Decision, message: str
) -> None:
    receive(gateway, f.order("PO-1", f.items(2)))
    with pytest.raises(ResponseRefused, match=message):
        respond(gateway.store, gateway.settings, "PO-1", decision, actor="ops")


def test_substitute_argument() -> None:
    assert line_substitute("2:SKU-9:Sauce: brown, ready") == ("2", "SKU-9", "Sauce: brown, ready")
    for bad in ("2:SKU-9", "2::Name", ":SKU:Name", "2:SKU: "):
        with pytest.raises(argparse.ArgumentTypeError, match="LINE:ITEM:NAME"):
            line_substitute(bad)


@pytest.mark.parametrize(
    ("lines", "substitutes", "expected"),
    [
        ([Line("1", item_name="x", status_code="5")], {"1": Substitute("S", "y")}, "status 3"),
        (
            [Line("1", item_name="x", status_code="3")],
            {"2": Substitute("S", "y")},
            "does not have: 2",
        ),
        ([Line("1", item_name="x", status_code="3")], {"1": Substitute("", "y")}, "item ID and a"),
    ],
)
def test_the_writer_refuses_a_substitute_that_cannot_be_valid(
    lines: list[Line], substitutes: dict[str, Substitute], expected: str
) -> None:
    doc = response("CA", lines, substitutes=substitutes)
    with pytest.raises(WriteError) as caught:
        write_order_response(doc)
    assert any(expected in problem for problem in caught.value.problems), caught.value.problems
