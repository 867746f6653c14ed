"""The packing slip of a despatch advice and one label per box (reportlab).

Page 1 on: the delivery note (parties, dates, carrier, every despatch line with its box), then
what each box holds. Then one label per box: from, to, order, despatch advice, ``box n of N``,
carrier and tracking, and the box's SSCC as a GS1-128 barcode (FNC1, AI 00, 18 digits) with
its text below. Labels go on A4 pages or on 100 x 150 mm pages (``label_size``).

The boxes are the advice's own: the distinct ``handling_unit`` (SSCC) of its lines, in order;
lines without one (an advice not packed in boxes, or a partner's that boxes only some lines)
make one more box without barcode. A partner's handling unit ID that is not a valid SSCC is
printed as text, never as a barcode a scanner would take for an SSCC.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from reportlab.graphics.barcode import createBarcodeDrawing
from reportlab.lib import colors
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.platypus import KeepInFrame, NextPageTemplate, PageBreak, Spacer, Table

from edi_gateway.domain.documents import DespatchAdvice, Line, Order, Party
from edi_gateway.domain.sscc import gs1_128_data, human_readable, is_valid
from edi_gateway.outbound.i18n import format_quantity, translator, unit_name
from edi_gateway.outbound.render import party_id
from edi_gateway.outbound.render.pdf import _date, _head, _item, _notes, _table
from edi_gateway.outbound.render.pdf_text import (
    BIG,
    BOLD,
    LABEL_MARGIN,
    LABEL_TEMPLATE,
    LATIN,
    TITLE,
    WIDTH,
    Cell,
    Flowable,
    build,
    para,
)

Translate = Callable[[str], str]
LABEL_SIZES = {"a4": None, "label-100x150": (100 * mm, 150 * mm)}
BAR_WIDTH = 0.495 * mm
"""The narrowest bar: GS1's minimum X-dimension for a logistic label (0.495 mm)."""
BAR_HEIGHT = 25 * mm
LABEL_BIG = ParagraphStyle("label-big", parent=BIG, fontSize=16, leading=20)
LABEL_TITLE = ParagraphStyle("label-title", parent=TITLE, fontSize=13, leading=16)


def boxes_of(advice: DespatchAdvice) -> list[tuple[str | None, list[Line]]]:
    """The advice's boxes in order: (SSCC, its lines), then one box of the lines without."""
    boxes: dict[str | None, list[Line]] = {}
    for line in advice.lines:
        if line.handling_unit is not None:
            boxes.setdefault(line.handling_unit, []).append(line)
    loose = [line for line in advice.lines if line.handling_unit is None]
    return [*boxes.items(), *([(None, loose)] if loose or not boxes else [])]


def packing_slip_pdf(
    advice: DespatchAdvice,
    order: Order | None = None,
    *,
    language: str = "en",
    label_size: str = "a4",
) -> bytes:
    """The delivery note of ``advice``, what is in each box, then one label page per box.

    ``order``, when given, supplies the ordered quantities and item names the advice lacks.
    """
    if label_size not in LABEL_SIZES:
        raise ValueError(f"label size {label_size!r}: expected one of {', '.join(LABEL_SIZES)}")
    t = translator(language)
    boxes = boxes_of(advice)
    order_id = advice.order_refs[0] if advice.order_refs else order.document_id if order else ""
    deliver_to = advice.buyer or (order.buyer if order else None)
    title = f"{t('despatch.title')} {advice.document_id}"
    info = [
        (t("despatch.number"), advice.document_id),
        (t("order.number"), order_id),
        (t("despatch.date"), _date(advice.despatch_date or advice.issue_date)),
        (t("despatch.estimated_delivery"), _date(advice.estimated_delivery_date)),
        (t("despatch.carrier"), advice.carrier),
        (t("despatch.tracking"), advice.tracking_id),
        (t("despatch.shipment"), advice.shipment_id if advice.shipment_id != "NA" else None),
        (t("despatch.boxes"), str(len(boxes))),
    ]
    parties = [(t("party.seller"), advice.seller), (t("party.delivery"), deliver_to)]
    numbers = {sscc: n for n, (sscc, _) in enumerate(boxes, start=1)}
    story = [
        *_head(title, info, parties),
        *_notes(advice.notes, t),
        _despatch_lines(advice.lines, order, numbers, language, t),
    ]
    if any(sscc is not None for sscc, _ in boxes):
        story += _box_contents(boxes, order, language, t)
    page = LABEL_SIZES[label_size]
    width = page[0] - 2 * LABEL_MARGIN if page else WIDTH - 20 * mm
    if page:
        story.append(NextPageTemplate(LABEL_TEMPLATE))
    for number, (sscc, _) in enumerate(boxes, start=1):
        label = _label(advice, order_id, deliver_to, (number, len(boxes), sscc), width=width, t=t)
        if page:  # a label printer's page: the label shrinks to fit, never spills over
            label = KeepInFrame(width, page[1] - 2 * LABEL_MARGIN, [label], mode="shrink")
        story += [PageBreak(), label]
    return build(story, title, t("doc.page"), label_page=page)


