"""Operator actions on orders through the Gateway use cases."""

from __future__ import annotations

import pytest

from edi_gateway.app import Gateway
from edi_gateway.errors import ConfigError, LookupFailed
from tests import factory as f
from tests.unit.support import detail, receive


def test_operator_notes_show_in_the_history(
    gateway: Gateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EDI_GATEWAY_OPERATOR", "ops-li")
    receive(gateway, f.order("PO-1"))
    gateway.note("PO-1", "  Buyer called: deliver to dock 3 — 送货到3号码头 ")
    [note] = [h for h in detail(gateway)["history"] if h["event"] == "order.note"]
    assert note["actor"] == "ops-li"
    assert note["detail"] == "Buyer called: deliver to dock 3 — 送货到3号码头"
    with pytest.raises(ConfigError, match="needs some text"):
        gateway.note("PO-1", "   ")
    with pytest.raises(LookupFailed, match="no order matches"):
        gateway.note("PO-404", "x")
