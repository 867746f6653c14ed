"""The whole order-to-invoice chain, as the outbound issue states it, with status at each step:
order -> forwarded to the supplier in its bundle -> the supplier's confirmation in its CSV layout
-> Order Response to the buyer -> two partial despatches -> invoice -> credit note -> debit note.
Every UBL file the gateway produced goes through the official checks; the supplier's workbook
is read back with openpyxl and the invoice PDF as text."""

from __future__ import annotations

import io
import subprocess
import sys
from dataclasses import dataclass
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


@dataclass(frozen=True)
class Case:
    order: str
    sample: str
    supplier: str
    confirmation: str
    first_status: str  # vastra answers AB on receipt; rijnoever has no auto rule
    invoice_word: str  # the invoice PDF is in the buyer's language
    responses: int  # Order Responses the buyer gets: the AB (if any) and the relayed CA
    line3_confirmed: str


CASES = [
    Case(
        "VS-2026-1002",
        "order-vastra-1002.xml",
        "nordisk",
        "nordisk-confirmation-VS-2026-1002.csv",
        "Acknowledged",
        "Faktura",
        2,
        "20",
    ),
    Case(
        "4500012901",
        "order-rijnoever-4500012901.xml",
        "delftlab",
        "delftlab-confirmation-4500012901.xlsx",
        "Received",
        "Factuur",
        1,
        "2.5",
    ),
]


def setup(tmp_path: Path) -> Path:
    init_project(tmp_path / "p")
    config = tmp_path / "p" / "gateway.yaml"
    data = yaml.safe_load(config.read_text(encoding="utf-8"))
    for supplier, pattern in (("nordisk", "*.csv"), ("delftlab", "*.xlsx")):
        data["connectors"].append(
            {
                "name": f"from-{supplier}",
                "type": "folder",
                "direction": "in",
                "path": f"from-{supplier}",
                "pattern": pattern,
                "partner": supplier,
                "replies": {"*confirmation*": "confirmation", "*despatch*": "despatch"},
            }
        )
        (tmp_path / "p" / f"from-{supplier}").mkdir()
    for partner in data["partners"]:
        if partner["role"] == "supplier":
            partner["relay_replies"] = True
    config.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return config


def status(gateway: Gateway, order: str) -> str:
    with gateway.store.session() as session:
        return resolve_order(session, order).status


def test_several_orders_from_order_to_debit_note(store: Store, tmp_path: Path) -> None:
    config = setup(tmp_path)
    gateway = Gateway(load_config(config), store)
    outbox = config.parent / "outbox"

    gateway.ingest([SAMPLES / case.sample for case in CASES])
    for case in CASES:
        assert status(gateway, case.order) == case.first_status

    flush_all(gateway.store, gateway.settings, at=now() + timedelta(minutes=31))
    [bundle] = [p for p in outbox.iterdir() if p.suffix == ".xlsx"]  # nordisk's workbook
    sheet = load_workbook(io.BytesIO(bundle.read_bytes()))["Order VS-2026-1002"]
    assert sheet["B1"].value == "VS-2026-1002" and sheet["A5"].value == "Rad"
    assert isinstance(sheet["E6"].value, int | float)  # quantities are numbers
    forwarded = {p.name for p in outbox.iterdir() if p.name.startswith("delftlab-")}
    assert forwarded == {"delftlab-4500012901-ubl.xml", "delftlab-4500012901-bestelling.xml"}

    for case in CASES:
        inbox = config.parent / f"from-{case.supplier}"
        reply = SAMPLES / "replies" / case.confirmation
        (inbox / case.confirmation).write_bytes(reply.read_bytes())
        gateway.poll(open_inbound(gateway.settings.connector(f"from-{case.supplier}")))
        assert status(gateway, case.order) == "Accepted with changes"
        _deliver_and_bill(gateway, case)

    flush_all(gateway.store, gateway.settings)
    ubl = sorted(p for p in outbox.iterdir() if p.suffix == ".xml" and "bestelling" not in p.name)
    assert len(ubl) == 14  # 7 issued on each order (delftlab: its forwarded UBL order, no AB)
    check = shared_dir() / "tools" / "ubl-check"
    done = subprocess.run(
        [sys.executable, str(check), *map(str, ubl)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr


def _deliver_and_bill(gateway: Gateway, case: Case) -> None:
    order = case.order

    partial = tuple((str(n), Decimal("1")) for n in (1, 2, 3))
    despatch(
        gateway.store,
        gateway.settings,
        order,
        DespatchRequest(partial, carrier="PostNord"),
        actor="ops",
    )
    assert status(gateway, order) == "Partially delivered"
    despatch(
        gateway.store,
        gateway.settings,
        order,
        DespatchRequest(carrier="DHL", tracking="JD0146000062"),
        actor="ops",
    )
    assert status(gateway, order) == "Fully delivered"

    first = invoice(gateway.store, gateway.settings, order, InvoiceRequest(), actor="ops")
    assert status(gateway, order) == "Fully invoiced"
    invoice(
        gateway.store,
        gateway.settings,
        order,
        InvoiceRequest(
            lines=(LineRequest("1", Decimal("2")),),
            credit_of=first.doc_number,
            reason="Två manschetter returnerade",
        ),
        actor="ops",
    )
    assert status(gateway, order) == "Fully invoiced"  # a credit does not reopen billing
    invoice(
        gateway.store,
        gateway.settings,
        order,
        InvoiceRequest(
            lines=(LineRequest("2", Decimal("1"), Decimal("5.00")),),
            debit_of=first.doc_number,
            reason="Frakttillägg",
        ),
        actor="ops",
    )
    assert status(gateway, order) == "Fully invoiced"  # a debit note moves amounts, not goods

    with gateway.store.session() as session:
        detail = order_detail(session, resolve_order(session, order))
    issued = [d["type"] for d in detail["documents"] if d["direction"] == "out"]
    assert issued.count("OrderResponse") == case.responses
    assert issued.count("DespatchAdvice") == 2 and issued.count("Invoice") == 2
    assert issued.count("CreditNote") == 1
    lines = {line["line_id"]: line for line in detail["lines"]}
    assert lines["1"]["credited"] == "2" and lines["3"]["confirmed"] == case.line3_confirmed

    [invoice_row] = [d for d in detail["documents"] if d["document_id"] == first.doc_number]
    pdf = show(gateway.store, gateway.settings, invoice_row["id"], "pdf")
    text = "".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf.payload)).pages)
    assert first.doc_number in text and case.invoice_word in text  # the buyer's language
