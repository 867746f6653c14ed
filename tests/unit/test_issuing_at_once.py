"""Two operators (or gateways) issuing on the same order at the same moment: on PostgreSQL
their transactions overlap, so each must see what the other issued before it checks the
ledger and numbers its document (SQLite has one writer and serialises them anyway)."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from edi_gateway.app import Gateway
from edi_gateway.errors import GatewayError
from edi_gateway.outbound.despatch import DespatchRequest, despatch
from edi_gateway.outbound.invoice import InvoiceRequest, invoice
from edi_gateway.store.db import Store
from tests import factory as f
from tests.unit.support import detail, receive
from tests.unit.test_invoice import SELLER_LEGAL, billing_settings


@pytest.fixture
def billing(store: Store, tmp_path: Path) -> Gateway:
    (tmp_path / "out").mkdir()
    gateway = Gateway(billing_settings(tmp_path, seller_legal=SELLER_LEGAL), store)
    receive(gateway, f.order("PO-1", f.items(2)))
    return gateway


def _at_once(times: int, issue: Callable[[], Any]) -> Counter[str]:
    start = threading.Barrier(times)

    def one(_: int) -> str:
        start.wait()
        try:
            issue()
        except GatewayError as exc:
            return exc.code.value
        return "issued"

    with ThreadPoolExecutor(times) as pool:
        return Counter(pool.map(one, range(times)))


def _out(gateway: Gateway, kind: str) -> list[str]:
    documents = detail(gateway, "PO-1")["documents"]
    return [d["number"] for d in documents if d["direction"] == "out" and d["type"] == kind]


def test_the_same_order_despatched_and_invoiced_at_once_goes_once(billing: Gateway) -> None:
    settings, store = billing.settings, billing.store
    everything = DespatchRequest()
    despatched = _at_once(3, lambda: despatch(store, settings, "PO-1", everything, actor="a"))
    assert despatched["issued"] == 1 and sum(despatched.values()) == 3, despatched
    assert _out(billing, "DespatchAdvice") == ["PO-1-DA1"]
    invoiced = _at_once(3, lambda: invoice(store, settings, "PO-1", InvoiceRequest(), actor="b"))
    assert invoiced["issued"] == 1 and sum(invoiced.values()) == 3, invoiced
    assert len(_out(billing, "Invoice")) == 1
    lines = detail(billing, "PO-1")["lines"]
    assert [(ln["despatched"], ln["invoiced"]) for ln in lines] == [("10", "10")] * 2
