"""XSD validation in one streaming pass, in time linear in the size and in the number of errors.

Why not ``XMLSchema.validate(tree)``: for every error on a tree, lxml stores the failing node's
path, which libxml2 (``xmlGetNodePath``) computes by walking every preceding sibling of every
ancestor. An order whose 40,000 lines each carry an error made 40,000 walks over up to 40,000
``cac:OrderLine`` siblings: 29 s for 29 MB, quadratic (docs/adr/0022).

Instead the parser validates while it reads (:func:`check`: ``schema=`` on a parser with the
hardened options of :mod:`edi_gateway.ubl.parse`, reading the bytes through a file object):
libxml2 streams the document through the schema and reports errors without nodes, hence without
paths. A valid document's tree comes out of the same pass. The file object hands the bytes
over :data:`CHUNK` at a time and notes how many errors there were before each chunk, and it
ends the parse at :data:`MAX_COUNTED` errors (a hostile document with an error every 60 bytes
would otherwise cost seconds and hundreds of MB of messages).

Streamed errors have no line. :func:`locate` finds the first :data:`MAX_ISSUES` again, each with
its element: it parses once more, with ``start``/``end`` events, feeding the chunks where errors
appeared (known from the first pass) one tag at a time. After each tag the errors that appeared
belong to the element of the last event, whose line and path are then known exactly. It stops
at the last issue it needs, so the every-line-invalid order costs a few hundred tags; the tree
it leaves (up to there) serves to name the sender.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import IO, TYPE_CHECKING, Any, Final, cast

from lxml import etree

from edi_gateway.ubl.parse import HARDENED
from edi_gateway.ubl.xsd_errors import MAX_ISSUES

if TYPE_CHECKING:
    from collections.abc import Iterator

CHUNK: Final = 16 * 1024
"""Bytes handed to libxml2 at a time; where errors appear is known to this granularity."""
TREE_MAX: Final = 32 * 1024
"""Documents up to this size are parsed, then validated as a tree (``SchemaSet.check_tree``):
the least work, and too few bytes for the quadratic cost of many errors to matter (below
0.2 s for the worst 32 KB)."""
ONE_SHOT: Final = 256 * 1024
"""Documents up to this size are parsed from memory in one call (see :func:`check`)."""
MAX_COUNTED: Final = 50_000
"""Errors counted at most: beyond this the document is refused without reading the rest."""
_SCHEMA = etree.ErrorDomains.SCHEMASV
_ERROR = etree.ErrorLevels.ERROR


class _Stop(Exception):
    """Raised from a source's ``read`` to end a parse early."""


@dataclass(slots=True)
class Pass:
    """What one validating read of a document found.

    ``root``: the tree of a valid document, else None; ``messages``: the first
    :data:`MAX_ISSUES` schema error messages; ``total``: schema errors counted; ``complete``:
    False when counting stopped at :data:`MAX_COUNTED`; ``well_formed``: False when libxml2
    refused the XML itself (the caller re-parses to say why); ``marks``: the schema errors
    counted before each chunk after the first, while fewer than MAX_ISSUES.
    """

    root: etree._Element | None
    messages: list[str] = field(default_factory=list)
    total: int = 0
    complete: bool = True
    well_formed: bool = True
    marks: list[int] | None = None


class _Chunks:
    """The payload as a file for the parser: one chunk per read, counting errors between."""

    def __init__(self, payload: bytes, parser: etree.XMLParser, max_counted: int) -> None:
        self._data = payload
        self._pos = 0
        self._parser: Any = parser
        self._max = max_counted
        self.marks: list[int] = []
        self.capped = False

    def read(self, size: int = -1) -> bytes:
        if self._pos:
            self._count()
        piece = self._data[self._pos : self._pos + CHUNK]
        self._pos += len(piece)
        return piece

    def _count(self) -> None:
        if self.marks and self.marks[-1] >= MAX_ISSUES and len(self.marks) % 16:
            self.marks.append(self.marks[-1])  # past the issues kept: counted once a megabyte
            return
        errors = len(self._parser.error_log)
        self.marks.append(errors)
        if errors >= self._max:
            self.capped = True
            raise _Stop