def _despatch_lines(
    lines: Sequence[Line],
    order: Order | None,
    numbers: dict[str | None, int],
    language: str,
    t: Translate,
) -> Flowable:
    ordered = {ln.line_id: ln for ln in order.lines} if order else {}
    backorder = any(ln.backorder_quantity for ln in lines)
    boxed = len(numbers) > 1 or None not in numbers
    header = [t("column.line"), t("column.item"), t("column.order_line")]
    header += [t("column.ordered")] if order else []
    header += [t("column.delivered")] + ([t("column.backorder")] if backorder else [])
    header += [t("column.unit")] + ([t("column.box")] if boxed else [])
    rows: list[list[Cell]] = []
    for ln in lines:
        source = ordered.get(ln.order_line_ref or "")
        row: list[Cell] = [ln.line_id, _item(ln, source), ln.order_line_ref or ""]
        if order:
            row.append(_quantity(source, language))
        row.append(_quantity(ln, language))
        if backorder:
            bq = ln.backorder_quantity
            row.append(format_quantity(bq.value if bq else None, language))
        row.append(unit_name(ln.quantity.unit if ln.quantity else None, language))
        if boxed:
            row.append(str(numbers[ln.handling_unit]))
        rows.append(row)
    return _table(header, rows)


def _box_contents(
    boxes: list[tuple[str | None, list[Line]]], order: Order | None, language: str, t: Translate
) -> list[Flowable]:
    ordered = {ln.line_id: ln for ln in order.lines} if order else {}
    header = [t("column.order_line"), t("column.item"), t("column.quantity"), t("column.unit")]
    out: list[Flowable] = []
    for number, (sscc, lines) in enumerate(boxes, start=1):
        heading = t("label.contents").format(box=number, boxes=len(boxes))
        heading += f" · SSCC {sscc}" if sscc is not None else ""
        out += [Spacer(1, 5 * mm), para(heading, BOLD), Spacer(1, 1 * mm)]
        rows: list[list[Cell]] = [
            [
                ln.order_line_ref or "",
                _item(ln, ordered.get(ln.order_line_ref or "")),
                _quantity(ln, language),
                unit_name(ln.quantity.unit if ln.quantity else None, language),
            ]
            for ln in lines
        ]
        out.append(_table(header, rows))
    return out


def _quantity(line: Line | None, language: str) -> str:
    return format_quantity(line.quantity.value if line and line.quantity else None, language)


def _label(
    advice: DespatchAdvice,
    order_id: str,
    deliver_to: Party | None,
    box: tuple[int, int, str | None],
    *,
    width: float,
    t: Translate,
) -> Flowable:
    """The label of box ``box`` = (number, of how many, SSCC or None)."""
    sscc = box[2]
    small = width < 120 * mm
    big, title = (LABEL_BIG, LABEL_TITLE) if small else (BIG, TITLE)
    seller = advice.seller
    name = deliver_to.name if deliver_to else None
    where = " · ".join(x for x in (party_id(deliver_to), deliver_to and deliver_to.country) if x)
    rows: list[list[Flowable]] = [
        [para(t("label.title"), title)],
        [para(f"{t('label.from')}: {(seller.name if seller else None) or party_id(seller)}")],
        [para(t("party.delivery"), BOLD)],
        [para(name or party_id(deliver_to), big)],
        [para(where)],
        [para(f"{t('order.number')}: {order_id}", BOLD)],
        [para(t("label.box").format(box=box[0], boxes=box[1]), big)],
        [para(f"{t('despatch.carrier')}: {advice.carrier or ''}")],
        [para(f"{t('despatch.tracking')}: {advice.tracking_id or ''}")],
        [para(f"{t('despatch.number')}: {advice.document_id}")],
    ]
    if sscc is not None and is_valid(sscc):
        rows += [[para(t("label.sscc"), BOLD)], [_barcode(sscc)], [para(human_readable(sscc), big)]]
    elif sscc is not None:  # a partner's unit ID that is no SSCC: its text, no barcode
        rows.append([para(f"{t('label.sscc')}? {sscc}", BOLD)])
    table = Table(rows, colWidths=[width])
    table.setStyle(
        [
            ("FONT", (0, 0), (-1, -1), LATIN, 9),
            ("BOX", (0, 0), (-1, -1), 1.5, colors.black),
            ("TOPPADDING", (0, 0), (-1, -1), 3),
        ]
    )
    return table


def _barcode(sscc: str) -> Flowable:
    """The GS1-128 barcode of ``sscc``: Code 128 with FNC1 first, AI 00, the 18 digits."""
    drawing = createBarcodeDrawing(
        "Code128",
        value=gs1_128_data(sscc),
        barWidth=BAR_WIDTH,
        barHeight=BAR_HEIGHT,
        humanReadable=False,
        quiet=1,
        lquiet=10 * BAR_WIDTH,
        rquiet=10 * BAR_WIDTH,
    )
    drawing.initialFontName = LATIN  # else it names Helvetica (never embedded) on the page
    return drawing
