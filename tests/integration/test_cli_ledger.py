"""`orders list --attention`, `orders show` and `orders clear-attention` through the real
console script (docs/adr/0024): a supplier that invoices the same lines twice."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests import factory
from tests.integration.conftest import Project

pytestmark = pytest.mark.integration


def test_attention_is_listed_shown_and_cleared(
    make_project: Callable[..., Project], tmp_path: Path
) -> None:
    project = make_project()
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "1-order.xml").write_bytes(factory.order("LED-1", factory.items(1, "40")))
    (docs / "2-despatch.xml").write_bytes(
        factory.despatch_advice("D-1", "LED-1", [("1", "40")], tracking=("DHL", "JD1", None))
    )
    billed = [("1", "40", "2.25")]
    (docs / "3-invoice.xml").write_bytes(factory.invoice("S-INV-1", "LED-1", billed))
    (docs / "4-invoice.xml").write_bytes(factory.invoice("S-INV-2", "LED-1", billed))
    for name in sorted(p.name for p in docs.iterdir()):
        assert project.run("ingest", docs / name).returncode == 0

    flagged = project.json("orders", "list", "--attention")
    assert [o["number"] for o in flagged] == ["LED-1"] and flagged[0]["attention"] is True
    shown = project.json("orders", "show", "LED-1")
    assert shown["attention"] is True
    assert [(d["line_id"], d["kind"], d["quantity"]) for d in shown["discrepancies"]] == [
        ("1", "over_invoiced", "80")
    ]
    assert shown["shipments"][0]["carrier"] == "DHL"
    text = project.run("orders", "show", "LED-1").stdout
    assert "ATTENTION" in text and "Invoice S-INV-2 line 1: invoiced 80" in text

    refused = project.run("orders", "clear-attention", "LED-1")
    assert refused.returncode != 0 and "--reason" in refused.stderr
    done = project.json("orders", "clear-attention", "LED-1", "--reason", "S-INV-2 disputed")
    assert done["discrepancies"] == 1
    assert project.json("orders", "list", "--attention") == []
    history = project.json("orders", "show", "LED-1")["history"]
    assert [h["detail"] for h in history if h["event"] == "order.attention_cleared"] == [
        "S-INV-2 disputed"
    ]
    again = project.run("orders", "clear-attention", "LED-1", "--reason", "x")
    assert again.returncode != 0 and "NOT_ALLOWED" in again.stderr
    assert "--rebill-credited" in project.run("invoice", "--help").stdout
