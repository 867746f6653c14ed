"""Every PDF embeds its fonts and keeps every script: read back with poppler (pdffonts,
pdftotext), as a person's PDF viewer on a machine without these fonts would show them."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from edi_gateway.domain.documents import DespatchAdvice, Invoice, Order
from edi_gateway.errors import ErrorCode
from edi_gateway.outbound.render import fonts
from edi_gateway.outbound.render.labels import packing_slip_pdf
from edi_gateway.outbound.render.pdf import invoice_pdf, order_pdf
from edi_gateway.ubl.parse import parse
from edi_gateway.ubl.read import interpret
from tests import factory
from tests.servers import debian_command

ROOT = Path(__file__).resolve().parents[2]
POLISH_ETC = "Łódź Przędzalnia Dvořák Győr Şişli"
GREEK = "Αθήνα Ιατρικά Είδη"
CYRILLIC = "Москва Медтехника Київ"
CHINESE = "一次性医用口罩"


def poppler(name: str) -> str:
    return debian_command(name, "poppler-utils")


def sample(name: str) -> object:
    return interpret(parse((ROOT / "samples" / name).read_bytes(), max_size=10_000_000))


def multiscript_order() -> Order:
    items = [
        factory.Item("1", "12", "89.50", f"{POLISH_ETC} {CHINESE} (mask)", seller_item="M-1"),
        factory.Item("2", "3", "4.10", GREEK, seller_item="G-2"),
        factory.Item("3", "5", "1.00", CYRILLIC, seller_item="C-3"),
    ]
    xml = factory.order("PL-2026-1", items, buyer_name=POLISH_ETC, seller_name=CYRILLIC)
    order = interpret(parse(xml, max_size=10_000_000))
    assert isinstance(order, Order)
    return order


def fonts_of(pdf: Path) -> list[list[str]]:
    out = subprocess.run([poppler("pdffonts"), str(pdf)], check=True, capture_output=True)
    rows = out.stdout.decode().splitlines()[2:]  # name type encoding emb sub uni object ID
    return [row.split() for row in rows]


def text_of(pdf: Path) -> str:
    out = subprocess.run(
        [poppler("pdftotext"), "-enc", "UTF-8", str(pdf), "-"], check=True, capture_output=True
    )
    return out.stdout.decode()


def rendered(tmp_path: Path, name: str, payload: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(payload)
    return path


def assert_all_embedded(pdf: Path) -> None:
    rows = fonts_of(pdf)
    assert rows, "the PDF uses no font at all"
    for row in rows:
        # name, type (may be two words: "CID TrueType"), encoding, emb, sub, uni, object, ID
        emb, sub = row[-5], row[-4]
        assert (emb, sub) == ("yes", "yes"), f"font not embedded as a subset: {row}"
    names = " ".join(row[0] for row in rows)
    assert "Helvetica" not in names and "STSong" not in names


def test_order_pdf_embeds_every_font_and_keeps_every_script(tmp_path: Path) -> None:
    order = multiscript_order()
    for language in ("en", "zh"):
        pdf = rendered(tmp_path, f"order-{language}.pdf", order_pdf(order, language=language))
        assert_all_embedded(pdf)
        text = text_of(pdf)
        for expected in (POLISH_ETC, GREEK, CYRILLIC, CHINESE):
            assert expected in text, (language, expected, text)
    assert "采购订单 PL-2026-1" in text_of(tmp_path / "order-zh.pdf")
    names = {row[0].split("+", 1)[1] for row in fonts_of(tmp_path / "order-zh.pdf")}
    assert names == {fonts.LATIN, fonts.LATIN_BOLD, fonts.CJK}


def test_invoice_and_packing_slip_pdfs_embed_their_fonts(tmp_path: Path) -> None:
    invoice = sample("invoice-nordisk-30817.xml")
    assert isinstance(invoice, Invoice)
    assert invoice.buyer is not None
    invoice.buyer.name = POLISH_ETC
    pdf = rendered(tmp_path, "invoice.pdf", invoice_pdf(invoice, language="zh"))
    assert_all_embedded(pdf)
    assert POLISH_ETC in text_of(pdf)
    advice = sample("despatchadvice-nordisk-880412.xml")
    assert isinstance(advice, DespatchAdvice)
    advice.lines[0].item_name = f"{GREEK} {CHINESE}"
    slip = rendered(tmp_path, "slip.pdf", packing_slip_pdf(advice, language="sv"))
    assert_all_embedded(slip)
    assert f"{GREEK} {CHINESE}" in text_of(slip)


def test_box_labels_with_barcodes_embed_their_fonts(tmp_path: Path) -> None:
    """A barcode drawing starts in reportlab's default font: no Helvetica may be named."""
    advice = sample("despatchadvice-nordisk-880412.xml")
    assert isinstance(advice, DespatchAdvice)
    for line in advice.lines:
        line.handling_unit = "173111000000000013"  # an official SSCC: its label has a barcode
    for size in ("a4", "label-100x150"):
        slip = rendered(tmp_path, f"{size}.pdf", packing_slip_pdf(advice, label_size=size))
        assert_all_embedded(slip)


def test_a_missing_font_is_a_coded_error_naming_the_package(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(fonts, "FONT_DIRS", (tmp_path,))
    with pytest.raises(fonts.FontMissing) as caught:
        fonts.font_path(fonts.CJK)
    assert caught.value.code is ErrorCode.FONT_MISSING
    assert "apt-get install fonts-droid-fallback" in str(caught.value)
    assert str(tmp_path / "droid" / "DroidSansFallbackFull.ttf") in str(caught.value)
