"""The PDF toolkit of the renderers: fonts per script, paragraph markup, styles, page footer.

Every font is embedded (a subset of the glyphs used), so a PDF reads the same on a machine
without any font installed (:mod:`.fonts`, ADR 0028). Text is set in DejaVu Sans (Latin with
Latin Extended, Greek, Cyrillic: ``Łódź Przędzalnia Dvořák Győr Şişli``); every run of
characters DejaVu Sans has no glyph for (Chinese, Japanese, Korean, fullwidth punctuation) in
Droid Sans Fallback. A mixed name such as ``一次性医用口罩 (mask), 50只/盒`` switches font per
run, and paragraphs holding CJK wrap between CJK characters.
"""

from __future__ import annotations

import io
from functools import partial
from typing import Any
from xml.sax.saxutils import escape

from reportlab.lib import colors
from reportlab.lib.enums import TA_RIGHT
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfgen.canvas import Canvas
from reportlab.platypus import BaseDocTemplate, Frame, PageTemplate, Paragraph

from edi_gateway.outbound.render.fonts import CJK, LATIN, LATIN_BOLD, covers, register_fonts

Flowable = Any  # reportlab ships no type hints
Cell = str | Flowable

__all__ = ["CJK", "LATIN", "LATIN_BOLD", "build", "cell", "markup", "para", "text_width"]

MARGIN = 18 * mm
FRAME_PADDING = 6  # reportlab's default Frame padding, on each side
WIDTH = A4[0] - 2 * MARGIN - 2 * FRAME_PADDING
"""The usable width of the page's frame."""
GREY = colors.HexColor("#555555")
RULE = colors.HexColor("#999999")
HEAD_FILL = colors.HexColor("#DDE4EE")
BODY = ParagraphStyle("body", fontName=LATIN, fontSize=9, leading=11)
SMALL = ParagraphStyle("small", parent=BODY, fontSize=7.5, leading=9, textColor=GREY)
BOLD = ParagraphStyle("bold", parent=BODY, fontName=LATIN_BOLD)
TITLE = ParagraphStyle("title", parent=BODY, fontName=LATIN_BOLD, fontSize=16, leading=20)
BIG = ParagraphStyle("big", parent=BODY, fontName=LATIN_BOLD, fontSize=22, leading=28)
PAGE_NUMBER = ParagraphStyle("page", parent=SMALL, alignment=TA_RIGHT)


def needs_cjk(char: str) -> bool:
    """Whether the Latin font has no glyph for ``char``, so the CJK font prints it."""
    return not covers(LATIN, char)


def markup(text: str) -> str:
    """``text`` as reportlab paragraph markup, each non-Windows-1252 run in the CJK font."""
    out: list[str] = []
    run: list[str] = []
    cjk = False
    for char in text:
        if needs_cjk(char) != cjk and run:
            out.append(_run("".join(run), cjk))
            run = []
        cjk = needs_cjk(char)
        run.append(char)
    if run:
        out.append(_run("".join(run), cjk))
    return "".join(out)


def _run(text: str, cjk: bool) -> str:
    return f'<font face="{CJK}">{escape(text)}</font>' if cjk else escape(text)


def para(text: str | None, style: ParagraphStyle = BODY, *, small: str = "") -> Flowable:
    """A paragraph of ``text`` (mixed fonts, CJK-aware wrapping), ``small`` print below it."""
    text = text or ""
    body = markup(text)
    if small:
        body += f'<br/><font size="7" color="#555555">{markup(small)}</font>'
    if any(needs_cjk(c) for c in text + small):
        style = ParagraphStyle(f"{style.name}-cjk", parent=style, wordWrap="CJK")
    return Paragraph(body, style)


def cell(value: Cell | None) -> Cell:
    """Plain text stays a string (fast, table font); other scripts become a paragraph."""
    if value is None:
        return ""
    if not isinstance(value, str):
        return value
    return para(value) if any(needs_cjk(c) for c in value) else value


def text_width(text: str, *, bold: bool = False, size: float = 9) -> float:
    """The printed width of ``text`` in points, each script run in its own font."""
    latin = LATIN_BOLD if bold else LATIN
    width = 0.0
    for char in text:
        width += pdfmetrics.stringWidth(char, CJK if needs_cjk(char) else latin, size)
    return width


LABEL_TEMPLATE = "label"
"""The page template of a label page (``NextPageTemplate(LABEL_TEMPLATE)`` in a story)."""
LABEL_MARGIN = 4 * mm


def build(
    story: list[Flowable],
    title: str,
    page_text: str,
    *,
    label_page: tuple[float, float] | None = None,
) -> bytes:
    """The PDF of ``story``: A4, margins, ``title`` and "page n of N" (``page_text``) below.

    ``label_page`` (width, height) adds the page template ``label``: pages of that size with a
    4 mm margin and no footer, for box labels.
    """
    register_fonts()
    out = io.BytesIO()
    doc = BaseDocTemplate(
        out,
        pagesize=A4,
        leftMargin=MARGIN,
        rightMargin=MARGIN,
        topMargin=MARGIN,
        bottomMargin=MARGIN + 6 * mm,
        title=title,
        invariant=1,
        initialFontName=LATIN,  # else reportlab names Helvetica (never embedded) on every page
    )
    body = Frame(doc.leftMargin, doc.bottomMargin, doc.width, doc.height, id="body")
    templates = [PageTemplate(id="page", frames=[body], pagesize=A4)]
    if label_page is not None:
        w, h = label_page
        edge = LABEL_MARGIN
        frame = Frame(edge, edge, w - 2 * edge, h - 2 * edge, id="label", showBoundary=0)
        templates.append(PageTemplate(id=LABEL_TEMPLATE, frames=[frame], pagesize=label_page))
    doc.addPageTemplates(templates)
    doc.build(
        story,
        canvasmaker=partial(_NumberedCanvas, footer=title, page_text=page_text),
    )
    return out.getvalue()


class _NumberedCanvas(Canvas):  # type: ignore[misc]  # reportlab is untyped
    """Holds pages back until the end so each footer can say "page n of N"."""

    def __init__(self, *args: Any, footer: str, page_text: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._footer, self._page_text = footer, page_text
        self._pages: list[dict[str, Any]] = []

    def showPage(self) -> None:  # reportlab's name
        self._pages.append(dict(self.__dict__))
        self._startPage()

    def save(self) -> None:
        total = len(self._pages)
        for number, state in enumerate(self._pages, start=1):
            self.__dict__.update(state)
            self._draw_footer(number, total)
            super().showPage()
        super().save()

    def _draw_footer(self, number: int, total: int) -> None:
        if tuple(self._pagesize) != tuple(A4):
            return  # a label page: nothing but the label
        self.setStrokeColor(RULE)
        self.setLineWidth(0.5)
        left_x = MARGIN + FRAME_PADDING
        self.line(left_x, MARGIN, left_x + WIDTH, MARGIN)
        left = para(self._footer, SMALL)
        left.wrapOn(self, WIDTH * 0.7, 10 * mm)
        left.drawOn(self, left_x, MARGIN - 4 * mm)
        page = para(self._page_text.format(page=number, pages=total), PAGE_NUMBER)
        page.wrapOn(self, WIDTH * 0.3, 10 * mm)
        page.drawOn(self, left_x + WIDTH * 0.7, MARGIN - 4 * mm)
