"""`documents show`: stored bytes as UBL, or rendered for a person in the partner's language."""

from __future__ import annotations

import io

import pytest
from openpyxl import load_workbook
from pypdf import PdfReader

from edi_gateway.app import Gateway
from edi_gateway.errors import LookupFailed
from edi_gateway.outbound.documents import show
from edi_gateway.outbound.issuing import NotAllowed
from edi_gateway.outbound.respond import Decision, respond
from tests import factory as f
from tests.unit.support import detail, receive


def test_received_and_issued_documents_are_shown_as_stored(gateway: Gateway) -> None:
    order_bytes = f.order("PO-1", f.items(2))
    receive(gateway, order_bytes)
    respond(gateway.store, gateway.settings, "PO-1", Decision("AP"), actor="ops")
    docs = {d["type"]: d["id"] for d in detail(gateway)["documents"]}
    shown = show(gateway.store, gateway.settings, docs["Order"])
    assert shown.payload == order_bytes and shown.filename == "Order-PO-1.xml"
    issued = show(gateway.store, gateway.settings, docs["OrderResponse"])
    assert b"<cbc:OrderResponseCode>AP</cbc:OrderResponseCode>" in issued.payload
    with pytest.raises(NotAllowed, match="no pdf rendering"):
        show(gateway.store, gateway.settings, docs["OrderResponse"], "pdf")
    with pytest.raises(LookupFailed, match="no document 999"):
        show(gateway.store, gateway.settings, 999)


def test_an_order_renders_as_pdf_and_excel(gateway: Gateway) -> None:
    receive(
        gateway, f.order("PO-7", [f.Item("1", "12", "4.80", "一次性医用口罩 Sjukvårdsartiklar")])
    )
    [order_doc] = detail(gateway, "PO-7")["documents"]
    pdf = show(gateway.store, gateway.settings, order_doc["id"], "pdf")
    text = "".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf.payload)).pages)
    assert "PO-7" in text and "一次性医用口罩" in text and "Sjukvårdsartiklar" in text
    xlsx = show(gateway.store, gateway.settings, order_doc["id"], "xlsx")
    values = [
        c
        for row in load_workbook(io.BytesIO(xlsx.payload)).active.iter_rows(values_only=True)
        for c in row
    ]
    assert "PO-7" in values and 12 in values
