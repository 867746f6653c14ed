"""Supplier replies in the supplier's own CSV layout, through a connector, move the order."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from lxml import etree

from edi_gateway.app import Gateway
from edi_gateway.config import load_config
from edi_gateway.errors import ConfigError
from edi_gateway.outbound.outbox import flush
from edi_gateway.starter import init_project
from edi_gateway.store.db import Store
from edi_gateway.store.queries import order_detail, resolve_order
from edi_gateway.transports import open_inbound
from edi_gateway.ubl.namespaces import CAC, CBC
from edi_gateway.ubl.read import interpret
from tests.conftest import shared_dir

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "samples"


def project(
    tmp_path: Path, replies: dict[str, str], *, relay: bool = False, supplier: str = "nordisk"
) -> Path:
    """The starter project with ``supplier``'s replies read from ``from-<supplier>``."""
    init_project(tmp_path / "p")
    config = tmp_path / "p" / "gateway.yaml"
    data = yaml.safe_load(config.read_text(encoding="utf-8"))
    data["connectors"].append(
        {
            "name": f"from-{supplier}",
            "type": "folder",
            "direction": "in",
            "path": f"from-{supplier}",
            "pattern": "*.csv",
            "partner": supplier,
            "replies": replies,
        }
    )
    data.pop("routes", None)  # no forwarding here, so nothing to route to
    for partner in data["partners"]:
        partner.pop("auto_response", None)
        partner.pop("forward", None)
        if partner["id"] == supplier:
            partner["relay_replies"] = relay
    config.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    (tmp_path / "p" / f"from-{supplier}").mkdir()
    return config


def delftlab_relaying(store: Store, tmp_path: Path) -> tuple[Path, Gateway]:
    """The starter project with delftlab's invoice CSVs read from ``from-delftlab`` and relayed
    to the buyer, and the order they answer received."""
    config = project(tmp_path, {"*invoice*": "invoice"}, relay=True, supplier="delftlab")
    gateway = Gateway(load_config(config), store)
    gateway.ingest([SAMPLES / "order-rijnoever-4500012873.xml"])
    return config, gateway


def test_confirmation_and_despatch_csv_move_the_order(store: Store, tmp_path: Path) -> None:
    config = project(tmp_path, {"*confirmation*": "confirmation", "*despatch*": "despatch"})
    gateway = Gateway(load_config(config), store)
    gateway.ingest([SAMPLES / "order-vastra-1002.xml"])
    inbox = config.parent / "from-nordisk"
    transport = open_inbound(gateway.settings.connector("from-nordisk"))
    for name in ("nordisk-confirmation-VS-2026-1002.csv", "nordisk-despatch-VS-2026-1002.csv"):
        (inbox / name).write_bytes((SAMPLES / "replies" / name).read_bytes())
    outcome = gateway.poll(transport)
    assert sorted(outcome.states.values()) == ["processed", "processed"]
    with store.session() as session:
        detail = order_detail(session, resolve_order(session, "VS-2026-1002"))
    lines = {line["line_id"]: line for line in detail["lines"]}
    assert (lines["3"]["confirmed"], lines["3"]["status_code"]) == ("20", "3")
    assert lines["1"]["despatched"] == "12" and lines["3"]["despatched"] == "20"
    kinds = [d["type"] for d in detail["documents"]]
    assert kinds.count("DespatchAdvice") >= 2  # the sample holds two delivery notes
    assert "OrderResponse" in kinds
    # everything left and the supplier's notes name the carrier and tracking: Shipped
    assert detail["status"] == "Shipped"
    assert detail["shipments"] and all(s["tracking_id"] for s in detail["shipments"])
    assert detail["attention"] is False


def test_a_reply_map_must_exist_for_a_supplier_connector(tmp_path: Path) -> None:
    config = project(tmp_path, {"*confirmation*": "nonexistent"})
    with pytest.raises(ConfigError, match=r"connectors\[2\]\.replies.*nonexistent"):
        load_config(config)


