"""The fonts of every PDF the gateway prints, embedded so the PDF reads the same everywhere.

DejaVu Sans (Debian ``fonts-dejavu-core``; Bitstream Vera licence) covers Latin with Latin
Extended-A/B, Greek and Cyrillic; Droid Sans Fallback (Debian ``fonts-droid-fallback``;
Apache-2.0) covers CJK. Both are TrueType-outline fonts, which reportlab embeds as subsets
(CFF-based OpenType such as Noto Sans CJK it cannot embed). The Makefile installs the two
packages; a machine without them gets a coded error (FONT_MISSING) naming the package, never
a PDF with blank text. See docs/adr/0028-packing-slips-sscc-and-embedded-fonts.md.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont

from edi_gateway.errors import ErrorCode, GatewayError

LATIN, LATIN_BOLD, CJK = "DejaVuSans", "DejaVuSans-Bold", "DroidSansFallback"

FONT_DIRS = (Path("/usr/share/fonts/truetype"), Path("/usr/share/fonts"))
"""Where Debian installs TrueType fonts; each font is looked up by its path below these."""

FONT_FILES: dict[str, tuple[str, str]] = {
    LATIN: ("dejavu/DejaVuSans.ttf", "fonts-dejavu-core"),
    LATIN_BOLD: ("dejavu/DejaVuSans-Bold.ttf", "fonts-dejavu-core"),
    CJK: ("droid/DroidSansFallbackFull.ttf", "fonts-droid-fallback"),
}
"""Font name -> (file below one of FONT_DIRS, the Debian package that installs it)."""


class FontMissing(GatewayError):
    """A font the PDFs need is not installed."""

    def __init__(self, name: str, package: str, looked: list[Path]) -> None:
        where = ", ".join(str(p) for p in looked)
        super().__init__(
            ErrorCode.FONT_MISSING,
            f"the font {name} is not installed (looked for {where}): install it with "
            f"`apt-get install {package}` (the Makefile's setup does); no PDF was made",
        )


def font_path(name: str) -> Path:
    """The file of font ``name`` (one of FONT_FILES); FontMissing when it is not installed."""
    relative, package = FONT_FILES[name]
    looked = [folder / relative for folder in FONT_DIRS]
    for candidate in looked:
        if candidate.is_file():
            return candidate
    raise FontMissing(name, package, looked)


@cache
def register_fonts() -> None:
    """Register the embedded fonts with reportlab (once per process).

    reportlab keeps registered fonts in its own process-wide registry; registering twice is
    harmless but costs a file read, hence the cache.
    """
    for name in FONT_FILES:
        if name not in pdfmetrics.getRegisteredFontNames():
            pdfmetrics.registerFont(TTFont(name, str(font_path(name))))


@cache
def _glyphs(name: str) -> frozenset[int]:
    register_fonts()
    font = pdfmetrics.getFont(name)
    return frozenset(font.face.charToGlyph)


def covers(name: str, char: str) -> bool:
    """Whether font ``name`` has a glyph for ``char``."""
    return ord(char) in _glyphs(name)
