"""Packing slips, box labels and SSCCs: ``despatch --boxes/--box`` through the real CLI, the
labels' GS1-128 barcodes read back by zbarimg from the rendered pages, the SSCCs of the
despatch advice (which passes ubl-check), serials never handed out twice (two gateways on one
store, SQLite and PostgreSQL), and the refusals a careless operator meets."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from lxml import etree
from pypdf import PdfReader

from edi_gateway.cli import main
from edi_gateway.domain import sscc as gs1
from edi_gateway.domain.documents import DespatchAdvice
from edi_gateway.outbound.packing import Packing, _spread
from edi_gateway.outbound.render.labels import packing_slip_pdf
from edi_gateway.store.db import Store, open_store
from edi_gateway.store.sscc import allocate_serials
from edi_gateway.ubl.read import interpret
from tests import factory as f
from tests.conftest import shared_dir
from tests.servers import debian_command

PREFIX = "7350053"
OFFICIAL_SSCCS = ["173111000000000013", "173111000000000020", "173111000000000037"]
"""From the official Peppol T16 example DespatchAdvice-BIS3_UseCase4.xml."""


def gs1_check_digit(body: str) -> int:
    """GS1 mod 10 written out: weight 3 on the rightmost digit of the body, then 1, 3 ..."""
    weights = [3, 1] * 9
    total = sum(int(d) * w for d, w in zip(reversed(body), weights, strict=False))
    return (10 - total % 10) % 10


# -- SSCC arithmetic ----------------------------------------------------------------------


def test_sscc_check_digits_match_gs1_and_the_official_examples() -> None:
    for official in OFFICIAL_SSCCS:
        assert gs1.is_valid(official)
        assert gs1.check_digit(official[:-1]) == int(official[-1]) == gs1_check_digit(official[:-1])
    made = gs1.sscc(3, PREFIX, 42)
    assert made == f"3{PREFIX}00000004" + "2" + str(gs1_check_digit(f"3{PREFIX}000000042"))
    assert len(made) == 18 and gs1.is_valid(made)
    assert not gs1.is_valid(made[:-1] + str((int(made[-1]) + 1) % 10))
    assert not gs1.is_valid("17311100000000001")  # 17 digits
    assert not gs1.is_valid("1731110000000000１3"[:18])  # a fullwidth digit is no digit
    assert gs1.gs1_128_data(made) == f"\xf100{made}"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((10, "123", 1), "4 to 12 digits"),
        ((0, "12345678901234", 1), "4 to 12 digits"),
        ((0, "7350053", 10**9), "does not fit"),
        ((0, "7350053", -1), "does not fit"),
    ],
)
def test_an_sscc_that_cannot_be_made_is_refused(args: tuple[int, str, int], message: str) -> None:
    with pytest.raises(ValueError, match=message if args[0] < 10 else "extension digit"):
        gs1.sscc(*args)


def test_a_partners_advice_with_official_ssccs_prints_their_barcodes(tmp_path: Path) -> None:
    folder = shared_dir() / "corpus" / "peppol-validation-artefacts" / "2026.5" / "examples"
    xml = (folder / "Despatch Advice use cases" / "DespatchAdvice-BIS3_UseCase4.xml").read_bytes()
    advice = interpret(etree.fromstring(xml))
    assert isinstance(advice, DespatchAdvice)
    units = [ln.handling_unit for ln in advice.lines]
    assert units == [*OFFICIAL_SSCCS, "173111000000000044"]
    advice.lines[-1].handling_unit = "PALLET-7"  # what a careless partner might send
    slip = tmp_path / "slip.pdf"
    slip.write_bytes(packing_slip_pdf(advice, label_size="label-100x150"))
    pages = len(PdfReader(slip).pages)
    assert label_barcodes(slip, range(pages - 3, pages)) == [f"00{s}" for s in OFFICIAL_SSCCS]
    with pytest.raises(AssertionError, match="0 barcodes"):
        label_barcodes(slip, range(pages, pages + 1))  # no barcode for what is no SSCC
    assert "SSCC? PALLET-7" in PdfReader(slip).pages[-1].extract_text()


# -- spreading lines over boxes -----------------------------------------------------------


class _Line:
    def __init__(self, line_id: str, unit: str = "C62") -> None:
        self.line_id, self.unit = line_id, unit


def test_boxes_spread_whole_units_evenly_and_refuse_what_does_not_split() -> None:
    a, b, c = _Line("1"), _Line("2"), _Line("3")
    boxes = _spread([(a, Decimal(10)), (b, Decimal(1)), (c, Decimal(1))], 3)  # type: ignore[list-item]
    assert [[(ln.line_id, int(q)) for ln, q in box] for box in boxes] == [
        [("1", 4)],
        [("1", 3), ("2", 1)],
        [("1", 3), ("3", 1)],
    ]
    assert sum(q for box in boxes for _, q in box) == 12
    with pytest.raises(Exception, match="whole units"):
        _spread([(_Line("1", "KGM"), Decimal("2.5"))], 2)  # type: ignore[list-item]
    with pytest.raises(Exception, match=r"box\(es\) 3 would be empty"):
        _spread([(a, Decimal(2))], 3)  # type: ignore[list-item]
    assert Packing(
        contents=((("1", Decimal(2)),), (("1", Decimal(3)), ("2", Decimal(1))))
    ).lines() == (
        ("1", Decimal(5)),
        ("2", Decimal(1)),
    )


# -- serials from the store ---------------------------------------------------------------


def test_two_gateways_on_one_store_never_get_the_same_serial(database_url: str) -> None:
    gateways = [open_store(database_url), open_store(database_url, migrate=False)]
    got: list[list[int]] = [[], []]

    def allocate(store: Store, into: list[int]) -> None:
        for _ in range(40):
            with store.session() as session:
                into.extend(allocate_serials(session, 0, PREFIX, 3))

    try:
        threads = [
            threading.Thread(target=allocate, args=(g, out)) for g, out in zip(gateways, got)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        every = got[0] + got[1]
        assert len(every) == 240 and len(set(every)) == 240
        assert sorted(every) == list(range(1, 241))
        with gateways[0].session() as session:  # a rolled-back allocation gives its serials back
            assert list(allocate_serials(session, 0, PREFIX, 1)) == [241]
            session.rollback()
        with gateways[0].session() as session:
            assert list(allocate_serials(session, 0, PREFIX, 1)) == [241]
            assert list(allocate_serials(session, 1, PREFIX, 1)) == [1]  # its own range
    finally:
        for store in gateways:
            store.close()


# -- the command line, end to end ---------------------------------------------------------


def write_config(tmp_path: Path, *, seller: str = "", packing: str = "") -> Path:
    (tmp_path / "out").mkdir(exist_ok=True)
    config = tmp_path / "gateway.yaml"
    config.write_text(
        f"store:\n  url: sqlite:///{tmp_path / 'gw.db'}\n"
        "partners:\n"
        "  - id: buyer\n    name: Buyer AB\n    role: buyer\n    outbound: to-buyer\n"
        f"    endpoint: {{scheme: '0088', value: '{f.BUYER_GLN}'}}\n"
        "  - id: seller\n    name: Seller BV\n    role: supplier\n"
        f"    endpoint: {{scheme: '0088', value: '{f.SELLER_GLN}'}}\n{seller}"
        "connectors:\n"
        f"  - {{name: to-buyer, type: folder, direction: out, path: '{tmp_path / 'out'}'}}\n"
        f"{packing}"
    )
    return config


def run(config: Path, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, Any]:
    code = main(["--config", str(config), *args])
    out = capsys.readouterr().out
    return code, json.loads(out) if "--json" in args and out.strip() else out


def ordered(config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    order = tmp_path / "order.xml"
    items = [f.Item("1", "10", seller_item="S-1"), f.Item("2", "1", seller_item="S-2")]
    order.write_bytes(f.order("PO-1", [*items, f.Item("3", "1", seller_item="S-3")]))
    code, _ = run(config, capsys, "ingest", str(order))
    assert code == 0


def label_barcodes(pdf: Path, pages: range) -> list[str]:
    """What zbarimg reads on each page of ``pages`` (1-based), rendered at 200 dpi."""
    pdftoppm = debian_command("pdftoppm", "poppler-utils")
    zbarimg = debian_command("zbarimg", "zbar-tools")
    found = []
    for page in pages:
        stem = pdf.with_name(f"{pdf.stem}-{page}")
        subprocess.run(
            [
                pdftoppm,
                "-r",
                "200",
                "-f",
                str(page),
                "-l",
                str(page),
                "-singlefile",
                "-png",
                str(pdf),
                str(stem),
            ],
            check=True,
        )
        read = subprocess.run(
            [zbarimg, "--xml", "-q", f"{stem}.png"], check=False, capture_output=True
        )
        assert read.returncode in {0, 4}, read.stderr  # 4: zbarimg found no barcode
        xml = read.stdout
        symbols = etree.fromstring(xml).findall(".//{*}symbol")
        assert len(symbols) == 1, f"page {page}: {len(symbols)} barcodes"
        [symbol] = symbols
        assert symbol.get("type") == "CODE-128" and symbol.get("modifiers") == "GS1"  # FNC1 first
        found.append(symbol.findtext("{*}data") or "")
    return found


def advice_in(folder: Path, number: str) -> tuple[Path, DespatchAdvice]:
    path = folder / f"DespatchAdvice-PO-1-DA{number}.xml"
    advice = interpret(etree.fromstring(path.read_bytes()))
    assert isinstance(advice, DespatchAdvice)
    return path, advice


def test_despatch_in_three_boxes_prints_slip_and_labels_whose_barcodes_are_the_ssccs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    seller = f"    gs1_company_prefix: '{PREFIX}'\n"
    config = write_config(tmp_path, seller=seller)
    ordered(config, tmp_path, capsys)
    slip = tmp_path / "slip.pdf"
    args = ["despatch", "PO-1", "--line", "1:8", "--line", "2:1", "--line", "3:1"]
    code, shown = run(config, capsys, *args, "--boxes", "3", "--slip", str(slip), "--json")
    assert code == 0, shown
    ssccs = shown["sscc"]
    assert len(ssccs) == 3 and len(set(ssccs)) == 3
    for value in ssccs:
        assert value.startswith(f"0{PREFIX}") and len(value) == 18
        assert int(value[-1]) == gs1_check_digit(value[:-1])
    assert run(config, capsys, "outbox", "flush")[0] == 0
    path, advice = advice_in(tmp_path / "out", "1")
    boxes = [
        (ln.order_line_ref, ln.quantity.value if ln.quantity else None, ln.handling_unit)
        for ln in advice.lines
    ]
    assert boxes == [  # line 2's single unit goes to box 3, which line 1 left lightest
        ("1", 3, ssccs[0]),
        ("3", 1, ssccs[0]),
        ("1", 3, ssccs[1]),
        ("1", 2, ssccs[2]),
        ("2", 1, ssccs[2]),
    ]
    backorders = [ln.backorder_quantity for ln in advice.lines]
    assert backorders[0] is not None and backorders[0].value == 2  # line 1: 10 ordered, 8 sent
    assert backorders[1:] == [None] * 4
    xml = path.read_text()
    assert xml.count('schemeID="SSCC"') == 5
    assert "<cbc:TotalTransportHandlingUnitQuantity>3<" in xml
    pages = len(PdfReader(slip).pages)
    assert label_barcodes(slip, range(pages - 2, pages + 1)) == [f"00{s}" for s in ssccs]
    text = subprocess.run(
        [debian_command("pdftotext", "poppler-utils"), str(slip), "-"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    for n, value in enumerate(ssccs, start=1):
        assert f"Box {n} of 3" in text and f"(00) {value}" in text
        assert f"Contents of box {n} of 3 · SSCC {value}" in text
    ubl_check = shared_dir() / "tools" / "ubl-check"
    done = subprocess.run(
        [sys.executable, str(ubl_check), str(path)], check=False, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout + done.stderr

    # the rest, in two boxes given line by line: new SSCCs, never one of the first three
    code, second = run(config, capsys, "despatch", "PO-1", "--box", "1:1", "--box", "1:1", "--json")
    assert code == 0, second
    assert len(second["sscc"]) == 2 and not set(second["sscc"]) & set(ssccs)
    assert run(config, capsys, "outbox", "flush")[0] == 0
    _, advice2 = advice_in(tmp_path / "out", "2")
    assert [ln.handling_unit for ln in advice2.lines] == second["sscc"]
    code, shown = run(config, capsys, "orders", "show", "PO-1", "--json")
    assert {ln["line_id"]: ln["despatched"] for ln in shown["lines"]} == {
        "1": "10",
        "2": "1",
        "3": "1",
    }

    # documents show renders the same slip from the stored advice
    code, _ = run(
        config,
        capsys,
        "documents",
        "show",
        str(shown["documents"][-1]["id"]),
        "--format",
        "pdf",
        "--output",
        str(tmp_path / "again.pdf"),
    )
    assert code == 0
    again = tmp_path / "again.pdf"
    assert label_barcodes(
        again, range(len(PdfReader(again).pages) - 1, len(PdfReader(again).pages) + 1)
    ) == [f"00{s}" for s in second["sscc"]]


def test_labels_on_100x150_for_a_partner_that_asks(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    packing = f"packing:\n  gs1_company_prefix: '{PREFIX}'\n  sscc_extension_digit: 4\n"
    config = write_config(tmp_path, seller="    label_size: label-100x150\n", packing=packing)
    ordered(config, tmp_path, capsys)
    slip = tmp_path / "slip.pdf"
    code, shown = run(
        config, capsys, "despatch", "PO-1", "--boxes", "2", "--slip", str(slip), "--json"
    )
    assert code == 0, shown
    assert all(s.startswith(f"4{PREFIX}") for s in shown["sscc"])
    sizes = [
        (round(float(p.mediabox.width)), round(float(p.mediabox.height)))
        for p in PdfReader(slip).pages
    ]
    assert sizes[-2:] == [(283, 425)] * 2  # 100 x 150 mm
    assert all(size == (595, 842) for size in sizes[:-2])  # the slip itself on A4
    assert label_barcodes(slip, range(len(sizes) - 1, len(sizes) + 1)) == [
        f"00{s}" for s in shown["sscc"]
    ]


def test_boxes_without_a_company_prefix_are_refused_with_a_code(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path)
    ordered(config, tmp_path, capsys)
    code, shown = run(config, capsys, "despatch", "PO-1", "--boxes", "2", "--json")
    assert code == 1
    assert shown["error"]["code"] == "GS1_PREFIX_MISSING", shown
    assert "gs1_company_prefix" in shown["error"]["message"]
    code, shown = run(config, capsys, "orders", "show", "PO-1", "--json")
    assert [d["direction"] for d in shown["documents"]] == ["in"]  # the order, nothing issued
    assert not list((tmp_path / "out").iterdir())


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--boxes", "4"], r"box\(es\) 4 would be empty"),
        (["--boxes", "0"], "--boxes must be 1 to 999"),
        (["--line", "1:2", "--box", "1:2"], "--line or with --box, not both"),
        (["--box", "9:1"], "no order line 9"),
        (["--boxes", "3", "--box", "1:1"], "--boxes 3 but 1 --box given"),
        (["--slip", "x.pdf"], "--slip prints the boxes"),
    ],
)
def test_boxes_a_careless_operator_asks_for_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    config = write_config(tmp_path, packing=f"packing:\n  gs1_company_prefix: '{PREFIX}'\n")
    order = tmp_path / "order.xml"
    order.write_bytes(f.order("PO-1", [f.Item("1", "3", seller_item="S-1")]))
    assert run(config, capsys, "ingest", str(order))[0] == 0
    code, shown = run(config, capsys, "despatch", "PO-1", *args, "--json")
    assert code != 0
    assert re.search(message, shown["error"]["message"]), shown


@pytest.mark.parametrize("where", ["missing/slip.pdf", "."])
def test_a_slip_that_cannot_be_written_is_refused_before_anything_is_sent(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], where: str
) -> None:
    config = write_config(tmp_path, packing=f"packing:\n  gs1_company_prefix: '{PREFIX}'\n")
    ordered(config, tmp_path, capsys)
    slip = str(tmp_path / where)
    code, shown = run(config, capsys, "despatch", "PO-1", "--boxes", "2", "--slip", slip, "--json")
    assert code == 2 and shown["error"]["code"] == "USAGE", shown
    assert slip in shown["error"]["message"]
    code, shown = run(config, capsys, "orders", "show", "PO-1", "--json")
    assert [d["direction"] for d in shown["documents"]] == ["in"]  # nothing issued: no retry twice


def test_a_company_prefix_written_as_a_number_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path, packing="packing:\n  gs1_company_prefix: 0735005\n")
    code, shown = run(config, capsys, "config", "check", "--json")
    assert code != 0
    assert "in quotes" in json.dumps(shown)
