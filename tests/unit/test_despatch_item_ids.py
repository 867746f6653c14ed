"""Items an Order named without the seller's ID or a GTIN, despatched (ADR 0007 amendment).

A T16 line needs one of them (PEPPOL-T16-R003). Three official orders in ``../shared/corpus``
(read from there, never copied into the repo) have such lines: the supplier gives its own IDs
to ``despatch --item-id`` (or a CSV's ``item_id`` column), or its Order Response states them.
Driven through the command line on each backend; every advice passes ubl-check.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from edi_gateway.cli import main
from edi_gateway.outbound import bulk
from edi_gateway.outbound.despatch import DespatchRequest
from edi_gateway.outbound.respond import Decision
from edi_gateway.store.db import Store
from tests.conftest import shared_dir

EXAMPLES = "peppol-validation-artefacts/2026.5/examples/"
SC1 = EXAMPLES + "Advanced Ordering scenarios/advanced_ordering_sc1/"
CASES = [  # the order, its reference, the seller's item ID given per line, a first part
    (
        EXAMPLES + "Order use cases/UC2_Order.xml",
        "hospital:1",
        {"1": "4545423", "2": "64534543"},
        "1:1",
    ),
    (EXAMPLES + "Order use cases/UC3_Order.xml", "hospital:5", {"1": "TRANSLATION:DAY"}, "1:0.5"),
    (SC1 + "Order_sc1.xml", "hospital:Order-1", {"1": "SN-1", "2": "SN-2"}, "1:1"),
]


@pytest.fixture
def config(tmp_path: Path, database_url: str, store: Store) -> Path:
    """The corpus's buyer (City Hospital) with an outbound folder; other parties accepted.
    ``store``: the schema, created on the backend of ``database_url``."""
    (tmp_path / "out").mkdir()
    path = tmp_path / "gateway.yaml"
    path.write_text(
        f"store:\n  url: {database_url}\n"
        "intake:\n  unknown_partner: accept\n"
        "partners:\n"
        "  - {id: hospital, name: City Hospital, role: buyer, outbound: to-buyer,\n"
        "     endpoint: {scheme: '0088', value: '7300010000001'}}\n"
        "connectors:\n"
        f"  - {{name: to-buyer, type: folder, direction: out, path: '{tmp_path / 'out'}'}}\n"
    )
    return path


def run(config: Path, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, Any]:
    code = main(["--config", str(config), *args, "--json"])
    return code, json.loads(capsys.readouterr().out)


def ingest(config: Path, capsys: pytest.CaptureFixture[str], *names: str) -> None:
    paths = [str(shared_dir() / "corpus" / name) for name in names]
    assert run(config, capsys, "ingest", *paths)[0] == 0


def given(ids: dict[str, str]) -> list[str]:
    return [arg for line, item in ids.items() for arg in ("--item-id", f"{line}:{item}")]


def seller_ids(config: Path, capsys: pytest.CaptureFixture[str], ref: str) -> dict[str, str]:
    code, shown = run(config, capsys, "orders", "show", ref)
    assert code == 0
    return {line["line_id"]: line["seller_item_id"] for line in shown["lines"]}


def ubl_check(config: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> list[str]:
    """Deliver the outbox; every file through ubl-check; their names."""
    assert run(config, capsys, "outbox", "flush")[0] == 0
    files = sorted((tmp_path / "out").iterdir())
    tool = shared_dir() / "tools" / "ubl-check"
    done = subprocess.run(
        [sys.executable, str(tool), *map(str, files)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return [file.name for file in files]


@pytest.mark.parametrize(("order", "ref", "ids", "part"), CASES)
def test_a_corpus_order_without_item_ids_is_despatched_with_the_sellers(
    config: Path,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    order: str,
    ref: str,
    ids: dict[str, str],
    part: str,
) -> None:
    """Refused without an ID, naming the option; with ``--item-id`` a part goes, the IDs are
    kept on the lines (and in the history), so the rest goes without them."""
    ingest(config, capsys, order)
    code, refused = run(config, capsys, "despatch", ref)
    assert code == 1
    assert refused["error"]["code"] == "NOT_ALLOWED"
    hint = "PEPPOL-T16-R003): give the seller's with --item-id LINE:ID"
    assert hint in refused["error"]["message"]
    code, first = run(config, capsys, "despatch", ref, "--line", part, *given(ids))
    assert (code, first["order_status"]) == (0, "Partially delivered")
    assert seller_ids(config, capsys, ref) == ids
    code, rest = run(config, capsys, "despatch", ref)
    assert (code, rest["order_status"]) == (0, "Fully delivered")
    history = run(config, capsys, "orders", "show", ref)[1]["history"]
    assert [h["detail"] for h in history if h["event"] == "line.item_id"] == [
        f"line {line}: the seller's item ID {item}, given for a despatch"
        for line, item in ids.items()
    ]
    assert len(ubl_check(config, capsys, tmp_path)) == 2


def test_the_ids_a_suppliers_order_response_states_are_kept(
    config: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """sc1's Order Response "added Sellers item identification" (SN-1, SN-2): kept, the
    order despatches as it is. A given ID never changes a line's; an unknown line is named."""
    ingest(config, capsys, SC1 + "Order_sc1.xml", SC1 + "OrderResponse_sc1.xml")
    assert seller_ids(config, capsys, "Order-1") == {"1": "SN-1", "2": "SN-2"}
    history = run(config, capsys, "orders", "show", "Order-1")[1]["history"]
    assert [h["detail"] for h in history if h["event"] == "line.item_id"] == [
        "line 1: the seller's item ID SN-1, from OrderResponse Response-1",
        "line 2: the seller's item ID SN-2, from OrderResponse Response-1",
    ]
    for wrong, message in (
        ("1:OTHER", "line 1 has the seller's item ID SN-1, not OTHER"),
        ("9:X", "no order line 9; the lines are: 1, 2"),
    ):
        code, refused = run(config, capsys, "despatch", "Order-1", "--item-id", wrong)
        assert (code, refused["error"]["code"]) == (1, "NOT_ALLOWED")
        assert message in refused["error"]["message"]
    code, issued = run(config, capsys, "despatch", "Order-1", "--item-id", "1:SN-1")
    assert (code, issued["order_status"]) == (0, "Fully delivered")  # CA: line 1 confirmed 5
    assert ubl_check(config, capsys, tmp_path) == ["DespatchAdvice-Order-1-DA1.xml"]


