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
from edi_gateway.ubl.read import interpret
from tests.conftest import shared_dir

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "samples"


def project(tmp_path: Path, replies: dict[str, str], *, relay: bool = False) -> Path:
    init_project(tmp_path / "p")
    config = tmp_path / "p" / "gateway.yaml"
    data = yaml.safe_load(config.read_text(encoding="utf-8"))
    data["connectors"].append(
        {
            "name": "from-nordisk",
            "type": "folder",
            "direction": "in",
            "path": "from-nordisk",
            "pattern": "*.csv",
            "partner": "nordisk",
            "replies": replies,
        }
    )
    data.pop("routes", None)  # no forwarding here, so nothing to route to
    for partner in data["partners"]:
        partner.pop("auto_response", None)
        partner.pop("forward", None)
        if partner["id"] == "nordisk":
            partner["relay_replies"] = relay
    config.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    (tmp_path / "p" / "from-nordisk").mkdir()
    return config


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
    init_project(tmp_path / "p")
    config = tmp_path / "p" / "gateway.yaml"
    data = yaml.safe_load(config.read_text(encoding="utf-8"))
    data["connectors"].append(
        {
            "name": "from-delftlab",
            "type": "folder",
            "direction": "in",
            "path": "from-delftlab",
            "pattern": "*.csv",
            "partner": "delftlab",
            "replies": {"*invoice*": "invoice"},
        }
    )
    data.pop("routes", None)  # no forwarding here, so nothing to route to
    for partner in data["partners"]:
        partner.pop("forward", None)
        if partner["id"] == "delftlab":
            partner["relay_replies"] = True
    config.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    (tmp_path / "p" / "from-delftlab").mkdir()
    gateway = Gateway(load_config(config), store)
    gateway.ingest([SAMPLES / "order-rijnoever-4500012873.xml"])
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
    check = shared_dir() / "tools" / "ubl-check"
    done = subprocess.run(
        [sys.executable, str(check), str(sent)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
