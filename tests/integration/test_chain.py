"""The whole order-to-invoice chain, as the outbound issue states it, with status at each step:
order -> forwarded to the supplier in its bundle -> the supplier's confirmation in its CSV layout
-> Order Response to the buyer -> two partial despatches -> invoice -> credit note -> debit note.
Every UBL file the gateway produced goes through the official checks; the supplier's workbook
is read back with openpyxl and the invoice PDF as text."""

from __future__ import annotations

import io
import subprocess
import sys
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest
import yaml
from openpyxl import load_workbook
from pypdf import PdfReader

from edi_gateway.app import Gateway
from edi_gateway.config import load_config
from edi_gateway.outbound.despatch import DespatchRequest, despatch
from edi_gateway.outbound.documents import show
from edi_gateway.outbound.forward import flush_all
from edi_gateway.outbound.invoice import InvoiceRequest, LineRequest, invoice
from edi_gateway.pipeline.history import now
from edi_gateway.starter import init_project
from edi_gateway.store.db import Store
from edi_gateway.store.queries import order_detail, resolve_order
from edi_gateway.transports import open_inbound
from tests.conftest import shared_dir

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "samples"
ORDER = "VS-2026-1002"


def setup(tmp_path: Path) -> Path:
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
            "replies": {"*confirmation*": "confirmation", "*despatch*": "despatch"},
        }
    )
    for partner in data["partners"]:
        if partner["id"] == "nordisk":
            partner["relay_replies"] = True
    config.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    (tmp_path / "p" / "from-nordisk").mkdir()
    return config


def status(gateway: Gateway) -> str:
    with gateway.store.session() as session:
        return resolve_order(session, ORDER).status


def test_order_to_debit_note(store: Store, tmp_path: Path) -> None:
    config = setup(tmp_path)
    gateway = Gateway(load_config(config), store)
    outbox = config.parent / "outbox"

    gateway.ingest([SAMPLES / "order-vastra-1002.xml"])
    assert status(gateway) == "Acknowledged"  # vastra's auto rule answered AB

    flush_all(gateway.store, gateway.settings, at=now() + timedelta(minutes=31))
    [bundle] = [p for p in outbox.iterdir() if p.suffix == ".xlsx"]
    sheet = load_workbook(io.BytesIO(bundle.read_bytes()))[f"Order {ORDER}"]
    assert sheet["B1"].value == ORDER and sheet["A5"].value == "Rad"
    assert isinstance(sheet["E6"].value, int | float)  # quantities are numbers

    inbox = config.parent / "from-nordisk"
    name = f"nordisk-confirmation-{ORDER}.csv"
    (inbox / name).write_bytes((SAMPLES / "replies" / name).read_bytes())
    gateway.poll(open_inbound(gateway.settings.connector("from-nordisk")))
    assert status(gateway) == "Accepted with changes"

    partial = tuple((str(n), Decimal("1")) for n in (1, 2, 3))
    despatch(
        gateway.store,
        gateway.settings,
        ORDER,
        DespatchRequest(partial, carrier="PostNord"),
        actor="ops",
    )
    assert status(gateway) == "Partially delivered"
    despatch(
        gateway.store,
        gateway.settings,
        ORDER,
        DespatchRequest(carrier="DHL", tracking="JD0146000062"),
        actor="ops",
    )
    assert status(gateway) == "Fully delivered"

    first = invoice(gateway.store, gateway.settings, ORDER, InvoiceRequest(), actor="ops")
    assert status(gateway) == "Fully invoiced"
    invoice(
        gateway.store,
        gateway.settings,
        ORDER,
        InvoiceRequest(
            lines=(LineRequest("1", Decimal("2")),),
            credit_of=first.doc_number,
            reason="Två manschetter returnerade",
        ),
        actor="ops",
    )
    assert status(gateway) == "Partially invoiced"
    invoice(
        gateway.store,
        gateway.settings,
        ORDER,
        InvoiceRequest(
            lines=(LineRequest("2", Decimal("1"), Decimal("5.00")),),
            debit_of=first.doc_number,
            reason="Frakttillägg",
        ),
        actor="ops",
    )
    assert status(gateway) == "Partially invoiced"  # a debit note moves amounts, not goods

    flush_all(gateway.store, gateway.settings)
    with gateway.store.session() as session:
        detail = order_detail(session, resolve_order(session, ORDER))
    issued = [d["type"] for d in detail["documents"] if d["direction"] == "out"]
    assert issued.count("OrderResponse") == 2  # the AB, then the supplier's CA relayed
    assert issued.count("DespatchAdvice") == 2 and issued.count("Invoice") == 2
    assert issued.count("CreditNote") == 1
    lines = {line["line_id"]: line for line in detail["lines"]}
    assert lines["1"]["credited"] == "2" and lines["3"]["confirmed"] == "20"

    ubl = sorted(p for p in outbox.iterdir() if p.suffix == ".xml")
    assert len(ubl) == 7
    check = shared_dir() / "tools" / "ubl-check"
    done = subprocess.run(
        [sys.executable, str(check), *map(str, ubl)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr

    [invoice_row] = [d for d in detail["documents"] if d["document_id"] == first.doc_number]
    pdf = show(gateway.store, gateway.settings, invoice_row["id"], "pdf")
    text = "".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf.payload)).pages)
    assert first.doc_number in text and "Faktura" in text  # vastra reads Swedish
