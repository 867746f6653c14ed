"""Issue 10 point 5: order type, delivery, buyer reference, contacts, notes and attachments are
read, kept, shown, listed by type and handed out (docs/adr/0029)."""

from __future__ import annotations

import base64
import hashlib
import json
from datetime import date
from pathlib import Path

import pytest
from lxml import etree

from edi_gateway.app import Gateway
from edi_gateway.domain.order_data import Address, Contact
from edi_gateway.errors import ErrorCode, GatewayError
from edi_gateway.store.queries import (
    Filters,
    message_detail,
    order_detail,
    page_orders,
    resolve_order,
)
from edi_gateway.ubl import read_order_data
from edi_gateway.ubl.read import interpret
from tests import factory as f
from tests.unit.order_data_support import (
    DELIVERY,
    EXPRESS,
    PEPPOL_EXAMPLES,
    attachment,
    corpus_file,
    order_example,
    order_with_data,
    read,
)
from tests.unit.support import detail, receive

# --- reading the official examples ----------------------------------------------------------


def test_peppol_order_example_gives_every_field() -> None:
    order = read(order_example().read_bytes())
    assert order.order_type == "220"
    assert order.buyer_reference == "9000012345"
    assert order.notes == ["Information text for the whole order"]
    delivery = order.delivery
    assert delivery is not None
    assert (delivery.location_scheme, delivery.location_id) == ("0088", "7300010000001")
    assert delivery.address == Address(
        street="Solheimsveien 10",
        additional_street="Add",
        city="Lørenskog",
        postal_zone="1473",
        subentity="Region",
        line="3rd Address line",
        country="NO",
    )
    assert (delivery.start_date, delivery.start_time) == (date(2012, 10, 10), "12:30:00")
    assert (delivery.end_date, delivery.end_time) == (date(2012, 10, 20), "18:00:00")
    assert delivery.period() == "2012-10-10 12:30:00 – 2012-10-20 18:00:00"
    assert delivery.place() == "Helseavdeling (0088:7300010000001)"
    assert (delivery.party_name, delivery.party_id) == ("Helseavdeling", "0082:13691234")
    assert delivery.contact == Contact("Ole", "987098709", "ole@helseforetak.no")
    assert delivery.priority == "1" and delivery.express
    assert order.buyer_contact == Contact("Ole Olsen", "23055000", "post@helseforetak.no")
    assert order.seller_contact == Contact("Nils Nilsen", "22150510", "post@medical.no")
    link, embedded = order.attachments
    assert (link.ref, link.document_type, link.uri) == (
        "Doc1",
        "Timesheet",
        "http://www.suppliersite.eu/sheet001.html",
    )
    assert link.content is None and link.problem is None
    assert (embedded.ref, embedded.filename, embedded.mime_code) == (
        "Doc2",
        "Hours-spend.csv",
        "application/pdf",
    )
    assert embedded.content == b"R0lGODlhcgGSALMAAAQCAEMmCZtuMFQxDS8b"
    assert embedded.size == 36 and embedded.problem is None


def test_advanced_ordering_sc1_and_oasis_examples() -> None:
    scenario = PEPPOL_EXAMPLES / "Advanced Ordering scenarios" / "advanced_ordering_sc1"
    sc1 = read(corpus_file(str(scenario / "Order_sc1.xml")).read_bytes())
    assert sc1.order_type is None and sc1.buyer_reference is None and sc1.attachments == []
    assert sc1.delivery is not None and sc1.delivery.address is not None
    assert sc1.delivery.address.text() == "Lower street 5, Reception, 11120 Stockholm, SE"
    assert sc1.delivery.period() == "2022-02-15 – 2022-03-01"
    assert sc1.delivery.party_name == "Hospital Tourist Department"
    assert sc1.delivery.contact == Contact("John", "+465558877523", "john@cityhospital.se")
    assert sc1.buyer_contact == Contact(
        "Martin Foggerty", "+46555785488", "martin.foggerty@cityhospital.se"
    )
    oasis = read(corpus_file("oasis-ubl-2.1/xml/UBL-Order-2.1-Example.xml").read_bytes())
    assert oasis.delivery is not None and oasis.delivery.address is not None
    assert oasis.delivery.address.city == "Stockholm"
    assert oasis.delivery.address.street == "Rådhusgatan"
    assert (oasis.delivery.start_date, oasis.delivery.end_date) == (
        date(2010, 2, 10),
        date(2010, 2, 25),
    )
    assert oasis.delivery.party_id == "GLN:67654328394567"
    assert oasis.buyer_contact == Contact(None, "123456", "pelle@johnsson.se")
    assert [a.ref for a in oasis.attachments] == ["Doc1", "Doc2"]
    assert oasis.attachments[1].content == b"R0lGODlhcgGSALMAAAQCAEMmCZtuMFQxDS8b"


