"""Hardened XML parsing: bytes in, an lxml root element out, or a ``DocumentError`` with a code.

Order of checks (each one before any work of the next):

1. ``TOO_LARGE`` when ``len(payload) > max_size`` (nothing is looked at before this);
2. ``EMPTY`` for zero bytes or only whitespace (optionally after a byte-order mark);
3. ``BAD_ENCODING`` for an encoding name that Python does not know;
4. ``FORBIDDEN_DTD`` when the prolog holds a ``<!DOCTYPE``. The prolog is scanned with a linear
   regular expression over the raw bytes and, for encodings whose markup is not ASCII (UTF-16,
   UTF-32, UTF-7, EBCDIC...), over the decoded text as well, so no entity is ever declared to,
   let alone expanded by, libxml2;
5. the libxml2 parse proper, with entity resolution, DTD loading and network access switched
   off and libxml2's resource limits left on (no ``huge_tree``, see ADR 0002). Its errors map to
   ``BAD_ENCODING`` (bytes invalid in the encoding, encoding unsupported by libxml2),
   ``TOO_LARGE`` (a libxml2 resource limit: text node > 10 MB, depth > 256) or
   ``NOT_WELL_FORMED`` (everything else), with libxml2's line number;
6. a DTD found on the parsed tree anyway is refused (``FORBIDDEN_DTD``): defence in depth.

A fresh ``XMLParser`` is made per call (about a microsecond), so nothing is shared between threads.
"""

from __future__ import annotations

import codecs
import re
from types import MappingProxyType
from typing import Any, Final

from lxml import etree

from edi_gateway.errors import DocumentError, ErrorCode

_BOM_UTF8 = b"\xef\xbb\xbf"
_BLANK = re.compile(rb"(?:\xef\xbb\xbf)?[ \t\r\n]*+")
# Whitespace, processing instructions (the XML declaration is one) and comments, then DOCTYPE.
# Possessive quantifiers keep this linear on any input.
_PROLOG_DOCTYPE = re.compile(
    rb"(?:\xef\xbb\xbf)?"
    rb"(?:[ \t\r\n]++|<\?(?:[^?]++|\?(?!>))*+\?>|<!--(?:[^-]++|-(?!->))*+-->)*+"
    rb"(?i:<!DOCTYPE)"
)
_DECLARED_ENCODING = re.compile(
    rb"(?:\xef\xbb\xbf)?<\?xml[ \t\r\n]++version[ \t\r\n]*+=[ \t\r\n]*+"
    rb"(?:\"[^\"]{0,16}\"|'[^']{0,16}')[ \t\r\n]++encoding[ \t\r\n]*+=[ \t\r\n]*+"
    rb"(?:\"(?P<dq>[^\"]{0,64})\"|'(?P<sq>[^']{0,64})')"
)
# Byte patterns of XML 1.0 appendix F: (first bytes, Python codec to read the prolog with).
_SNIFF: tuple[tuple[bytes, str], ...] = (
    (b"\x00\x00\xfe\xff", "utf-32-be"),
    (b"\xff\xfe\x00\x00", "utf-32-le"),
    (b"\x00\x00\x00<", "utf-32-be"),
    (b"<\x00\x00\x00", "utf-32-le"),
    (b"\xfe\xff", "utf-16-be"),
    (b"\xff\xfe", "utf-16-le"),
    (b"\x00<\x00?", "utf-16-be"),
    (b"<\x00?\x00", "utf-16-le"),
    (b"\x4c\x6f\xa7\x94", "cp037"),
)
# Encodings (Python canonical names) in which every ASCII byte means its ASCII character, so the
# raw-byte scan sees exactly what libxml2 sees. Any other encoding is also decoded and scanned.
_ASCII_SUPERSETS = re.compile(r"utf-8|ascii|iso8859-\d+|cp125\d")
_ENCODING_NAME = re.compile(r"[A-Za-z][A-Za-z0-9._-]*")  # XML 1.0 production [81] EncName
HARDENED: Final[MappingProxyType[str, Any]] = MappingProxyType(
    {
        "resolve_entities": False,
        "no_network": True,
        "load_dtd": False,
        "dtd_validation": False,
        "remove_comments": True,  # "4<!-- -->0" is 40, not 4: text around a comment is joined
        "remove_pis": True,
        "huge_tree": False,
    }
)
"""The libxml2 options of step 5, for every parser of untrusted bytes (read-only)."""
_POSITION_SUFFIX = re.compile(r", line \d+, column \d+$")
_ENCODING_ERRORS = frozenset(
    {
        etree.ErrorTypes.ERR_INVALID_ENCODING,
        etree.ErrorTypes.ERR_UNSUPPORTED_ENCODING,
        etree.ErrorTypes.ERR_UNKNOWN_ENCODING,
        etree.ErrorTypes.ERR_ENCODING_NAME,
    }
)


def parse(payload: bytes, *, max_size: int, keep_markup: bool = False) -> etree._Element:
    """Parse untrusted XML bytes safely and return the **root element**.

    ``max_size`` is the largest accepted payload in bytes. ``keep_markup`` keeps comments and
    processing instructions (they are dropped otherwise): an XML signature covers them, so
    signing and verifying need the document exactly as sent. The element's document is reachable
    with ``root.getroottree()``. Raises :class:`~edi_gateway.errors.DocumentError` with code
    ``TOO_LARGE``, ``EMPTY``, ``FORBIDDEN_DTD``, ``BAD_ENCODING`` or ``NOT_WELL_FORMED``; the
    error's ``line`` is libxml2's line number when it gives one.
    """
    screen(payload, max_size=max_size)
    root = _libxml2_parse(payload, keep_markup)
    refuse_dtd(root)
    return root


