"""KPIs per partner (issue 11, point 4): every figure from a chain whose times and dates are set
in the store, so each value is known in advance and a wrong definition fails."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import update

from edi_gateway import cli
from edi_gateway.app import Gateway
from edi_gateway.outbound import outbox
from edi_gateway.outbound.respond import Decision, respond
from edi_gateway.reports.kpi import kpi_report
from edi_gateway.store.schema import documents, order_lines, orders
from tests import factory as f
from tests.unit.support import receive

SINCE = datetime(2026, 10, 1, tzinfo=UTC)


def _set(gateway: Gateway, number: str, *, received: datetime, due: date | None) -> None:
    with gateway.store.connect() as conn:
        order_id = conn.scalar(
            orders.select().with_only_columns(orders.c.id).where(orders.c.order_number == number)
        )
        conn.execute(update(orders).where(orders.c.id == order_id).values(created_at=received))
        conn.execute(
            update(order_lines).where(order_lines.c.order_id == order_id).values(delivery_date=due)
        )


def _answered(gateway: Gateway, number: str, at: datetime) -> None:
    with gateway.store.connect() as conn:
        conn.execute(
            update(documents)
            .where(documents.c.kind == "OrderResponse", documents.c.order_ref == number)
            .values(created_at=at)
        )


@pytest.fixture
def chain(gateway: Gateway, tmp_path: Path) -> Gateway:
    now = datetime.now(UTC)
    for number in ("PO-1", "PO-2", "PO-3"):
        receive(gateway, f.order(number, f.items(2)))
    _set(gateway, "PO-1", received=now - timedelta(hours=20), due=date(2026, 11, 2))
    _set(gateway, "PO-2", received=now - timedelta(hours=12), due=date(2026, 10, 31))
    _set(gateway, "PO-3", received=now - timedelta(hours=5), due=date(2026, 11, 3))
    # PO-1 answered after 10 h by us, PO-2 after 2 h by the supplier, PO-3 never.
    respond(gateway.store, gateway.settings, "PO-1", Decision("AP"), actor="ops")
    _answered(gateway, "PO-1", now - timedelta(hours=10))
    receive(gateway, f.order_response("R-2", "PO-2", "AP"))
    _answered(gateway, "PO-2", now - timedelta(hours=10))
    # Despatch advices are issued 2026-11-01 (the factory's date): PO-1 due 11-02 is on time,
    # PO-2 due 10-31 is late, PO-3 due 11-03 has none and is past due: late.
    receive(gateway, f.despatch_advice("D-1", "PO-1", [("1", "10")]))
    receive(gateway, f.despatch_advice("D-2", "PO-2", [("1", "10")]))
    # First time right: a duplicate, a failure (two lines with one ID), an orphan redriven.
    dup = f.order_response("R-2", "PO-2", "AP")
    receive(gateway, dup)
    receive(gateway, f.order("PO-9", [f.Item("1", "1"), f.Item("1", "2")]))
    orphan = receive(gateway, f.despatch_advice("D-7", "PO-7", [("1", "1")]))
    gateway.redrive([orphan])
    # Deliveries: the response goes at the first attempt; a second one only at the second.
    assert set(outbox.flush(gateway.store, gateway.settings).values()) == {"sent"}
    blocked = tmp_path / "out"
    blocked.rename(tmp_path / "out-aside")
    blocked.write_text("not a folder")
    respond(gateway.store, gateway.settings, "PO-3", Decision("AB"), actor="ops")
    _answered(gateway, "PO-3", now - timedelta(hours=1))
    first = datetime.now(UTC)
    assert set(outbox.flush(gateway.store, gateway.settings, at=first).values()) == {"pending"}
    blocked.unlink()
    (tmp_path / "out-aside").rename(blocked)
    later = first + timedelta(hours=1)
    assert set(outbox.flush(gateway.store, gateway.settings, at=later).values()) == {"sent"}
    return gateway


def test_every_figure_follows_its_definition(chain: Gateway) -> None:
    until = datetime.now(UTC) + timedelta(days=1)
    with chain.store.connect() as conn:
        report = {row["partner"]: row for row in kpi_report(conn, SINCE, until)}
    buyer, seller = report["buyer"], report["seller"]

    # PO-1..3, and PO-9 that failed before its type was recorded
    assert buyer["documents_in"] == {"Order": 3, "not_interpreted": 1}
    assert seller["documents_in"] == {"DespatchAdvice": 3, "OrderResponse": 1}
    assert seller["duplicates_in"] == 1
    assert buyer["documents_out"] == {"OrderResponse": 2}

    # Answered after 10 h (PO-1), 2 h (PO-2) and 4 h (PO-3's AB).
    hours = buyer["response_hours"]
    assert (hours["orders"], hours["answered"]) == (3, 3)
    assert hours["median"] == pytest.approx(4.0, abs=0.01)
    assert hours["p90"] == pytest.approx(8.8, abs=0.01)  # 4 + 0.8 x (10 - 4)
    assert seller["response_hours"] == buyer["response_hours"]  # the same orders, both sides

    despatch = buyer["on_time_despatch"]
    assert (despatch["due"], despatch["on_time"]) == (3, 1)
    assert despatch["rate"] == pytest.approx(1 / 3, abs=1e-4)

    right = buyer["first_time_right"]
    assert (right["messages"], right["right"]) == (4, 3)  # PO-9 failed
    assert (right["deliveries"], right["first_attempt"]) == (2, 1)
    assert buyer["failures"] == {"DUPLICATE_LINE_ID": 1}
    seller_right = seller["first_time_right"]
    assert (seller_right["messages"], seller_right["right"]) == (4, 3)  # D-7 was redriven


def test_window_and_partner_filter(chain: Gateway) -> None:
    with chain.store.connect() as conn:
        assert kpi_report(conn, SINCE, SINCE + timedelta(days=1)) == []
        only = kpi_report(conn, SINCE, datetime.now(UTC) + timedelta(days=1), "seller")
    assert [row["partner"] for row in only] == ["seller"]


def test_cli_prints_text_json_and_csv(
    chain: Gateway, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    config = tmp_path / "gateway.yaml"
    config.write_text(
        "store: {url: " + json.dumps(str(chain.store.engine.url)) + "}\n"
        "partners:\n"
        + "".join(f"  - {json.dumps(p)}\n" for p in (f.buyer_partner(), f.seller_partner())),
        encoding="utf-8",
    )
    base = ["--config", str(config), "report", "kpi", "--since", "2026-10-01"]
    assert cli.main(base) == 0
    text = capsys.readouterr().out
    assert (
        "response time: median 4.0 h, p90 8.8 h" in text
        and "on-time despatch: 33.3% (1 of 3 due)" in text
    )
    assert cli.main([*base, "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["since"] == "2026-10-01T00:00:00Z"
    assert [p["partner"] for p in data["partners"]] == ["buyer", "seller"]
    assert cli.main([*base, "--csv", "--partner", "buyer"]) == 0
    [row] = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert row["on_time_rate"] == "0.3333" and row["failures"] == "DUPLICATE_LINE_ID=1"
    assert cli.main([*base, "--until", "2026-09-01"]) == 2  # a usage error


def test_a_supplier_answering_an_order_already_cancelled_has_answered(gateway: Gateway) -> None:
    """Its response is kept outside the order's quantities (state late) but it is an answer:
    the order is not counted as unanswered."""
    receive(gateway, f.order("PO-1", f.items(2)))
    receive(gateway, f.order_cancellation("C-1", "PO-1"))
    receive(gateway, f.order_response("R-9", "PO-1", "RE"))
    with gateway.store.connect() as conn:
        [seller] = [
            r for r in kpi_report(conn, SINCE, datetime.now(UTC)) if r["partner"] == "seller"
        ]
    assert (seller["response_hours"]["orders"], seller["response_hours"]["answered"]) == (1, 1)