def test_in_bulk_the_ids_come_per_order_from_the_csv(
    config: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """A CSV gives each order's IDs (``item_id``, with or without a quantity); a filter
    cannot (one ID for line 1 of every order is no one's), and says where they go."""
    ingest(config, capsys, CASES[0][0], CASES[1][0])
    code, _ = run(config, capsys, "despatch", "--partner", "hospital", "--item-id", "1:X")
    assert code == 2
    decisions = tmp_path / "despatch.csv"
    decisions.write_text(
        "order,line,quantity,item_id\n"
        "hospital:1,1,10,4545423\n"
        "hospital:1,2,,64534543\n"
        "hospital:5,1,,TRANSLATION:DAY\n"
    )
    code, done = run(config, capsys, "despatch", "--csv", str(decisions))
    assert code == 0
    assert [(o["order_ref"], o["state"], o["status"]) for o in done["orders"]] == [
        ("hospital:1", "issued", "Partially delivered"),
        ("hospital:5", "issued", "Fully delivered"),
    ]
    assert seller_ids(config, capsys, "hospital:1") == {"1": "4545423", "2": "64534543"}
    assert len(ubl_check(config, capsys, tmp_path)) == 2


def test_a_request_without_item_ids_keeps_its_bulk_key() -> None:
    """Bulk runs recorded before ``item_ids`` existed are found again: an empty one is not
    part of the key (a re-run after the upgrade issues nothing twice); a given one is."""
    request = DespatchRequest((("1", Decimal(3)),), carrier="PostNord")
    plain = {
        "lines": [["1", "3"]],
        "carrier": "PostNord",
        "tracking": None,
        "despatch_date": None,
        "estimated_delivery": None,
        "packing": {"boxes": None, "contents": []},
    }
    canonical = json.dumps(["despatch", 1, plain], sort_keys=True, separators=(",", ":"))
    assert bulk.key_of("despatch", 1, request) == hashlib.sha256(canonical.encode()).hexdigest()
    with_ids = DespatchRequest(request.lines, "PostNord", item_ids=(("1", "S-1"),))
    assert bulk.key_of("despatch", 1, with_ids) != bulk.key_of("despatch", 1, request)


def xml_of(tmp_path: Path, kind: str) -> str:
    """The text of the one delivered file of ``kind`` (its name starts with it)."""
    (found,) = [f for f in (tmp_path / "out").iterdir() if f.name.startswith(kind)]
    return found.read_text(encoding="utf-8")


@pytest.mark.parametrize("case", CASES, ids=["UC2", "UC3", "sc1"])
def test_a_supplier_states_its_item_ids_in_its_order_response(
    config: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path, case: tuple[Any, ...]
) -> None:
    """``respond --accept --item-id``: sent as a CA (an AP carries no lines), each named line
    changed (3) with its SellersItemIdentification (T76, T116 for sc1); the IDs are kept, so
    the despatch goes without them; both pass ubl-check."""
    order, ref, ids, _ = case
    ingest(config, capsys, order)
    code, issued = run(config, capsys, "respond", ref, "--accept", *given(ids))
    assert (code, issued["order_status"]) == (0, "Accepted with changes"), issued
    assert seller_ids(config, capsys, ref) == ids
    history = run(config, capsys, "orders", "show", ref)[1]["history"]
    assert [h["detail"] for h in history if h["event"] == "line.item_id"] == [
        f"line {line}: the seller's item ID {item}, stated in an Order Response issued here"
        for line, item in ids.items()
    ]
    code, despatched = run(config, capsys, "despatch", ref)
    assert (code, despatched["order_status"]) == (0, "Fully delivered")
    assert len(ubl_check(config, capsys, tmp_path)) == 2
    response = xml_of(tmp_path, "OrderResponse")
    assert "<cbc:OrderResponseCode>CA</cbc:OrderResponseCode>" in response
    for item in ids.values():
        assert f"<cac:SellersItemIdentification><cbc:ID>{item}</cbc:ID>" in "".join(
            response.split()
        )
    assert response.count("<cbc:LineStatusCode>3</cbc:LineStatusCode>") == len(ids)


def test_respond_refuses_item_ids_it_cannot_state(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Only an acceptance carries lines; a line's ID is never rewritten; a filter cannot
    name one order's lines. Nothing is issued for any of them."""
    ingest(config, capsys, SC1 + "Order_sc1.xml", SC1 + "OrderResponse_sc1.xml")
    for args, message in (
        (["--reject", "--reason", "no"], "the seller's item IDs go only with an acceptance"),
        (["--ack"], "the seller's item IDs go only with an acceptance"),
        (["--accept"], "line 1 has the seller's item ID SN-1, not OTHER"),
    ):
        code, refused = run(config, capsys, "respond", "Order-1", *args, "--item-id", "1:OTHER")
        assert (code, refused["error"]["code"]) == (1, "NOT_ALLOWED"), args
        assert message in refused["error"]["message"]
    code, refused = run(config, capsys, "respond", "Order-1", "--accept", "--item-id", "1: ")
    assert code == 2  # argparse: LINE:ID with an empty ID
    code, _ = run(
        config, capsys, "respond", "--partner", "hospital", "--accept", "--item-id", "1:X"
    )
    assert code == 2
    documents = run(config, capsys, "orders", "show", "Order-1")[1]["documents"]
    assert [d["direction"] for d in documents] == ["in", "in"]


def test_in_bulk_respond_takes_the_ids_per_order_from_the_csv(
    config: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """The respond CSV's ``item_id`` column (a row may give it alone); an over-long one
    refuses the whole file before anything is issued."""
    ingest(config, capsys, CASES[0][0], CASES[1][0])
    decisions = tmp_path / "respond.csv"
    decisions.write_text(f"order,decision,line,item_id\nhospital:1,accept,1,{'X' * 201}\n")
    code, refused = run(config, capsys, "respond", "--csv", str(decisions))
    assert (code, refused["error"]["code"]) == (1, "BAD_CSV")
    decisions.write_text(
        "order,decision,line,quantity,item_id\n"
        "hospital:1,accept,1,,4545423\n"
        "hospital:1,accept,2,,64534543\n"
        "hospital:5,change,1,0.5,TRANSLATION:DAY\n"
    )
    code, done = run(config, capsys, "respond", "--csv", str(decisions))
    assert code == 0, done
    assert [(o["order_ref"], o["state"], o["status"]) for o in done["orders"]] == [
        ("hospital:1", "issued", "Accepted with changes"),
        ("hospital:5", "issued", "Accepted with changes"),
    ]
    assert seller_ids(config, capsys, "hospital:1") == {"1": "4545423", "2": "64534543"}
    assert seller_ids(config, capsys, "hospital:5") == {"1": "TRANSLATION:DAY"}
    assert len(ubl_check(config, capsys, tmp_path)) == 2


def test_a_response_naming_another_id_is_a_discrepancy(
    config: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """Line 1 got its ID from the supplier's answer through the gateway; the supplier's own
    sc1 response then names SN-1 for it: line 1 keeps its ID, the difference is an
    ``item_id`` discrepancy (attention raised, in `orders show` and its history); line 2,
    which had none, takes SN-2."""
    ingest(config, capsys, SC1 + "Order_sc1.xml")
    code, _ = run(config, capsys, "respond", "Order-1", "--accept", "--item-id", "1:OWN-1")
    assert code == 0
    ingest(config, capsys, SC1 + "OrderResponse_sc1.xml")
    assert seller_ids(config, capsys, "Order-1") == {"1": "OWN-1", "2": "SN-2"}
    shown = run(config, capsys, "orders", "show", "Order-1")[1]
    detail = (
        "OrderResponse Response-1 line 1: the seller's item ID SN-1, but the line has OWN-1 "
        "(kept; a line's ID is not changed)"
    )
    assert [(d["line_id"], d["kind"], d["detail"]) for d in shown["discrepancies"]] == [
        ("1", "item_id", detail)
    ]
    assert shown["attention"] is True
    assert detail in [h["detail"] for h in shown["history"] if h["event"] == "order.discrepancy"]
    assert main(["--config", str(config), "orders", "show", "Order-1"]) == 0
    assert detail in capsys.readouterr().out


def test_a_decision_without_item_ids_keeps_its_bulk_key() -> None:
    """As for despatch: a bulk respond recorded before ``Decision.item_ids`` existed is found
    again (an empty one is not part of the key); a given one is another decision."""
    plain = {
        "code": "AP",
        "reason": None,
        "changes": [],
        "notes": [],
        "substitutes": [],
        "charges": [],
        "discount": None,
    }
    canonical = json.dumps(["respond", 1, plain], sort_keys=True, separators=(",", ":"))
    decision = Decision("AP")
    assert bulk.key_of("respond", 1, decision) == hashlib.sha256(canonical.encode()).hexdigest()
    with_ids = Decision("AP", item_ids=(("1", "S-1"),))
    assert bulk.key_of("respond", 1, with_ids) != bulk.key_of("respond", 1, decision)
