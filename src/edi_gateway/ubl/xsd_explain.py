"""What xmlschema adds to libxml2's first XSD error: the element the schema requires there.

libxml2 says what it *could* have taken at a place: for a misspelt ``cbc:IssueDate`` after the
order's ``cbc:ID`` it lists ``cbc:CopyIndicator, cbc:UUID, cbc:IssueDate`` (every optional
element first, and at most a handful). xmlschema follows the content model the way the sender
wrote it and names the element that is *required* next: ``cbc:IssueDate``. For a missing
``cbc:ID`` libxml2 complains about the element that follows it; xmlschema says ``cbc:ID`` is
expected there (docs/adr/0022).

Never on the fast path: only after libxml2 refused the document, only for its first issue, only
for documents up to :data:`MAX_BYTES` (xmlschema validates in pure Python, about 1 ms per order
line) and it stops at its first error. Building xmlschema's model of the UBL schemas takes about
1.3 s, once per process and document type; it reads only the verified bytes of the schema set
(an ``OpenerDirector`` that serves them and nothing else). Anything xmlschema raises leaves the
issue as libxml2 worded it.
"""

from __future__ import annotations

import email.message
import io
import logging
import urllib.error
import urllib.request
import urllib.response
from pathlib import Path
from typing import Any, Final
from urllib.parse import unquote

from lxml import etree

from edi_gateway.ubl.schemas import SchemaSet

log = logging.getLogger(__name__)

MAX_BYTES: Final = 256 * 1024
"""Documents larger than this are not handed to xmlschema."""


class _VerifiedFiles(urllib.request.BaseHandler):
    """``file:`` URLs inside the schema folder, served from the verified bytes; nothing else."""

    def __init__(self, root: Path, files: dict[str, bytes]) -> None:
        self._root = root.resolve()
        self._files = files

    def file_open(self, request: urllib.request.Request) -> urllib.response.addinfourl:
        url = request.full_url
        path = Path(unquote(url.removeprefix("file://"))).resolve()
        rel = path.relative_to(self._root).as_posix() if path.is_relative_to(self._root) else ""
        if rel not in self._files:
            raise urllib.error.URLError(f"{url} is not in the verified UBL schema set")
        return urllib.response.addinfourl(
            io.BytesIO(self._files[rel]), email.message.Message(), url
        )


def _build(schema_set: SchemaSet, root_name: str) -> Any:
    import xmlschema

    files = dict(schema_set.verified())
    opener = urllib.request.OpenerDirector()
    opener.add_handler(_VerifiedFiles(schema_set.root, files))
    folder = (schema_set.root.resolve() / "maindoc").as_uri() + "/"
    return xmlschema.XMLSchema(
        files[f"maindoc/UBL-{root_name}-2.1.xsd"],
        base_url=folder,
        opener=opener,
        defuse="remote",  # the xmldsig schema declares entities; these bytes are verified
        use_fallback=False,  # xmldsig from the verified set, not xmlschema's own copy
    )


def required_here(
    schema_set: SchemaSet, root_name: str, root: etree._Element, element: etree._Element
) -> str | None:
    """What the schema requires where ``element`` (libxml2's first failing element, of this
    or another parse of the same bytes) is, as xmlschema says it (``cbc:IssueDate``, or ``one
    of cbc:A, cbc:B``), or None when xmlschema has nothing to add about that element. The
    caller keeps to documents of at most :data:`MAX_BYTES`."""
    try:
        model = schema_set.memo(f"xmlschema:{root_name}", lambda: _build(schema_set, root_name))
        error = next(iter(model.iter_errors(root, use_location_hints=False)), None)
        if error is None:
            return None
        at = getattr(error, "invalid_child", None)
        if not _same(at if at is not None else error.elem, element):
            return None
        names = [getattr(item, "prefixed_name", None) for item in error.expected or ()]
        shown = [name for name in names if name]
        if not shown:
            return None
        return shown[0] if len(shown) == 1 else "one of " + ", ".join(shown)
    except Exception:  # an explanation must never change the outcome
        log.debug("xmlschema could not explain the first XSD error", exc_info=True)
        return None


def _same(found: Any, element: etree._Element) -> bool:
    """The same element of the document (the two may come from two parses of the same bytes)."""
    return (
        isinstance(found, etree._Element)
        and found.tag == element.tag
        and found.sourceline == element.sourceline
    )