def check(payload: bytes, schema: etree.XMLSchema, max_counted: int = MAX_COUNTED) -> Pass:
    """Parse ``payload`` (already screened, see ``parse.screen``) validating it against
    ``schema`` in one pass, counting at most about ``max_counted`` errors (checked once a
    megabyte). Never raises for the document's sake: see :class:`Pass`.

    Up to :data:`ONE_SHOT` bytes the parser reads the bytes at once (the least work; so few
    bytes hold too few errors to need a limit) and no marks are kept."""
    parser = etree.XMLParser(schema=schema, **HARDENED)
    source = _Chunks(payload, parser, max_counted)
    root = None
    with contextlib.suppress(etree.XMLSyntaxError, _Stop):
        if len(payload) <= ONE_SHOT:
            root = etree.fromstring(payload, parser)
        else:
            root = etree.parse(cast("IO[bytes]", source), parser).getroot()
    entries = list(parser.error_log)
    schema_errors = [e for e in entries if e.domain == _SCHEMA and e.level >= _ERROR]
    refused = any(e.domain != _SCHEMA and e.level >= _ERROR for e in entries)
    return Pass(
        root=root if not schema_errors else None,
        messages=[str(e.message) for e in schema_errors[:MAX_ISSUES]],
        total=len(schema_errors),
        complete=not source.capped,
        well_formed=not refused or source.capped,
        marks=source.marks if len(payload) > ONE_SHOT else None,
    )


class _Tags:
    """The payload for a second ``iterparse``: whole chunks where the first pass saw no new
    error, one tag (from a ``<`` to the next) at a time in and just before the others."""

    def __init__(self, payload: bytes, marks: list[int] | None, wanted: int) -> None:
        self._data = payload
        self._pos = 0
        self._hot: set[int] | None = None  # None: every chunk, tag by tag
        if marks is not None:
            rises = [i for i, count in enumerate(marks) if count > (marks[i - 1] if i else 0)]
            rises = rises or [len(marks) - 1, len(marks)]  # only at the end (root's end tag)
            # an error can show only when the next chunk arrives (libxml2 reads ahead)
            self._hot = {j for i in rises for j in (i - 1, i, i + 1)}
        self._wanted = wanted
        self._seen = 0
        self.parser: Any = None
        self.last: etree._Element | None = None
        self.found: list[tuple[etree._Element | None, str]] = []
        self.at_end = False

    def read(self, size: int = -1) -> bytes:
        self.take()
        if len(self.found) >= self._wanted:
            raise _Stop
        start = self._pos
        if start >= len(self._data):
            self.at_end = True
            return b""
        chunk_end = (start // CHUNK + 1) * CHUNK
        if self._hot is None or start // CHUNK in self._hot:
            after = self._data.find(b"<", start + 1, chunk_end)
            end = after if after != -1 else chunk_end
        else:
            end = chunk_end
        self._pos = min(end, len(self._data))
        return self._data[start : self._pos]

    def take(self) -> None:
        """Give the errors that appeared since the last look to the last element seen."""
        if self.parser is None:
            return
        entries = list(self.parser.error_log)
        for entry in entries[self._seen :]:
            if entry.domain == _SCHEMA and entry.level >= _ERROR:
                self.found.append((self.last, str(entry.message)))
        self._seen = len(entries)


@dataclass(slots=True)
class Located:
    """The first errors, each with its element (None if it came before any), and the tree
    parsed up to the last of them (``whole``: to the end of the document)."""

    errors: list[tuple[etree._Element | None, str]]
    root: etree._Element | None
    whole: bool


def locate(
    payload: bytes, schema: etree.XMLSchema, marks: list[int] | None, wanted: int
) -> Located:
    """The first ``wanted`` schema errors of ``payload``, each with its element (see the module
    docstring); ``marks`` are the first pass's counts per chunk (:attr:`Pass.marks`)."""
    source = _Tags(payload, marks, wanted)
    parser = etree.iterparse(source, events=("start", "end"), schema=schema, **HARDENED)
    source.parser = parser
    events: Iterator[tuple[str, etree._Element]] = iter(parser)
    root = None
    whole = False
    try:
        for _event, element in events:
            source.last = element
            if root is None:
                root = element
        whole = True
    except etree.XMLSyntaxError:
        whole = source.at_end
    except _Stop:
        pass
    source.take()
    return Located(source.found[:wanted], root, whole)