def test_an_order_without_order_data_reads_as_none() -> None:
    order = read(f.order("PO-1"))
    assert order.order_type is None and order.buyer_reference is None
    assert order.delivery is None and order.buyer_contact is None and order.notes == []
    assert order.attachments == []
    empty = order_with_data(delivery="<cac:Delivery/>", contacts=False, type_code=None)
    assert read(empty).delivery is None  # an empty Delivery says nothing


# --- hostile attachments, read without the XSD (defence in depth) ---------------------------


def _interpret(payload: bytes) -> object:
    return interpret(etree.fromstring(payload))


@pytest.mark.parametrize("encoded", ["@@not base64@@", "@@@", "QQ", "QUJ", "éé=="])
def test_invalid_base64_is_a_coded_problem_not_a_crash(encoded: str) -> None:
    order = _interpret(order_with_data(attachments=attachment(encoded=encoded)))
    [found] = getattr(order, "attachments")
    assert found.content is None
    assert found.problem.startswith("ATTACHMENT_INVALID: not valid base64")


def test_base64_with_line_breaks_and_spaces_is_read() -> None:
    content = bytes(range(256)) * 4
    wrapped = base64.encodebytes(content).decode().replace("\n", "\n   ")
    [found] = read(order_with_data(attachments=attachment(encoded=wrapped))).attachments
    assert found.content == content and found.size == len(content)


def test_attachment_over_the_limit_is_listed_not_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(read_order_data, "MAX_ATTACHMENT_BYTES", 1000)
    payload = order_with_data(
        attachments=attachment("BIG", b"x" * 1001) + attachment("OK", b"y" * 1000)
    )
    big, fits = read(payload).attachments
    assert big.content is None and big.size == 1001
    assert big.problem == "ATTACHMENT_TOO_LARGE: 1001 bytes, more than the 1000 kept"
    assert fits.content == b"y" * 1000 and fits.problem is None
    huge = order_with_data(attachments=attachment("HUGE", encoded="QUJD" * 100_000))
    [refused] = read(huge).attachments  # refused on its length, before decoding
    assert refused.size == 300_000 and refused.problem.startswith("ATTACHMENT_TOO_LARGE")


# --- kept by intake, shown, listed ------------------------------------------------------------


