"""Outbound in bulk (docs/adr/0038): many orders answered, despatched and invoiced at once, by
filter or by a CSV of decisions, with every check of the single-order commands and nothing
issued twice when the same command runs again."""

from __future__ import annotations

import subprocess
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, func, select

from edi_gateway.app import Gateway
from edi_gateway.errors import ErrorCode, GatewayError
from edi_gateway.outbound import bulk, outbox
from edi_gateway.outbound.bulk_csv import CsvRefused, read
from edi_gateway.outbound.despatch import DespatchRequest
from edi_gateway.outbound.invoice import InvoiceRequest
from edi_gateway.outbound.respond import Decision
from edi_gateway.store.db import Store
from edi_gateway.store.queries import Filters
from edi_gateway.store.schema import bulk_issued
from edi_gateway.store.tables import DocumentRow, Order, OutboxRow
from tests import factory as f
from tests.conftest import shared_dir
from tests.unit.support import detail, receive
from tests.unit.test_invoice import SELLER_LEGAL, billing_settings, payload_of


@pytest.fixture
def billing(store: Store, tmp_path: Path) -> Gateway:
    """A gateway whose supplier can invoice; orders PO-1 .. PO-4 of three lines (10 each)."""
    (tmp_path / "out").mkdir()
    gateway = Gateway(billing_settings(tmp_path, seller_legal=SELLER_LEGAL), store)
    for n in range(1, 5):
        receive(gateway, f.order(f"PO-{n}", f.items(3)))
    return gateway


def _filtered(
    gateway: Gateway, command: str, request: object, batch: int = 2, **filters: Any
) -> list[bulk.Outcome]:
    items = [bulk.Item(i, request) for i in bulk.filtered(gateway.store, Filters(**filters))]
    return bulk.run(gateway.store, gateway.settings, command, items, actor="ops", batch_size=batch)


def _count(gateway: Gateway, what: Any) -> int:
    with gateway.store.session() as session:
        return int(session.scalar(select(func.count()).select_from(what)) or 0)


def _csv(tmp_path: Path, text: str, name: str = "decisions.csv") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def _read(gateway: Gateway, command: str, path: Path) -> list[bulk.Item]:
    with gateway.store.reading() as session:
        return read(session, command, path)


def _run(
    gateway: Gateway, command: str, items: list[bulk.Item], batch: int = 3
) -> list[bulk.Outcome]:
    return bulk.run(gateway.store, gateway.settings, command, items, actor="ops", batch_size=batch)