def screen(payload: bytes, *, max_size: int) -> None:
    """Checks 1-4 of the module docstring, before libxml2 sees a byte: size, blank, encoding
    name, DOCTYPE. A caller that parses with its own parser (``HARDENED`` options) runs this
    first and :func:`refuse_dtd` on the result."""
    if len(payload) > max_size:
        raise DocumentError(
            ErrorCode.TOO_LARGE,
            f"payload is {len(payload):,} bytes, more than the limit of {max_size:,} bytes",
        )
    if _is_blank(payload):
        raise DocumentError(ErrorCode.EMPTY, "payload is empty or holds only whitespace")
    if _has_doctype(payload):
        raise DocumentError(
            ErrorCode.FORBIDDEN_DTD,
            "document has a <!DOCTYPE> declaration; DTDs and entity declarations are refused",
        )


def refuse_dtd(root: etree._Element) -> None:
    """Check 6: a DTD found on the parsed tree anyway is ``FORBIDDEN_DTD``."""
    docinfo = root.getroottree().docinfo
    if docinfo.internalDTD is not None or docinfo.externalDTD is not None:
        raise DocumentError(ErrorCode.FORBIDDEN_DTD, "document has a DTD; DTDs are refused")


def _is_blank(payload: bytes) -> bool:
    return _BLANK.fullmatch(payload) is not None


def _has_doctype(payload: bytes) -> bool:
    """True when the prolog declares a DOCTYPE, read as ASCII and in the document's encoding."""
    if _PROLOG_DOCTYPE.match(payload):
        return True
    codec = _prolog_codec(payload)
    if codec is None:
        return False
    try:
        text = payload.decode(codec, errors="replace")
    except (UnicodeError, LookupError, ValueError):  # codecs that refuse errors="replace"
        raise _unknown_encoding(codec) from None
    if not text.strip(" \t\r\n\ufeff"):
        raise DocumentError(ErrorCode.EMPTY, f"payload holds only whitespace ({codec})")
    return _PROLOG_DOCTYPE.match(text.lstrip("\ufeff").encode("utf-8")) is not None


def _prolog_codec(payload: bytes) -> str | None:
    """The Python codec needed to read the markup, or None when ASCII bytes already show it."""
    for prefix, codec in _SNIFF:
        if payload.startswith(prefix):
            return codec
    match = _DECLARED_ENCODING.match(payload)
    if match is None:
        return None
    name = (match["dq"] if match["dq"] is not None else match["sq"]).decode("ascii", "replace")
    if not _ENCODING_NAME.fullmatch(name):
        raise _unknown_encoding(name)
    try:
        info = codecs.lookup(name)
    except LookupError:
        raise _unknown_encoding(name) from None
    if not getattr(info, "_is_text_encoding", True):  # "hex", "base64", "rot13"...
        raise _unknown_encoding(name)
    return None if _ASCII_SUPERSETS.fullmatch(info.name) else info.name


def _unknown_encoding(name: str) -> DocumentError:
    return DocumentError(
        ErrorCode.BAD_ENCODING,
        f"declared encoding {name!r} is unknown; the sender should use UTF-8",
        line=1,
    )


def hardened_parser(*, keep_markup: bool = False) -> etree.XMLParser:
    """A fresh parser with the ``HARDENED`` options; ``keep_markup`` keeps comments and
    processing instructions (a signature covers them)."""
    options = {**HARDENED, "remove_comments": not keep_markup, "remove_pis": not keep_markup}
    return etree.XMLParser(**options)


def _libxml2_parse(payload: bytes, keep_markup: bool = False) -> etree._Element:
    parser = hardened_parser(keep_markup=keep_markup)
    try:
        return etree.fromstring(payload, parser)
    except etree.XMLSyntaxError as exc:
        raise _map_syntax_error(exc) from exc


def _map_syntax_error(exc: etree.XMLSyntaxError) -> DocumentError:
    line = exc.lineno or None
    code = getattr(exc, "code", None)  # libxml2 error number (missing from lxml-stubs)
    column = exc.position[1] if exc.position else None
    where = f" (column {column})" if column else ""
    text = _POSITION_SUFFIX.sub("", exc.msg or str(exc)).strip()
    if code in _ENCODING_ERRORS:
        return DocumentError(
            ErrorCode.BAD_ENCODING,
            f"bytes do not decode in the declared or detected encoding: {text}{where}",
            line=line,
        )
    if code == etree.ErrorTypes.ERR_RESOURCE_LIMIT:
        return DocumentError(
            ErrorCode.TOO_LARGE,
            f"document exceeds a libxml2 safety limit (text node over 10 MB or nesting deeper "
            f"than 256 levels), independent of max_size: {text}{where}",
            line=line,
        )
    return DocumentError(
        ErrorCode.NOT_WELL_FORMED, f"not well-formed XML: {text}{where}", line=line
    )