def test_intake_keeps_order_data_and_orders_show_json_has_it(gateway: Gateway) -> None:
    payload = order_with_data(
        attachments=attachment() + attachment("D2", b"secret", filename="../../etc/passwd"),
        delivery=DELIVERY.format(shipment=EXPRESS),
        notes=("Ring at gate B", "Pallets only"),
    )
    receive(gateway, payload)
    shown = detail(gateway)
    assert shown["order_type"] == "221"
    assert shown["order_type_name"] == "blanket order (221)"
    assert shown["buyer_reference"] == "REF-77"
    assert shown["notes"] == ["Ring at gate B", "Pallets only"]
    delivery = shown["delivery"]
    assert delivery["place"] == "Dock 4 (0088:7300010000099)"
    assert delivery["address"] == "Kajen 7, 41101 Göteborg, SE"
    assert delivery["period"] == "2026-12-14 08:00:00 – 2026-12-15 16:00:00"
    assert (delivery["start_date"], delivery["end_date"]) == ("2026-12-14", "2026-12-15")
    assert delivery["express"] is True and delivery["party_name"] == "Goods reception"
    assert shown["contacts"] == [
        {"role": "buyer", "name": "Anna Buyer", "telephone": None, "email": "anna@buyer.example"},
        {"role": "seller", "name": None, "telephone": "+31 10 555", "email": None},
        {"role": "delivery", "name": "Eva", "telephone": "+46 31 100", "email": None},
    ]
    drawing, hostile = shown["attachments"]
    assert (drawing["ref"], drawing["filename"], drawing["size"], drawing["kept"]) == (
        "D1",
        "drawing.pdf",
        16,
        True,
    )
    assert hostile["filename"] == "../../etc/passwd"  # kept as text, never used as a path
    json.dumps(shown)  # the --json output is plain JSON


def test_an_order_without_data_shows_the_implied_type(gateway: Gateway) -> None:
    receive(gateway, f.order("PO-1"))
    shown = detail(gateway)
    assert shown["order_type"] is None
    assert shown["order_type_name"] == "purchase order (220, implied)"
    assert (shown["delivery"], shown["contacts"], shown["attachments"]) == (None, [], [])
    assert shown["notes"] == [] and shown["buyer_reference"] is None


def _types(gateway: Gateway, wanted: str) -> list[str]:
    with gateway.store.session() as session:
        page = page_orders(session, Filters(order_type=wanted))
    return sorted(r["order_number"] for r in page.rows)


def test_orders_list_by_type(gateway: Gateway) -> None:
    receive(gateway, order_with_data("BLANKET", type_code="221"))
    receive(gateway, order_with_data("CALLOFF", type_code="226"))
    receive(gateway, order_with_data("XDOCK", type_code="402"))
    receive(gateway, order_with_data("PLAIN", type_code="220"))
    receive(gateway, f.order("NOCODE"))  # Peppol: no code means 220
    receive(
        gateway,
        order_with_data("RUSH", type_code="220", delivery=DELIVERY.format(shipment=EXPRESS)),
    )
    assert _types(gateway, "blanket") == ["BLANKET"] == _types(gateway, "framework")
    assert _types(gateway, "221") == ["BLANKET"]
    assert _types(gateway, "Call-Off") == ["CALLOFF"]
    assert _types(gateway, "cross_docking") == ["XDOCK"]
    assert _types(gateway, "purchase") == ["NOCODE", "PLAIN", "RUSH"] == _types(gateway, "220")
    assert _types(gateway, "express") == ["RUSH"]
    assert _types(gateway, "consignment") == []
    with pytest.raises(GatewayError, match="standing order has no code") as caught:
        _types(gateway, "standing")
    assert caught.value.code is ErrorCode.USAGE
    with pytest.raises(GatewayError, match="expected a type code"):
        _types(gateway, "urgentish")
    with pytest.raises(GatewayError, match="expected a type code"):
        _types(gateway, "22;0")


def test_intake_invalid_base64_is_refused_or_flagged_never_a_crash(gateway: Gateway) -> None:
    refused = receive(gateway, order_with_data(attachments=attachment(encoded="@@not base64@@")))
    kept = receive(gateway, order_with_data("PO-2", attachments=attachment(encoded="@@@")))
    with gateway.store.session() as session:
        refused_shown, kept_shown = (message_detail(session, m) for m in (refused, kept))
    # the XSD (libxml2) refuses some broken base64 ...
    assert refused_shown["state"] == "failed" and refused_shown["error_code"] == "XSD_INVALID"
    assert "EmbeddedDocumentBinaryObject" in refused_shown["error_detail"]
    # ... and lets other broken base64 through: the order is kept, the attachment flagged
    assert kept_shown["state"] == "processed"
    [finding] = kept_shown["findings"]
    assert (finding["rule_set"], finding["rule_id"]) == ("GATEWAY", "ATTACHMENT_INVALID")
    [listed] = detail(gateway, "PO-2")["attachments"]
    assert listed["kept"] is False and listed["problem"].startswith("ATTACHMENT_INVALID")