def test_supplier_replies_are_relayed_to_the_buyer_as_peppol_ubl(
    store: Store, tmp_path: Path
) -> None:
    config = project(
        tmp_path, {"*confirmation*": "confirmation", "*despatch*": "despatch"}, relay=True
    )
    gateway = Gateway(load_config(config), store)
    gateway.ingest([SAMPLES / "order-vastra-1002.xml"])
    inbox = config.parent / "from-nordisk"
    for name in ("nordisk-confirmation-VS-2026-1002.csv", "nordisk-despatch-VS-2026-1002.csv"):
        (inbox / name).write_bytes((SAMPLES / "replies" / name).read_bytes())
    gateway.poll(open_inbound(gateway.settings.connector("from-nordisk")))
    with store.session() as session:
        detail = order_detail(session, resolve_order(session, "VS-2026-1002"))
    relayed = [d for d in detail["documents"] if d["direction"] == "out"]
    assert [d["type"] for d in relayed].count("DespatchAdvice") == 2
    assert [d["type"] for d in relayed].count("OrderResponse") == 1
    lines = {line["line_id"]: line for line in detail["lines"]}
    assert lines["1"]["despatched"] == "12"  # the relayed copies moved nothing twice
    assert lines["3"]["confirmed"] == "20"
    flush(gateway.store, gateway.settings)
    sent = sorted((config.parent / "outbox").iterdir())
    assert len(sent) == 3
    for path in sent:
        document = interpret(etree.fromstring(path.read_bytes()))
        assert document.order_refs == ["VS-2026-1002"]
        assert document.buyer is not None and document.buyer.key() == "0088:7350051600005"
    check = shared_dir() / "tools" / "ubl-check"
    done = subprocess.run(
        [sys.executable, str(check), *map(str, sent)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_a_supplier_invoice_in_its_csv_is_relayed_as_billing_3(
    store: Store, tmp_path: Path
) -> None:
    config, gateway = delftlab_relaying(store, tmp_path)
    name = "delftlab-invoice-4500012873.csv"
    (config.parent / "from-delftlab" / name).write_bytes((SAMPLES / "replies" / name).read_bytes())
    outcome = gateway.poll(open_inbound(gateway.settings.connector("from-delftlab")))
    assert list(outcome.states.values()) == ["processed"]
    with store.session() as session:
        detail = order_detail(session, resolve_order(session, "4500012873"))
    lines = {line["line_id"]: line for line in detail["lines"]}
    assert lines["1"]["invoiced"] == "6"  # counted once: the supplier's invoice
    relayed = [d for d in detail["documents"] if d["direction"] == "out"]
    assert [(d["type"], d["document_id"]) for d in relayed] == [("Invoice", "F2026-30412")]
    flush(gateway.store, gateway.settings)
    [sent] = list((config.parent / "outbox").iterdir())
    document = interpret(etree.fromstring(sent.read_bytes()))
    assert document.document_id == "F2026-30412" and document.order_refs == ["4500012873"]
    root = etree.fromstring(sent.read_bytes())
    ns = {"cbc": CBC, "cac": CAC}
    means = root.find("cac:PaymentMeans", ns)
    assert means is not None
    assert [
        means.findtext(path, namespaces=ns)
        for path in (
            "cbc:PaymentMeansCode",
            "cbc:PaymentID",
            "cac:PayeeFinancialAccount/cbc:ID",
            "cac:PayeeFinancialAccount/cac:FinancialInstitutionBranch/cbc:ID",
        )
    ] == [
        "30",
        "1000 2026 3041 2",
        "NL91ABNA0417164300",
        "ABNANL2A",
    ]  # the file's, not gateway.yaml's
    assert root.findtext("cbc:Note", namespaces=ns) == "Levering in twee zendingen"
    assert root.findtext("cac:LegalMonetaryTotal/cbc:PayableAmount", namespaces=ns) == "2532.41"
    check = shared_dir() / "tools" / "ubl-check"
    done = subprocess.run(
        [sys.executable, str(check), str(sent)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_a_supplier_invoice_csv_without_its_payment_reference_fails_naming_it(
    store: Store, tmp_path: Path
) -> None:
    """What the layout lacks is an error naming the field, never the invoice number or an
    account from gateway.yaml; nothing is relayed."""
    config, gateway = delftlab_relaying(store, tmp_path)
    name = "delftlab-invoice-4500012873.csv"
    text = (SAMPLES / "replies" / name).read_bytes().decode("cp1252")
    rows = [line.split(";") for line in text.splitlines()]
    at = rows[0].index("Betalingskenmerk")
    for row in rows[1:]:
        row[at] = ""
    blanked = "\r\n".join(";".join(row) for row in rows) + "\r\n"
    (config.parent / "from-delftlab" / name).write_bytes(blanked.encode("cp1252"))
    outcome = gateway.poll(open_inbound(gateway.settings.connector("from-delftlab")))
    [(mid, state)] = outcome.states.items()
    assert state == "failed"
    from edi_gateway.store.queries import message_detail

    with store.session() as session:
        shown = message_detail(session, mid)
    assert shown["error_code"] == "INTERPRETATION_FAILED"
    assert (
        f"{name}, row 2, column 'Betalingskenmerk' (payment_reference): the cell is empty"
        in shown["error_detail"]
    )
    flush(gateway.store, gateway.settings)
    assert not (config.parent / "outbox").exists() or not any((config.parent / "outbox").iterdir())