def test_answer_despatch_invoice_by_filter_then_again_issues_nothing(billing: Gateway) -> None:
    answered = _filtered(billing, "respond", Decision("AP"), state="received")
    assert [o.state for o in answered] == ["issued"] * 4
    assert [o.status for o in answered] == ["Accepted"] * 4
    assert [o.doc_number for o in answered] == [f"PO-{n}-OR1" for n in range(1, 5)]
    # the same command again: every order still matches `--partner buyer`, nothing is issued
    again = _filtered(billing, "respond", Decision("AP"), partner="buyer")
    assert [(o.state, o.doc_number) for o in again] == [
        ("skipped", f"PO-{n}-OR1") for n in range(1, 5)
    ]
    despatched = _filtered(billing, "despatch", DespatchRequest(carrier="DHL"), state="accepted")
    assert {o.status for o in despatched} == {"Fully delivered"}
    invoiced = _filtered(billing, "invoice", InvoiceRequest(), batch=3, partner="buyer")
    assert {(o.state, o.status) for o in invoiced} == {("issued", "Fully invoiced")}
    assert _filtered(billing, "invoice", InvoiceRequest(), partner="buyer")[0].state == "skipped"
    assert _count(billing, OutboxRow) == 12 and _count(billing, bulk_issued) == 12
    sent = outbox.flush(billing.store, billing.settings)
    assert set(sent.values()) == {"sent"} and len(sent) == 12
    files = sorted((billing.settings.path.parent / "out").iterdir())
    check = shared_dir() / "tools" / "ubl-check"
    done = subprocess.run(
        [sys.executable, str(check), *map(str, files)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_a_refused_order_leaves_nothing_and_the_others_go(billing: Gateway) -> None:
    receive(billing, f.despatch_advice("D-1", "PO-2", [("1", "10"), ("2", "10"), ("3", "10")]))
    over = DespatchRequest(lines=(("1", Decimal(11)),))
    outcomes = _filtered(billing, "despatch", over, batch=10, partner="buyer")
    assert {o.code for o in outcomes} == {ErrorCode.QUANTITY_EXCEEDED.value}
    outcomes = _filtered(billing, "despatch", DespatchRequest(), batch=10, partner="buyer")
    states = {o.order_ref: (o.state, o.code) for o in outcomes}
    assert states["buyer:PO-2"] == ("refused", ErrorCode.NOT_ALLOWED.value)  # nothing open
    assert [s for s, _ in states.values()].count("issued") == 3
    assert _count(billing, OutboxRow) == 3 and _count(billing, bulk_issued) == 3
    assert [d["type"] for d in detail(billing, "PO-2")["documents"]] == ["Order", "DespatchAdvice"]


def test_a_csv_of_decisions_answers_each_order_its_way(billing: Gateway, tmp_path: Path) -> None:
    path = _csv(
        tmp_path,
        "Order,decision,line,quantity,date,note,reason,charge\n"
        "PO-1,accept,,,,,,\n"
        "PO-2,change,2,4,2026-12-24,only 4 left,,\n"
        "PO-2,,3,0,,,,freight:25.00\n"
        "PO-3,reject,,,,,discontinued,\n"
        "\n"
        "buyer:PO-4,ack,,,,,,\n",
    )
    items = _read(billing, "respond", path)
    assert [i.where for i in items] == [
        "decisions.csv row 2",
        "decisions.csv rows 3-4",
        "decisions.csv row 5",
        "decisions.csv row 7",
    ]
    outcomes = _run(billing, "respond", items)
    assert [o.status for o in outcomes] == [
        "Accepted",
        "Accepted with changes",
        "Rejected",
        "Acknowledged",
    ]
    lines = {ln["line_id"]: ln for ln in detail(billing, "PO-2")["lines"]}
    assert (lines["1"]["confirmed"], lines["2"]["confirmed"], lines["3"]["confirmed"]) == (
        "10",
        "4",
        "0",
    )
    payload = payload_of(billing, outcomes[1].outbox_id)  # PO-2
    assert b"only 4 left" in payload and b"2026-12-24" in payload and b"25.00" in payload
    # the same file, with quantities spelled otherwise, issues nothing again
    path.write_text(path.read_text().replace(",4,", ",4.00,"), encoding="utf-8")
    assert {o.state for o in _run(billing, "respond", _read(billing, "respond", path))} == {
        "skipped"
    }
    assert _count(billing, OutboxRow) == 4


def test_every_bad_row_is_named_and_nothing_is_issued(billing: Gateway, tmp_path: Path) -> None:
    path = _csv(
        tmp_path,
        "order,decision,line,quantity,reason,force\n"
        "PO-1,accept,,,,\n"
        "PO-2,change,1,lots,,\n"
        "PO-3,reject,,,,\n"
        "PO-4,accept,,,,maybe\n"
        "PO-4,reject,,,,\n"
        "PO-9,accept,,,,\n"
        "buyer:PO-1,ack,,,,\n"
        "PO-2,change,1\n",
    )
    with pytest.raises(CsvRefused) as refused:
        _read(billing, "respond", path)
    assert refused.value.code == ErrorCode.BAD_CSV
    problems = "\n".join(refused.value.problems)
    assert "row 9: 3 cells, the header has 6" in problems
    assert "row 6 column decision: 'reject', but row 5 gave 'accept'" in problems
    assert "row 3 column quantity: 'lots' is not a number" in problems
    assert "row 4 column decision: NOT_ALLOWED: a rejection needs a reason" in problems
    assert "row 5 column force: 'maybe': expected yes or no" in problems
    assert "row 7 column order: NOT_FOUND" in problems
    assert "row 8 column order: 'buyer:PO-1' is the order of row 2 again" in problems
    assert str(path) in refused.value.message
    assert _count(billing, OutboxRow) == 0 and _count(billing, DocumentRow) == 4


def test_a_quoted_cell_keeps_its_line_break(billing: Gateway, tmp_path: Path) -> None:
    path = _csv(
        tmp_path,
        'order,decision,line,quantity,note\nPO-2,change,2,4,"only 4\nleft"\nPO-3,accept,,,\n',
    )
    items = _read(billing, "respond", path)
    assert [i.where for i in items] == ["decisions.csv row 2", "decisions.csv row 3"]
    outcomes = _run(billing, "respond", items)
    assert {o.state for o in outcomes} == {"issued"}
    assert b"only 4\nleft" in payload_of(billing, outcomes[0].outbox_id)  # PO-2


@pytest.mark.parametrize(
    ("text", "found"),
    [
        ("order,decision,colour\nPO-1,accept,red\n", "row 1 column 'colour': not a column"),
        ("decision\naccept\n", "row 1: no 'order' column"),
        ("order,order\nPO-1,PO-1\n", "row 1: a column is named twice"),
        ("order,decision\n", "no rows under the header"),
        ("order,decision\n,accept\n", "row 2 column order: empty"),
        ("order,decision\nPO-1,\n", "row 2 column decision: empty"),
        ("order,decision\nPO-1,maybe\n", "row 2 column decision: 'maybe': expected ack"),
        ("order,decision,line\nPO-1,change,2\n", "needs at least one --change"),
        ("order,decision,quantity\nPO-1,change,3\n", "row 2 column line: empty"),
        ("order,decision,line,date\nPO-1,change,1,2026-12-01\n", "row 2 column quantity"),
        ("order,decision,line,quantity\nPO-1,change,1,-1\n", "cannot be negative"),
    ],
)
def test_a_bad_respond_csv_is_refused(
    billing: Gateway, tmp_path: Path, text: str, found: str
) -> None:
    with pytest.raises(CsvRefused, match=found):
        _read(billing, "respond", _csv(tmp_path, text))


def test_despatch_and_invoice_csvs_keep_the_ledger(billing: Gateway, tmp_path: Path) -> None:
    despatch = _csv(
        tmp_path,
        "order,line,quantity,carrier,tracking,date\n"
        "PO-1,1,4,DHL,JD1,2026-12-01\n"
        "PO-1,2,10,,,\n"
        "PO-2,,,UPS,1Z,\n",
        "despatch.csv",
    )
    outcomes = _run(billing, "despatch", _read(billing, "despatch", despatch))
    assert [o.status for o in outcomes] == ["Partially delivered", "Fully delivered"]
    invoice = _csv(
        tmp_path,
        "order,line,quantity,reason\nPO-1,1,4,\nPO-2,1,11,\nPO-2,2,10,\n",
        "invoice.csv",
    )
    items = _read(billing, "invoice", invoice)
    outcomes = _run(billing, "invoice", items)
    assert [(o.state, o.code) for o in outcomes] == [
        ("issued", None),
        ("refused", ErrorCode.QUANTITY_EXCEEDED.value),
    ]
    assert "11" in (outcomes[1].message or "")
    assert _count(billing, bulk_issued) == 3
    with pytest.raises(CsvRefused, match="more than 0"):
        _read(billing, "despatch", _csv(tmp_path, "order,line,quantity\nPO-3,1,0\n", "d.csv"))
    with pytest.raises(CsvRefused, match="a line is given twice"):
        _read(billing, "invoice", _csv(tmp_path, "order,line,quantity\nPO-3,1,1\nPO-3,1,2\n"))


def test_keys_name_the_command_the_order_and_the_choices() -> None:
    one = bulk.key_of("respond", 1, Decision("AP"))
    assert one == bulk.key_of("respond", 1, Decision("AP"))
    assert one != bulk.key_of("respond", 2, Decision("AP"))
    assert one != bulk.key_of("respond", 1, Decision("AB"))
    assert one != bulk.key_of("despatch", 1, Decision("AP"))
    ten = DespatchRequest(lines=(("1", Decimal("10")), ("2", Decimal("1"))))
    assert bulk.key_of(
        "despatch",
        1,
        ten,
    ) == bulk.key_of(
        "despatch", 1, DespatchRequest(lines=(("2", Decimal("1.0")), ("1", Decimal("10.000"))))
    )
    assert bulk.key_of("despatch", 1, ten) != bulk.key_of(
        "despatch", 1, DespatchRequest(lines=(("1", Decimal("1")), ("2", Decimal("10"))))
    )
    three_of_one = DespatchRequest(lines=(("1", Decimal("3")),))
    assert bulk.key_of("despatch", 1, three_of_one) != bulk.key_of(
        "despatch", 1, DespatchRequest(lines=(("3", Decimal("1")),))
    )
    noted = Decision("CA", notes=(("1", "a"), ("2", "b")))
    assert bulk.key_of("respond", 1, noted) != bulk.key_of(
        "respond", 1, Decision("CA", notes=(("1", "b"), ("2", "a")))
    )
    assert one not in bulk.earlier_keys("respond", 1, Decision("AP"))


def test_keys_tell_quantities_apart_past_the_28th_digit() -> None:
    """Two despatches differing only in the 31st significant digit are two requests (the
    default context rounded both to 40, one key: the second was never sent); a quantity of at
    most 28 digits keeps the key recorded before, whatever trailing zeros it is written with."""

    def key(quantity: str) -> str:
        return bulk.key_of("despatch", 1, DespatchRequest(lines=(("1", Decimal(quantity)),)))

    assert key("40.00000000000000000000000000001") != key("40")
    assert key("40.00000000000000000000000000001") != key("40.00000000000000000000000000002")
    assert key("40.000000000000000000000000000000") == key("40")
    # 28 digits: the key the release before this change recorded for it (computed there)
    assert key("1.000000000000000000000000001000") == (
        "b5c347701b5aa1a898b64af2624790d83e068e93406a47dfcfbafc29c433c480"
    )


def test_a_re_run_with_force_issues_nothing_twice(billing: Gateway) -> None:
    """--force pushes through the orders refused the first time; those that went stay done."""
    receive(billing, f.despatch_advice("D-1", "PO-2", [("1", "4")]))
    first = _filtered(billing, "respond", Decision("AP"), partner="buyer")
    assert [o.state for o in first] == ["issued", "refused", "issued", "issued"]
    items = [bulk.Item(o.order_id, Decision("AP"), force=True) for o in first]
    again = _run(billing, "respond", items)
    assert [o.state for o in again] == ["skipped", "issued", "skipped", "skipped"]
    assert [o.doc_number for o in again] == ["PO-1-OR1", "PO-2-OR1", "PO-3-OR1", "PO-4-OR1"]
    assert _run(billing, "respond", items)[1].state == "skipped"
    assert _count(billing, OutboxRow) == 4 and _count(billing, bulk_issued) == 4


def test_the_same_csv_with_its_rows_shuffled_issues_nothing(
    billing: Gateway, tmp_path: Path
) -> None:
    head = "order,line,quantity,carrier,tracking,date\n"
    rows = "PO-1,1,4,DHL,JD1,2026-12-01\nPO-1,2,3,,,\n"
    first = _run(billing, "despatch", _read(billing, "despatch", _csv(tmp_path, head + rows)))
    assert [o.state for o in first] == ["issued"]
    shuffled = "PO-1,2,3.0,DHL,JD1,2026-12-01\nPO-1,1,4,,,\n"
    again = _run(billing, "despatch", _read(billing, "despatch", _csv(tmp_path, head + shuffled)))
    assert [(o.state, o.doc_number) for o in again] == [("skipped", first[0].doc_number)]
    assert _count(billing, OutboxRow) == 1


def test_what_the_first_release_recorded_is_still_found(billing: Gateway) -> None:
    """A re-run after an upgrade: the key recorded under the first release's formula (force
    in it, rows in their given order) still marks the order done."""
    first = _filtered(billing, "respond", Decision("AP"), partner="buyer")
    with billing.store.connect() as conn:
        for outcome, force in zip(first, (False, True, False, True), strict=True):
            old = bulk.earlier_keys("respond", outcome.order_id, Decision("AP"))[force]
            key = bulk.key_of("respond", outcome.order_id, Decision("AP"))
            conn.execute(bulk_issued.update().where(bulk_issued.c.key == key).values(key=old))
    again = _filtered(billing, "respond", Decision("AP"), partner="buyer")
    assert [o.state for o in again] == ["skipped"] * 4
    assert _count(billing, OutboxRow) == 4


def test_a_bug_refuses_its_order_and_the_run_goes_on(
    billing: Gateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One unexpected error (not a GatewayError) refuses its item with INTERNAL_ERROR and leaves
    nothing of it; the batch's other orders are issued and committed."""
    from edi_gateway.outbound import respond

    real = respond.issue

    def buggy(session: Any, settings: Any, order: Order, *args: Any, **kwargs: Any) -> Any:
        issued = real(session, settings, order, *args, **kwargs)
        if order.order_number == "PO-2":
            raise RuntimeError("a bug after the document was written")
        return issued

    monkeypatch.setattr(respond, "issue", buggy)
    outcomes = _filtered(billing, "respond", Decision("AP"), batch=10, partner="buyer")
    assert [o.state for o in outcomes] == ["issued", "refused", "issued", "issued"]
    assert outcomes[1].code == ErrorCode.INTERNAL_ERROR.value
    assert "RuntimeError: a bug after the document was written" in (outcomes[1].message or "")
    assert _count(billing, OutboxRow) == 3 and _count(billing, bulk_issued) == 3
    assert [d["type"] for d in detail(billing, "PO-2")["documents"]] == ["Order"]
    assert detail(billing, "PO-2")["status"] == "Received"


def test_a_batch_size_below_one_is_refused(billing: Gateway) -> None:
    with pytest.raises(Exception, match="at least 1"):
        _run(billing, "respond", [], batch=0)


def test_a_spreadsheet_export_is_read_as_written(billing: Gateway, tmp_path: Path) -> None:
    """A BOM, CRLF line ends, quoted cells holding commas and quotes, any column order."""
    path = tmp_path / "export.csv"
    path.write_bytes(
        "\ufeffReason,ORDER,Decision\r\n"
        '"out of stock, sorry ""for now""",PO-1,reject\r\n'
        ",PO-2,Accept\r\n".encode()
    )
    outcomes = _run(billing, "respond", _read(billing, "respond", path))
    assert [o.status for o in outcomes] == ["Rejected", "Accepted"]
    assert b'out of stock, sorry "for now"' in payload_of(billing, outcomes[0].outbox_id)


def test_a_file_that_is_not_a_csv_of_text_is_refused(billing: Gateway, tmp_path: Path) -> None:
    binary = tmp_path / "photo.csv"
    binary.write_bytes(b"order,decision\n\xff\xd8\xff\xe0PO-1,accept\n")
    with pytest.raises(CsvRefused, match="not UTF-8 text"):
        _read(billing, "respond", binary)
    with pytest.raises(GatewayError) as missing:
        _read(billing, "respond", tmp_path / "nowhere.csv")
    assert missing.value.code == ErrorCode.SOURCE_UNREADABLE
    assert _count(billing, OutboxRow) == 0


def test_a_key_committed_meanwhile_rolls_the_document_back(billing: Gateway) -> None:
    """Another run committed the same decision after this batch read its keys (two operators
    at once): the key's unique index refuses the second document, which leaves nothing."""
    first = _filtered(billing, "respond", Decision("AP"), partner="buyer")
    assert {o.state for o in first} == {"issued"}
    item = bulk.Item(first[0].order_id, Decision("AP"))
    key = bulk.key_of("respond", item.order_id, item.request)
    with billing.store.session() as session:
        order = session.get_one(Order, item.order_id)
        batch = bulk._Batch(session, billing.settings, "respond", bulk.issuer("respond"), "ops")
        late = batch.one(item, order, first[0].order_ref, key)
    assert (late.state, late.document_id) == ("skipped", None)
    assert "issued meanwhile" in (late.message or "")
    assert _count(billing, OutboxRow) == 4 and _count(billing, bulk_issued) == 4
    assert len(detail(billing, "PO-1")["documents"]) == 2  # the Order and one response


def test_an_item_refused_because_another_run_just_issued_it_is_skipped(billing: Gateway) -> None:
    """Another run committed the same despatch after this batch read its keys: the order has
    nothing open any more, so this run's item is refused by the ledger; it is reported
    skipped, with the other run's document, not as a refusal."""
    first = _filtered(billing, "despatch", DespatchRequest(), partner="buyer")
    assert {o.state for o in first} == {"issued"}
    item = bulk.Item(first[0].order_id, DespatchRequest())
    key = bulk.key_of("despatch", item.order_id, item.request)
    with billing.store.session() as session:
        order = session.get_one(Order, item.order_id)
        batch = bulk._Batch(session, billing.settings, "despatch", bulk.issuer("despatch"), "ops")
        late = batch.one(item, order, first[0].order_ref, key)
        other = batch.one(item, order, first[0].order_ref, "a key nobody recorded")
    assert (late.state, late.document_id, late.doc_number) == (
        "skipped",
        first[0].document_id,
        first[0].doc_number,
    )
    assert (other.state, other.code) == ("refused", ErrorCode.NOT_ALLOWED.value)
    assert _count(billing, OutboxRow) == 4


def test_a_dry_run_checks_everything_and_issues_nothing(billing: Gateway) -> None:
    receive(billing, f.despatch_advice("D-1", "PO-2", [("1", "10"), ("2", "10"), ("3", "10")]))
    items = [bulk.Item(i, DespatchRequest()) for i in bulk.filtered(billing.store, Filters())]
    tried = bulk.run(
        billing.store, billing.settings, "despatch", items, actor="ops", batch_size=3, dry_run=True
    )
    assert [(o.state, o.code) for o in tried].count(("issued", None)) == 3
    assert [o.code for o in tried if o.state == "refused"] == [ErrorCode.NOT_ALLOWED.value]
    assert {o.document_id for o in tried} == {None} and {o.outbox_id for o in tried} == {None}
    assert _count(billing, OutboxRow) == 0 and _count(billing, bulk_issued) == 0
    assert [d["type"] for d in detail(billing, "PO-1")["documents"]] == ["Order"]
    real = _run(billing, "despatch", items)
    assert [o.doc_number for o in real] == [o.doc_number for o in tried]


def test_one_order_twice_in_a_batch_sees_its_first_document(billing: Gateway) -> None:
    """The batch reads its orders' lines once; the second despatch of an order in the same
    batch still sees what the first took (the same line objects), so the ledger refuses the
    third, which asks more than is left."""
    [first, *_] = bulk.filtered(billing.store, Filters())
    items = [
        bulk.Item(first, DespatchRequest(lines=(("1", Decimal(4)),), carrier=carrier))
        for carrier in ("DHL", "UPS", "TNT")
    ]
    items[2] = bulk.Item(first, DespatchRequest(lines=(("1", Decimal(3)),), carrier="TNT"))
    outcomes = _run(billing, "despatch", items, batch=10)
    assert [(o.state, o.code) for o in outcomes] == [
        ("issued", None),
        ("issued", None),
        ("refused", ErrorCode.QUANTITY_EXCEEDED.value),
    ]
    assert "1: 3 asked, 2 open" in (outcomes[2].message or "")
    [line] = [ln for ln in detail(billing, "PO-1")["lines"] if ln["line_id"] == "1"]
    assert line["despatched"] == "8"


def test_a_batch_reads_its_orders_lines_once(billing: Gateway) -> None:
    """Statements, not time: a batch of four orders selects order_lines once (the prefetch),
    not once or three times per order, and updates each order once."""
    seen: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        seen.append(" ".join(statement.split()))

    engine = billing.store.engine
    event.listen(engine, "before_cursor_execute", count)
    try:
        outcomes = _filtered(billing, "respond", Decision("AP"), batch=4, partner="buyer")
    finally:
        event.remove(engine, "before_cursor_execute", count)
    assert [o.state for o in outcomes] == ["issued"] * 4
    assert len([s for s in seen if s.startswith("SELECT") and "FROM order_lines" in s]) == 1
    assert len([s for s in seen if s.startswith("UPDATE orders ")]) == 4
    assert {line["confirmed"] for line in detail(billing, "PO-3")["lines"]} == {"10"}


def test_the_cli_default_batch_is_the_module_s() -> None:
    from edi_gateway.cli import outbound as cli_outbound

    assert cli_outbound.DEFAULT_BATCH == bulk.DEFAULT_BATCH


def test_a_bug_while_queueing_leaves_the_next_orders_alone(
    billing: Gateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The item's document row was written when queueing failed: the savepoint rolls it back,
    and nothing of it may stay in the session for the next order's document to meet (SQLite
    gives that one the same id). A handler that keeps log records keeps the failed objects
    alive, as pytest's capture or a buffering handler would."""
    import logging.handlers

    from edi_gateway.outbound import issuing

    real = issuing.enqueue

    def buggy(session: Any, item: Any, settings: Any) -> int:
        if item.doc_number.startswith("PO-2"):
            raise RuntimeError("a bug while queueing")
        return real(session, item, settings)

    monkeypatch.setattr(issuing, "enqueue", buggy)
    keep = logging.handlers.BufferingHandler(1000)
    logging.getLogger().addHandler(keep)
    try:
        outcomes = _filtered(billing, "respond", Decision("AP"), batch=10, partner="buyer")
    finally:
        logging.getLogger().removeHandler(keep)
    assert [(o.state, o.code) for o in outcomes] == [
        ("issued", None),
        ("refused", ErrorCode.INTERNAL_ERROR.value),
        ("issued", None),
        ("issued", None),
    ]
    assert _count(billing, OutboxRow) == 3 and _count(billing, DocumentRow) == 4 + 3


def test_a_refused_item_after_its_document_was_written_leaves_the_next_items_right(
    billing: Gateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A batch reads its orders' documents, ledger rows and counts of issued documents once
    (store.prefetch), and writes its history at its end. The first despatch of PO-1 is refused
    by a bug after its document, ledger rows, outbox row and events were written and the
    batch's numbers used: its savepoint rolls it all back, and the next despatch of PO-1 in
    the same batch is PO-1-DA1 again, named as the first one would have been, counted alone in
    the ledger (the third, asking more than is left, is refused on it), with one document's
    history; PO-2, after it in the batch, is untouched by it."""
    from edi_gateway.outbound import despatch

    real = despatch.issue_despatch
    calls: list[str] = []

    def buggy(session: Any, settings: Any, order: Order, *args: Any, **kwargs: Any) -> Any:
        issued = real(session, settings, order, *args, **kwargs)
        calls.append(order.order_number)
        if calls == ["PO-1"]:
            raise RuntimeError("a bug after the document was written")
        return issued

    monkeypatch.setattr(despatch, "issue_despatch", buggy)
    po1, po2 = bulk.filtered(billing.store, Filters())[:2]
    four = DespatchRequest(lines=(("1", Decimal(4)),), carrier="DHL")
    items = [
        bulk.Item(po1, four),
        bulk.Item(po1, four),
        bulk.Item(po2, DespatchRequest(carrier="UPS")),
        bulk.Item(po1, DespatchRequest(lines=(("1", Decimal(7)),))),
    ]
    outcomes = _run(billing, "despatch", items, batch=10)
    assert [(o.state, o.code, o.doc_number) for o in outcomes] == [
        ("refused", ErrorCode.INTERNAL_ERROR.value, None),
        ("issued", None, "PO-1-DA1"),
        ("issued", None, "PO-2-DA1"),
        ("refused", ErrorCode.QUANTITY_EXCEEDED.value, None),
    ]
    assert "1: 7 asked, 6 open" in (outcomes[3].message or "")
    shown = detail(billing, "PO-1")
    assert [d["type"] for d in shown["documents"]] == ["Order", "DespatchAdvice"]
    assert [ln["despatched"] for ln in shown["lines"]] == ["4", "0", "0"]
    assert shown["status"] == "Partially delivered"
    events = [e["event"] for e in shown["history"]]
    assert events.count("document.issued") == 1 and events.count("outbox.queued") == 1
    assert [ln["despatched"] for ln in detail(billing, "PO-2")["lines"]] == ["10"] * 3
    with billing.store.session() as session:
        names = sorted(session.scalars(select(OutboxRow.filename)))
    assert names == ["DespatchAdvice-PO-1-DA1.xml", "DespatchAdvice-PO-2-DA1.xml"]


def _same(shown: dict[str, Any], number: str) -> str:
    """An order's detail as text, its own number and every store ID and time left out."""
    import json
    import re

    text = json.dumps(shown, sort_keys=True, default=str).replace(number, "PO-N")
    ids = r'"(id|at|[a-z_]*_at|message_id|document_id|order_id|issue_date)": [^,}]*'
    return re.sub(ids, "", text)


def test_a_batch_counts_the_ledger_as_the_single_order_commands_do(billing: Gateway) -> None:
    """What a batch reads once and counts in memory (the documents before, the ones it writes)
    gives the very lines, status, discrepancies and history that the single-order commands
    give, which read the store for each document: PO-1 in bulk, PO-2 one by one, after the same
    received despatch advice (a quantity spelled 4.0, a backorder, a line beyond its order);
    accepted with 10 % off and freight, which the invoice takes from the response."""
    from edi_gateway.outbound.charges import Charge, Discount
    from edi_gateway.outbound.despatch import despatch
    from edi_gateway.outbound.invoice import invoice
    from edi_gateway.outbound.respond import respond

    for number in ("PO-1", "PO-2"):
        shipped = [("1", "4.0"), ("2", "12")]
        receive(billing, f.despatch_advice(f"D-{number}", number, shipped, outstanding={"1": "2"}))
    po1 = bulk.filtered(billing.store, Filters())[0]
    freight = Charge("freight", Decimal("25.00"))
    steps: list[tuple[str, Any, Any]] = [
        ("respond", Decision("CA", charges=(freight,), discount=Discount(Decimal(10))), respond),
        ("despatch", DespatchRequest(carrier="DHL"), despatch),
        ("invoice", InvoiceRequest(), invoice),
    ]
    for command, request, single in steps:
        [done] = _run(billing, command, [bulk.Item(po1, request, force=True)])
        assert done.state == "issued", done
        single(billing.store, billing.settings, "PO-2", request, actor="ops", force=True)
        assert _same(detail(billing, "PO-1"), "PO-1") == _same(detail(billing, "PO-2"), "PO-2")
    shown = detail(billing, "PO-1")
    assert shown["attention"] is True
    assert [d["type"] for d in shown["documents"]][-1] == "Invoice"
    assert done.outbox_id is not None
    billed = payload_of(billing, done.outbox_id)
    assert b"<cac:AllowanceCharge>" in billed  # the freight the response added
    assert b'<cbc:PriceAmount currencyID="EUR">3.825</cbc:PriceAmount>' in billed  # 10 % off


def test_a_refused_item_leaves_no_stale_rows_for_the_ids_the_next_one_gets(
    billing: Gateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The second despatch of PO-1 in the batch counts the ledger from the store, loading its
    own new document and ledger rows; a bug inside that count refuses it, and its savepoint
    rolls the rows back, while the log record's traceback keeps the loaded objects alive (as
    pytest's capture or a buffering handler does). SQLite gives the same IDs to the next
    document and its rows (PO-2's second despatch, also counted from the store): the session
    must not answer with the rolled-back ones (PO-1's line, 4) for them."""
    import logging.handlers

    from edi_gateway.pipeline import ledger

    real = ledger.flag
    calls: list[str] = []

    def buggy(session: Any, order: Order, *args: Any, **kwargs: Any) -> None:
        calls.append(order.order_number)
        if calls == ["PO-2", "PO-1", "PO-1"]:
            raise RuntimeError("a bug while counting the ledger")
        real(session, order, *args, **kwargs)

    monkeypatch.setattr(ledger, "flag", buggy)
    po1, po2, po3 = bulk.filtered(billing.store, Filters())[:3]
    four = DespatchRequest(lines=(("1", Decimal(4)),))
    items = [
        bulk.Item(po2, DespatchRequest(lines=(("1", Decimal(1)),))),
        bulk.Item(po1, four),
        bulk.Item(po1, four),
        bulk.Item(po2, DespatchRequest()),
        bulk.Item(po3, DespatchRequest()),  # the first on PO-3: what the batch read of it
    ]
    keep = logging.handlers.BufferingHandler(1000)
    logging.getLogger().addHandler(keep)
    try:
        outcomes = _run(billing, "despatch", items, batch=10)
    finally:
        logging.getLogger().removeHandler(keep)
    assert [(o.state, o.doc_number) for o in outcomes] == [
        ("issued", "PO-2-DA1"),
        ("issued", "PO-1-DA1"),
        ("refused", None),
        ("issued", "PO-2-DA2"),
        ("issued", "PO-3-DA1"),
    ]
    assert outcomes[3].status == outcomes[4].status == "Fully delivered"
    assert [ln["despatched"] for ln in detail(billing, "PO-3")["lines"]] == ["10"] * 3
    assert [ln["despatched"] for ln in detail(billing, "PO-2")["lines"]] == ["10"] * 3
    assert [ln["despatched"] for ln in detail(billing, "PO-1")["lines"]] == ["4", "0", "0"]


def _events(gateway: Gateway, order_id: int) -> list[tuple[str, str | None]]:
    from edi_gateway.store.schema import history

    h = history.c
    with gateway.store.session() as session:
        query = select(h.event, h.detail).where(h.order_id == order_id).order_by(h.id)
        return [(row.event, row.detail) for row in session.execute(query)]


def test_an_item_rolled_back_after_its_history_was_handed_on_leaves_none(
    billing: Gateway,
) -> None:
    """The item's events go to the batch's block when its own block ends; its savepoint can
    still be rolled back after that (here: the key committed meanwhile). None of its events
    (a document never issued) may be written with the batch's."""
    from edi_gateway.pipeline.history import together

    first = _filtered(billing, "respond", Decision("AP"), partner="buyer")
    item = bulk.Item(first[0].order_id, Decision("AP"))
    key = bulk.key_of("respond", item.order_id, item.request)
    before = _events(billing, item.order_id)
    with billing.store.session() as session:
        order = session.get_one(Order, item.order_id)
        batch = bulk._Batch(session, billing.settings, "respond", bulk.issuer("respond"), "ops")
        with together(session):  # as _Batch.run does around its items
            late = batch.one(item, order, first[0].order_ref, key)
        session.commit()
    assert late.state == "skipped"
    assert _events(billing, item.order_id) == before


def test_a_bug_failing_when_the_item_is_flushed_refuses_it_and_leaves_no_history(
    billing: Gateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bug leaves a change the store refuses (a NOT NULL column set to None), found only
    when the item is flushed: the order is refused INTERNAL_ERROR (not reported "issued
    meanwhile"), and nothing of it stays: no document, no outbox row, no history."""
    from edi_gateway.outbound import despatch

    real = despatch.issue_despatch

    def buggy(session: Any, settings: Any, order: Any, *args: Any, **kwargs: Any) -> Any:
        issued = real(session, settings, order, *args, **kwargs)
        order.order_number = None
        return issued

    monkeypatch.setattr(despatch, "issue_despatch", buggy)
    order_id = bulk.filtered(billing.store, Filters())[0]
    before, rows = _events(billing, order_id), _count(billing, OutboxRow)
    [out] = bulk.run(
        billing.store,
        billing.settings,
        "despatch",
        [bulk.Item(order_id, DespatchRequest())],
        actor="ops",
        batch_size=5,
    )
    assert (out.state, out.code) == ("refused", ErrorCode.INTERNAL_ERROR.value), out
    assert _events(billing, order_id) == before and _count(billing, OutboxRow) == rows