def test_intake_keeps_an_order_whose_attachment_is_too_large(
    gateway: Gateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(read_order_data, "MAX_ATTACHMENT_BYTES", 100)
    mid = receive(gateway, order_with_data(attachments=attachment("BIG", b"z" * 101)))
    [listed] = detail(gateway)["attachments"]
    assert listed["kept"] is False and listed["size"] == 101 and listed["sha256"] is None
    assert listed["problem"].startswith("ATTACHMENT_TOO_LARGE")
    with gateway.store.session() as session:
        shown = message_detail(session, mid)
    assert shown["state"] == "processed"
    [finding] = shown["findings"]
    assert (finding["rule_id"], finding["flag"]) == ("ATTACHMENT_TOO_LARGE", "warning")
    assert "attachment 'BIG' (drawing.pdf) not kept" in finding["text"]


# --- the CLI: orders show, orders list --type, documents attachment(s) -------------------------


def _config(gateway: Gateway, tmp_path: Path) -> list[str]:
    import yaml

    data = gateway.settings.model_dump(mode="json", exclude={"path"}, exclude_defaults=True)
    data["store"] = {"url": gateway.store.engine.url.render_as_string(hide_password=False)}
    config = tmp_path / "gateway.yaml"
    config.write_text(yaml.safe_dump(data))
    return ["--config", str(config)]


def test_cli_shows_lists_and_hands_out_attachments(
    gateway: Gateway,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from edi_gateway import cli

    content = bytes(range(256))
    attached = attachment("D1", content, filename="../../evil.sh")
    attached += attachment("D2", b"x", filename="two&#10;lines.txt")
    receive(gateway, order_with_data(attachments=attached))
    receive(gateway, order_with_data("PO-2", type_code="227"))
    base = _config(gateway, tmp_path)
    assert cli.main([*base, "orders", "show", "PO-1"]) == 0
    out = capsys.readouterr().out
    for expected in (
        "type   blanket order (221)",
        "buyer reference REF-77",
        "deliver to Dock 4 (0088:7300010000099)",
        "address    Kajen 7, 41101 Göteborg, SE",
        "period     2026-12-14 08:00:00 – 2026-12-15 16:00:00",
        "buyer      Anna Buyer, anna@buyer.example",
        "delivery   Eva, +46 31 100",
        "Ring at gate B",
        "../../evil.sh",
        "two lines.txt",  # a line break in the sender's file name does not break the table
    ):
        assert expected in out, expected
    assert cli.main([*base, "orders", "show", "PO-1", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["delivery"]["city"] == "Göteborg"
    assert cli.main([*base, "orders", "list", "--type", "consignment", "--json"]) == 0
    assert [r["order_number"] for r in json.loads(capsys.readouterr().out)] == ["PO-2"]
    assert cli.main([*base, "orders", "list", "--type", "blanket"]) == 0
    listed = capsys.readouterr().out
    assert "221" in listed and "PO-1" in listed and "PO-2" not in listed
    assert cli.main([*base, "orders", "list", "--type", "standing"]) != 0
    assert "USAGE" in capsys.readouterr().err
    assert cli.main([*base, "documents", "attachments", "PO-1", "--json"]) == 0
    row, second = json.loads(capsys.readouterr().out)
    assert second["filename"] == "two\nlines.txt"  # JSON keeps it as sent
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    target = work / "saved.bin"
    assert (
        cli.main([*base, "documents", "attachment", str(row["id"]), "--output", str(target)]) == 0
    )
    assert target.read_bytes() == content
    assert "sent as '../../evil.sh'" in capsys.readouterr().out
    assert sorted(p.name for p in work.iterdir()) == ["saved.bin"]
    assert not (tmp_path / "evil.sh").exists()
    assert cli.main([*base, "documents", "attachment", "999"]) != 0
    assert "NOT_FOUND" in capsys.readouterr().err
    for where in (work / "no-folder" / "x.bin", work):  # a coded error, not a traceback
        assert cli.main([*base, "documents", "attachment", str(row["id"]), "--output", str(where)])
        assert "TARGET_UNWRITABLE" in capsys.readouterr().err


def test_a_linked_attachment_has_no_bytes_to_hand_out(gateway: Gateway) -> None:
    from edi_gateway.errors import LookupFailed
    from edi_gateway.store.order_data import attachment_content

    receive(gateway, order_example().read_bytes())
    link, embedded = detail(gateway, "34")["attachments"]
    with gateway.store.session() as session, pytest.raises(LookupFailed, match="it is a link"):
        attachment_content(session, link["id"])
    with gateway.store.session() as session:
        shown, content = attachment_content(session, embedded["id"])
    assert content == b"R0lGODlhcgGSALMAAAQCAEMmCZtuMFQxDS8b"
    assert shown["sha256"] == hashlib.sha256(content).hexdigest() == embedded["sha256"]


LINE_DELIVERY = (
    '<cac:Delivery><cac:DeliveryLocation><cbc:ID schemeID="0088">7300010000111</cbc:ID>'
    "<cbc:Name>Ward 3</cbc:Name><cac:Address><cbc:CityName>Malmö</cbc:CityName></cac:Address>"
    "</cac:DeliveryLocation><cac:RequestedDeliveryPeriod><cbc:EndDate>2026-12-20</cbc:EndDate>"
    "</cac:RequestedDeliveryPeriod></cac:Delivery>"
)


def test_a_line_names_its_own_delivery_place(gateway: Gateway) -> None:
    text = order_with_data().decode()
    first_price = text.index("<cac:Price>")  # UBL: LineItem/Delivery comes before Price
    payload = (text[:first_price] + LINE_DELIVERY + text[first_price:]).encode()
    order = read(payload)
    assert order.lines[0].delivery_place == "Ward 3 (0088:7300010000111), Malmö"
    assert order.lines[0].delivery_date == date(2026, 12, 20)
    assert [ln.delivery_place for ln in order.lines[1:]] == [None, None]
    receive(gateway, payload)
    lines = detail(gateway)["lines"]
    assert [ln["delivery_place"] for ln in lines] == [order.lines[0].delivery_place, None, None]


def test_below_0009_the_order_stays_and_its_data_tables_go(
    gateway: Gateway, database_url: str
) -> None:
    """Downgrading 0009 keeps orders and lines, drops the order data; back at the head, the
    schema is whole again and the order is still there (its data was not back-filled)."""
    from alembic import command
    from sqlalchemy import create_engine, inspect, text

    from edi_gateway.store.db import HEAD_REVISION, alembic_config, current_revision, open_store

    receive(gateway, order_with_data(attachments=attachment()))
    gateway.store.close()
    engine = create_engine(database_url)
    command.downgrade(alembic_config(engine), "0008")
    names = set(inspect(engine).get_table_names())
    assert not names & {"order_delivery", "order_contacts", "order_attachments"}
    assert "order_type" not in {c["name"] for c in inspect(engine).get_columns("orders")}
    with engine.connect() as conn:
        assert conn.execute(text("SELECT order_number FROM orders")).scalar() == "PO-1"
        assert conn.execute(text("SELECT count(*) FROM order_lines")).scalar() == 3
    engine.dispose()
    reopened = open_store(database_url)
    try:
        assert current_revision(reopened.engine) == HEAD_REVISION
        with reopened.session() as session:
            shown = order_detail(session, resolve_order(session, "PO-1"))
        assert shown["order_type"] is None and shown["attachments"] == []
    finally:
        reopened.close()
