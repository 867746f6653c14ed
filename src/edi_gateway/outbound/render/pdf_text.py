"""The PDF toolkit of the renderers: fonts per script, paragraph markup, styles, page footer.

Text that Windows-1252 can encode (English, Dutch, Swedish: å ä ö ë ï é ×) is set in Helvetica;
every run of other characters (Chinese, fullwidth punctuation) in reportlab's built-in CID font
``STSong-Light`` (Adobe-GB1: PDF viewers supply the glyphs, nothing is downloaded or
embedded). A mixed name such as ``一次性医用口罩 (mask), 50只/盒`` switches font per run, and
paragraphs holding CJK wrap between CJK characters. Latin letters outside Windows-1252
(ł, ő, ș) are covered by neither font and print as blanks.
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
from reportlab.pdfbase.cidfonts import UnicodeCIDFont
from reportlab.pdfgen.canvas import Canvas
from reportlab.platypus import Paragraph, SimpleDocTemplate

Flowable = Any  # reportlab ships no type hints
Cell = str | Flowable

LATIN, LATIN_BOLD, CJK = "Helvetica", "Helvetica-Bold", "STSong-Light"
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
    """Whether ``char`` lies outside Windows-1252, so Helvetica cannot print it."""
    try:
        char.encode("cp1252")
    except UnicodeEncodeError:
        return True
    return False


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
        register_cjk()
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
        cjk = needs_cjk(char)
        if cjk:
            register_cjk()
        width += pdfmetrics.stringWidth(char, CJK if cjk else latin, size)
    return width


def register_cjk() -> None:
    """Register the built-in CID font with reportlab (once per process; idempotent)."""
    if CJK not in pdfmetrics.getRegisteredFontNames():
        pdfmetrics.registerFont(UnicodeCIDFont(CJK))


def build(story: list[Flowable], title: str, page_text: str) -> bytes:
    """The PDF of ``story``: A4, margins, ``title`` and "page n of N" (``page_text``) below."""
    register_cjk()
    out = io.BytesIO()
    doc = SimpleDocTemplate(
        out,
        pagesize=A4,
        leftMargin=MARGIN,
        rightMargin=MARGIN,
        topMargin=MARGIN,
        bottomMargin=MARGIN + 6 * mm,
        title=title,
        invariant=1,
    )
    doc.build(story, canvasmaker=partial(_NumberedCanvas, footer=title, page_text=page_text))
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
