"""The orders filter "needs response / despatch / invoice" (store/queries.py ``needs_condition``),
shared by `orders list --needs` and the console: each order moved by real documents."""

from __future__ import annotations

from pathlib import Path

import pytest

from edi_gateway.app import Gateway
from edi_gateway.errors import ErrorCode, GatewayError
from edi_gateway.outbound.cancel import answer
from edi_gateway.store.db import Store
from edi_gateway.store.queries import Filters, page_orders
from tests import factory as f
from tests.unit.support import make_settings, receive


def needing(gateway: Gateway, needs: str) -> set[str]:
    with gateway.store.session() as session:
        page = page_orders(session, Filters(needs=needs))
    assert page.total == len(page.rows)
    return {row["order_number"] for row in page.rows}


@pytest.fixture
def gateway(store: Store, tmp_path: Path) -> Gateway:
    (tmp_path / "out").mkdir()
    gateway = Gateway(make_settings(tmp_path), store)
    for number in ("NEW", "ACK", "AP", "CA", "RE", "PART", "DONE", "BILLED", "CANC"):
        receive(gateway, f.order(number, f.items(2)))
    receive(gateway, f.order_response("R-ACK", "ACK", "AB"))
    receive(gateway, f.order_response("R-AP", "AP", "AP"))
    receive(gateway, f.order_response("R-CA", "CA", "CA", [("1", "3", "5"), ("2", "5", "10")]))
    receive(gateway, f.order_response("R-RE", "RE", "RE"))
    for number in ("PART", "DONE", "BILLED"):
        receive(gateway, f.order_response(f"R-{number}", number, "AP"))
    receive(gateway, f.despatch_advice("D-PART", "PART", [("1", "4")]))
    receive(gateway, f.despatch_advice("D-DONE", "DONE", [("1", "10"), ("2", "10")]))
    receive(gateway, f.despatch_advice("D-BILLED", "BILLED", [("1", "10"), ("2", "10")]))
    billed = [("1", "10", "2.25"), ("2", "10", "2.25")]
    receive(gateway, f.invoice("I-BILLED", "BILLED", billed))
    receive(gateway, f.order_response("R-CANC", "CANC", "AP"))
    receive(gateway, f.order_cancellation("C-CANC", "CANC"))
    assert needing(gateway, "despatch") == {"AP", "CA", "CANC"}  # only asked to cancel yet
    answer(gateway.store, gateway.settings, "CANC", accepted=True, reason=None, actor="t")
    return gateway


def test_needs_response_despatch_invoice(gateway: Gateway) -> None:
    assert needing(gateway, "response") == {"NEW", "ACK"}  # AB only acknowledges
    assert needing(gateway, "despatch") == {"AP", "CA"}
    assert needing(gateway, "invoice") == {"PART", "DONE"}
    with gateway.store.session() as session:  # the filters combine with the others
        page = page_orders(session, Filters(needs="invoice", search="PART"))
    assert [row["order_number"] for row in page.rows] == ["PART"]


def test_quantities_compare_as_numbers_not_as_text(store: Store, tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()
    gateway = Gateway(make_settings(tmp_path), store)
    receive(gateway, f.order("TEN", f.items(2)))
    receive(gateway, f.order_response("R-TEN", "TEN", "AP"))
    receive(gateway, f.despatch_advice("D-TEN", "TEN", [("1", "10")]))
    receive(gateway, f.invoice("I-TEN", "TEN", [("1", "9.5", "2.25")]))
    # 10 despatched, 9.5 invoiced: as text "10" < "9.5", as numbers half a unit is unbilled
    assert needing(gateway, "invoice") == {"TEN"}


TINY = "0.00000000000000000000000000001"
"""10**-29: past the 28 digits of Python's default context and the 17 of a float."""


def _moved(gateway: Gateway, number: str, despatched: str, invoiced: str) -> None:
    receive(gateway, f.order(number, f.items(1, "50")))
    receive(gateway, f.order_response(f"R-{number}", number, "AP"))
    receive(gateway, f.despatch_advice(f"D-{number}", number, [("1", despatched)]))
    if invoiced:
        receive(gateway, f.invoice(f"I-{number}", number, [("1", invoiced, "2.25")]))


def _exact_cases(gateway: Gateway) -> None:
    _moved(gateway, "MORE", "40.00000000000000000000000000001", "40")  # 1E-29 unbilled
    _moved(gateway, "LESS", "40", "40.00000000000000000000000000001")  # billed beyond
    _moved(gateway, "SAME", "40.0", "40.000")  # equal, spelt otherwise
    _moved(gateway, "SPECK", TINY, "")  # all that left: 1E-29, not invoiced


def test_unbilled_is_exact_on_every_backend(store: Store, tmp_path: Path) -> None:
    """``CAST(text AS NUMERIC)`` was a float on SQLite: 40.00000000000000000000000000001
    despatched and 40 invoiced were equal there (not listed) and not on PostgreSQL (listed).
    The ledger's exact flag answers alike on both; a despatch of 1E-29 is a despatch."""
    (tmp_path / "out").mkdir()
    gateway = Gateway(make_settings(tmp_path), store)
    _exact_cases(gateway)
    assert needing(gateway, "invoice") == {"MORE", "SPECK"}
    assert needing(gateway, "despatch") == set()


def test_migration_0029_flags_the_lines_stored_before(database_url: str, tmp_path: Path) -> None:
    """A store at 0028 gets the flag of every line it holds, compared exactly."""
    from alembic import command

    from edi_gateway.store.db import alembic_config, open_store

    (tmp_path / "out").mkdir()
    store = open_store(database_url)
    try:
        _exact_cases(Gateway(make_settings(tmp_path), store))
        command.downgrade(alembic_config(store.engine), "0028")
    finally:
        store.close()
    migrated = open_store(database_url)
    try:
        gateway = Gateway(make_settings(tmp_path), migrated)
        assert needing(gateway, "invoice") == {"MORE", "SPECK"}
    finally:
        migrated.close()


def test_an_unknown_need_is_a_usage_error(gateway: Gateway) -> None:
    with gateway.store.session() as session, pytest.raises(GatewayError) as raised:
        page_orders(session, Filters(needs="payment"))
    assert raised.value.code is ErrorCode.USAGE
