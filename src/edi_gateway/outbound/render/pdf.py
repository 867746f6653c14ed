"""Printable PDFs (reportlab): an order, an invoice (the packing slip: :mod:`.labels`).

A4 portrait, 18 mm margins; a title, the parties, the dates, a line table whose heading row
repeats on every page, totals, and "page n of N" with the document id in every footer. Labels
are in the partner's language (:mod:`edi_gateway.outbound.i18n`).

Fonts are chosen per script run and embedded (see :mod:`.pdf_text`, :mod:`.fonts`).

The output is reproducible: reportlab's ``invariant`` mode fixes the dates and the file id.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from decimal import Decimal

from reportlab.lib import colors
from reportlab.lib.units import mm
from reportlab.platypus import LongTable, Spacer, Table

from edi_gateway.domain.documents import DocumentKind, Invoice, Line, Order, Party
from edi_gateway.outbound.i18n import (
    allowance_charge_label,
    format_amount,
    format_price,
    format_quantity,
    translator,
    unit_name,
)
from edi_gateway.outbound.render import (
    attachments_text,
    contact_text,
    delivery_address,
    delivery_period,
    delivery_place,
    order_type_label,
    vat_breakdown,
    vat_of,
)
from edi_gateway.outbound.render.pdf_text import (
    BOLD,
    HEAD_FILL,
    LATIN,
    LATIN_BOLD,
    RULE,
    SMALL,
    TITLE,
    WIDTH,
    Cell,
    Flowable,
    build,
    cell,
    para,
    text_width,
)

Translate = Callable[[str], str]
_MAX_COLUMN = 40 * mm
_FLUSH = [
    ("FONT", (0, 0), (-1, -1), LATIN, 9),  # a cell's default is Helvetica, never embedded
    ("VALIGN", (0, 0), (-1, -1), "TOP"),
    ("LEFTPADDING", (0, 0), (0, -1), 0),
]
_PADDING = 13  # reportlab's default cell padding (6 pt a side) and a point to spare


def order_pdf(order: Order, *, language: str = "en", cancelled: str | None = None) -> bytes:
    """The order as forwarded to a supplier: parties, dates, lines, totals.

    ``cancelled`` (the cancellation's ID and reason) marks it CANCELLED in the title and says
    why above the notes: what a supplier gets when the buyer cancels the order.
    """
    t = translator(language)
    title = f"{t('order.title')} {order.document_id}"
    if cancelled is not None:
        title = f"{t('order.cancelled')}: {title}"
    info = [
        (t("order.number"), order.document_id),
        (t("order.issue_date"), _date(order.issue_date)),
        (t("doc.currency"), order.currency),
        *_order_data(order, t),
    ]
    totals = [
        (t("order.lines_total"), _sum(ln.line_amount for ln in order.lines)),
        (t("order.total"), order.total_amount),
    ]
    story = [
        *_head(title, info, [(t("party.buyer"), order.buyer), (t("party.seller"), order.seller)]),
        *_notes([cancelled, *order.notes] if cancelled is not None else order.notes, t),
        _order_lines(order.lines, language, t),
        Spacer(1, 4 * mm),
        _totals(totals, order.currency, language),
    ]
    return build(story, title, t("doc.page"))


def _order_data(order: Order, t: Translate) -> list[tuple[str, str | None]]:
    """Type, buyer reference, where and when to deliver, contacts, attachments (docs/adr/0029);
    :func:`_head` leaves out the empty ones."""
    delivery = order.delivery
    return [
        (t("order.type"), order_type_label(order, t)),
        (t("order.buyer_reference"), order.buyer_reference),
        (t("party.delivery"), delivery_place(order)),
        (t("delivery.address"), delivery_address(order)),
        (t("delivery.period"), delivery_period(order)),
        (t("contact.buyer"), contact_text(order.buyer_contact)),
        (t("contact.seller"), contact_text(order.seller_contact)),
        (t("contact.delivery"), contact_text(delivery.contact if delivery else None)),
        (t("order.attachments"), attachments_text(order)),
    ]


def invoice_pdf(invoice: Invoice, *, language: str = "en") -> bytes:
    """The invoice (or credit/debit note): parties, references, lines, VAT breakdown, totals
    with the document-level charges and allowances (freight, discounts) by name.

    The VAT breakdown is computed per (category, rate) from the lines when they carry VAT;
    the totals shown are the invoice's own (net, VAT, payable).
    """
    t = translator(language)
    from edi_gateway.domain.documents import self_billed

    title = f"{t(_invoice_title_key(invoice))} {invoice.document_id}"
    if self_billed(invoice.customization_id):  # the mention VAT Directive art. 226(10a) asks
        title = f"{title} ({t('invoice.self_billing')})"
    info = [
        (t("invoice.number"), invoice.document_id),
        (t("invoice.issue_date"), _date(invoice.issue_date)),
        (t("invoice.due_date"), _date(invoice.due_date)),
        (t("doc.currency"), invoice.currency),
        (t("invoice.order_ref"), ", ".join(invoice.order_refs)),
        (t("invoice.despatch_ref"), ", ".join(invoice.despatch_refs)),
        (t("invoice.billing_ref"), ", ".join(invoice.billing_refs)),
    ]
    parties = [(t("party.seller"), invoice.seller), (t("party.buyer"), invoice.buyer)]
    breakdown = vat_breakdown(invoice.lines)
    totals = [
        (t("order.lines_total"), _sum(ln.line_amount for ln in invoice.lines)),
        *(  # document-level charges (freight ...) and allowances, named in the language
            (allowance_charge_label(a.charge, a.reason_code, a.reason, language), a.signed)
            for a in invoice.allowances_charges
        ),
        (t("invoice.net"), invoice.tax_exclusive_amount),
        (t("invoice.vat"), invoice.tax_amount),
        (t("invoice.payable"), invoice.payable_amount),
    ]
    story = [
        *_head(title, info, parties),
        *_notes(invoice.notes, t),
        _invoice_lines(invoice.lines, bool(breakdown), language, t),
        Spacer(1, 4 * mm),
    ]
    if breakdown:
        story += [*_vat_table(breakdown, language, t), Spacer(1, 4 * mm)]
    story.append(_totals(totals, invoice.currency, language))
    return build(story, title, t("doc.page"))


def _date(value: object) -> str:
    return value.isoformat() if hasattr(value, "isoformat") else ""


def _sum(values: Iterable[Decimal | None]) -> Decimal | None:
    amounts = list(values)
    if not amounts or any(a is None for a in amounts):
        return None
    return sum((a for a in amounts if a is not None), Decimal(0))


def _head(
    title: str, info: Sequence[tuple[str, str | None]], parties: Sequence[tuple[str, Party | None]]
) -> list[Flowable]:
    shown = [(label, value) for label, value in info if value]
    label_width = min(70 * mm, max(text_width(label, bold=True) for label, _ in shown) + _PADDING)
    rows = [[para(label, BOLD), para(value)] for label, value in shown]
    facts = Table(rows, colWidths=[label_width, WIDTH - label_width], hAlign="LEFT")
    facts.setStyle([*_FLUSH, ("BOTTOMPADDING", (0, 0), (-1, -1), 1)])
    blocks = [[_party_block(label, party) for label, party in parties]]
    boxes = Table(blocks, colWidths=[WIDTH / len(parties)] * len(parties), hAlign="LEFT")
    boxes.setStyle(_FLUSH)
    return [
        para(title, TITLE),
        Spacer(1, 4 * mm),
        facts,
        Spacer(1, 4 * mm),
        boxes,
        Spacer(1, 5 * mm),
    ]


def _party_block(label: str, party: Party | None) -> list[Flowable]:
    out = [para(label, BOLD)]
    if party is None:
        return out
    out.append(para(party.name or party.key()))
    details = [party.key() if party.name else None, party.vat_id, party.country]
    out += [para(text, SMALL) for text in details if text]
    return out


def _notes(notes: Sequence[str], t: Translate) -> list[Flowable]:
    if not notes:
        return []
    return [para(t("doc.notes"), BOLD), *(para(n) for n in notes), Spacer(1, 4 * mm)]


def _item(line: Line, fallback: Line | None = None, *, place: str = "") -> Flowable:
    """The item's name, its codes below; ``place`` labels a line's own delivery place."""
    name = line.item_name or (fallback.item_name if fallback else None) or ""
    seller_item = line.seller_item_id or (fallback.seller_item_id if fallback else None)
    codes = " · ".join(c for c in (seller_item, line.standard_item_id) if c)
    if place and line.delivery_place:
        codes = " · ".join(c for c in (codes, f"{place}: {line.delivery_place}") if c)
    return para(name, small=codes)


def _table(header: Sequence[str], rows: list[list[Cell]], *, flex: int = 1) -> Flowable:
    """A line table: heading repeated on each page, columns after the item right-aligned.

    Every column is as wide as its longest text (at least the longest heading word); column
    ``flex`` (the item) takes the rest of the line.
    """
    widths = [_column_width(h, [row[i] for row in rows]) for i, h in enumerate(header)]
    widths[flex] = max(40 * mm, WIDTH - sum(w for i, w in enumerate(widths) if i != flex))
    table = LongTable(
        [[para(h, BOLD) for h in header], *([cell(v) for v in row] for row in rows)],
        colWidths=widths,
        repeatRows=1,
    )
    table.setStyle(
        [
            ("FONT", (0, 0), (-1, -1), LATIN, 9),
            ("VALIGN", (0, 0), (-1, -1), "TOP"),
            ("ALIGN", (flex + 1, 1), (-1, -1), "RIGHT"),
            ("BACKGROUND", (0, 0), (-1, 0), HEAD_FILL),
            ("LINEBELOW", (0, 0), (-1, -1), 0.25, RULE),
        ]
    )
    return table


def _column_width(heading: str, values: Sequence[Cell]) -> float:
    words = heading.split() or [""]
    widest = max(text_width(w, bold=True) for w in words)
    texts = [text_width(v) for v in values if isinstance(v, str)]
    return float(min(_MAX_COLUMN, max([widest, *texts]) + _PADDING))


def _order_lines(lines: Sequence[Line], language: str, t: Translate) -> Flowable:
    dated = any(ln.delivery_date for ln in lines)
    header = [
        t("column.line"),
        t("column.item"),
        t("column.quantity"),
        t("column.unit"),
        t("column.price"),
        t("column.amount"),
    ] + ([t("column.delivery_date")] if dated else [])
    rows = [
        [
            ln.line_id,
            _item(ln, place=t("party.delivery")),
            format_quantity(ln.quantity.value if ln.quantity else None, language),
            (unit_name(ln.quantity.unit if ln.quantity else None, language)),
            format_price(ln.price, language),
            format_amount(ln.line_amount, language),
        ]
        + ([_date(ln.delivery_date)] if dated else [])
        for ln in lines
    ]
    return _table(header, rows)


def _invoice_lines(lines: Sequence[Line], with_vat: bool, language: str, t: Translate) -> Flowable:
    header = [t("column.line"), t("column.item"), t("column.quantity"), t("column.unit")]
    header += [t("column.price")] + ([t("column.vat")] if with_vat else []) + [t("column.amount")]
    rows: list[list[Cell]] = []
    for ln in lines:
        vat = vat_of(ln)
        row: list[Cell] = [
            ln.line_id,
            _item(ln),
            format_quantity(ln.quantity.value if ln.quantity else None, language),
            (unit_name(ln.quantity.unit if ln.quantity else None, language)),
            format_price(ln.price, language),
        ]
        if with_vat:
            row.append(f"{vat[0]} {_percent(vat[1], language)}" if vat else "")
        rows.append([*row, format_amount(ln.line_amount, language)])
    return _table(header, rows)


def _vat_table(
    breakdown: Sequence[tuple[str, Decimal, Decimal, Decimal]], language: str, t: Translate
) -> list[Flowable]:
    header = [t("column.vat_category"), t("column.vat_rate"), t("column.taxable")]
    header.append(t("column.vat_amount"))
    rows: list[list[Cell]] = [
        [cat, _percent(rate, language), format_amount(base, language), format_amount(vat, language)]
        for cat, rate, base, vat in breakdown
    ]
    return [para(t("invoice.vat_breakdown"), BOLD), Spacer(1, 1 * mm), _table(header, rows, flex=0)]


def _percent(rate: Decimal, language: str) -> str:
    return f"{format_quantity(rate, language)} %"


def _totals(
    rows: Sequence[tuple[str, Decimal | None]], currency: str | None, language: str
) -> Flowable:
    shown = [
        [para(label, BOLD), f"{format_amount(value, language)} {currency or ''}".strip()]
        for label, value in rows
        if value is not None
    ]
    table = Table(shown or [[""]], colWidths=[55 * mm, 40 * mm], hAlign="RIGHT")
    table.setStyle(
        [
            ("FONT", (0, 0), (0, -1), LATIN, 9),
            ("FONT", (1, 0), (1, -1), LATIN_BOLD, 10),
            ("ALIGN", (1, 0), (1, -1), "RIGHT"),
            ("LINEABOVE", (0, -1), (-1, -1), 0.75, colors.black),
        ]
    )
    return table


def _invoice_title_key(invoice: Invoice) -> str:
    if invoice.kind is DocumentKind.CREDIT_NOTE or invoice.type_code in {"381", "396"}:
        return "invoice.credit_title"
    if invoice.kind is DocumentKind.DEBIT_NOTE or invoice.type_code in {"383", "527"}:
        return "invoice.debit_title"
    return "invoice.title"
