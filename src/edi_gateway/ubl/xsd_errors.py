"""XSD errors as people read them: the issue and the refusal data, wording and element paths.

libxml2 words an error with Clark names and every optional sibling it would have taken::

    Element '{urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2}IsueDate':
    This element is not expected. Expected is one of ( {urn:...}CopyIndicator, ... ).

:func:`word` turns that into ``cbc:IsueDate is not expected here; expected one of
cbc:CopyIndicator, cbc:UUID, cbc:IssueDate``: the UBL prefixes (``cbc:``, ``cac:``, ``ext:``,
the signature components' ``sig:``/``sac:``/``sbc:``, ``ds:``), the document's own namespace
without a prefix, lists longer than :data:`MAX_NAMES` cut with a count. :class:`PathFinder`
writes where an element is as an XPath with the same prefixes and a position on every step
below the root: ``/Order/cac:OrderLine[3]/cac:LineItem[1]/cbc:Quantiy[1]``.

An :class:`XsdIssue` is one finding (line, location, text): stored as rule ``XSD``, flag
``fatal``. :class:`XsdInvalid` is the refusal (``XSD_INVALID``): at most :data:`MAX_ISSUES`
issues in document order, the total, and the sender's keys read loosely from the invalid tree.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Final

from lxml import etree

from edi_gateway.domain.findings import XSD, Finding
from edi_gateway.errors import DocumentError, ErrorCode
from edi_gateway.ubl.namespaces import CAC, CBC, EXT, MAINDOC_PREFIX, split_clark

MAX_ISSUES: Final = 100
"""Issues kept per refused document; the rest are counted (:attr:`XsdInvalid.total`)."""
MAX_NAMES: Final = 8
"""Names of an "expected one of" list shown before it is cut with a count."""

_SIG = "urn:oasis:names:specification:ubl:schema:xsd:"
_PREFIXES: Final = {
    CBC: "cbc",
    CAC: "cac",
    EXT: "ext",
    f"{_SIG}CommonSignatureComponents-2": "sig",
    f"{_SIG}SignatureAggregateComponents-2": "sac",
    f"{_SIG}SignatureBasicComponents-2": "sbc",
    "http://www.w3.org/2000/09/xmldsig#": "ds",
}
_CLARK = re.compile(r"\{([^{}]*)\}([^\s',()]+)")
_ELEMENT = re.compile(r"Element '(?P<el>[^']+)'(?:, attribute '(?P<attr>[^']+)')?: (?P<rest>.*)")
_EXPECTED = re.compile(r"(?P<what>.*?)\s*Expected is (?P<one>one of )?\( (?P<names>.*) \)")


@dataclass(frozen=True, slots=True)
class XsdIssue:
    """One XSD error: where it is (``line``, ``location``) and what is wrong (``text``).

    ``line`` is the line of the failing element's start tag; ``location`` its XPath with
    ``cbc:``/``cac:`` prefixes and positions (None when not known). ``str(issue)`` is the
    one-line form, e.g. ``line 7: /Order/cbc:IsueDate[1]: cbc:IsueDate is not expected here;
    expected one of cbc:CopyIndicator, cbc:UUID, cbc:IssueDate``.
    """

    line: int | None
    location: str | None
    text: str

    def __str__(self) -> str:
        where = f"line {self.line}: " if self.line else ""
        return f"{where}{self.location}: {self.text}" if self.location else f"{where}{self.text}"


class XsdInvalid(DocumentError):
    """``XSD_INVALID``: the first issues (``issues``, at most :data:`MAX_ISSUES`, in document
    order), how many there are (``total``; a lower bound when ``complete`` is False, i.e. the
    count stopped at a limit), and ``sender_keys``, the identifiers of the party that sent the
    document as read from the invalid tree (empty when none could be read).

    The message names the first issue and the count of the rest; ``line`` is the first issue's.
    """

    def __init__(
        self,
        root_name: str,
        issues: list[XsdIssue],
        total: int | None = None,
        complete: bool = True,
        sender_keys: tuple[str, ...] = (),
    ) -> None:
        kept = tuple(issues[:MAX_ISSUES])
        total = max(total if total is not None else len(issues), len(kept))
        first = kept[0] if kept else XsdIssue(None, None, "the schema refused it")
        rest = total - 1
        more = ""
        if rest > 0 or not complete:
            more = f" (and {rest:,} more)" if complete else f" (and at least {rest:,} more)"
        where = f"{first.location}: " if first.location else ""
        super().__init__(
            ErrorCode.XSD_INVALID,
            f"not a valid UBL 2.1 {root_name}: {where}{first.text}{more}",
            line=first.line,
        )
        self.root_name = root_name
        self.issues: tuple[XsdIssue, ...] = kept
        self.total = total
        self.complete = complete
        self.sender_keys = sender_keys

    @property
    def findings(self) -> list[Finding]:
        """The issues as findings (rule set and rule ``XSD``), kept with the failed message,
        and one more counting the issues beyond the first :data:`MAX_ISSUES`."""
        found = [Finding(XSD, XSD, "fatal", i.location, i.line, i.text) for i in self.issues]
        rest = self.total - len(self.issues)
        if rest > 0 or not self.complete:
            count = f"{rest:,}" if self.complete else f"at least {rest:,}"
            found.append(Finding(XSD, "MORE", "fatal", None, None, f"and {count} more"))
        return found

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickles (the read-ahead worker sends refusals to its parent)."""
        args = (self.root_name, list(self.issues), self.total, self.complete, self.sender_keys)
        return (type(self), args)


def prefixed(namespace: str | None, local: str, document_ns: str | None = None) -> str:
    """``cbc:Name`` for a UBL namespace, ``Name`` for the document's own (or none), else Clark."""
    if namespace is None or namespace == document_ns:
        return local
    prefix = _PREFIXES.get(namespace)
    if prefix is not None:
        return f"{prefix}:{local}"
    if namespace.startswith(MAINDOC_PREFIX) and namespace.endswith("-2"):
        return f"{namespace[len(MAINDOC_PREFIX) : -2]}:{local}"  # another UBL document's
    return f"{{{namespace}}}{local}"


def word(message: str, document_ns: str | None = None) -> str:
    """libxml2's schema error message worded for people (see the module docstring)."""
    text = _CLARK.sub(lambda m: prefixed(m[1], m[2], document_ns), message.strip())
    text = text.removesuffix(".")
    match = _ELEMENT.fullmatch(text)
    if match is None:
        return text
    element, attribute, rest = match["el"], match["attr"], match["rest"]
    if attribute is not None:
        return f"{element}, attribute '{attribute}': {_lower_first(rest)}"
    expected = _EXPECTED.fullmatch(rest)
    what = expected["what"].removesuffix(".") if expected else rest
    if what == "This element is not expected":
        head = f"{element} is not expected here"
    elif what == "Missing child element(s)":
        head = f"{element} lacks a required child element"
    else:
        head = f"{element}: {_lower_first(what)}"
    if expected is None:
        return head
    names = [name.strip() for name in expected["names"].split(",") if name.strip()]
    return f"{head}; expected {'one of ' if expected['one'] else ''}{_shorten(names)}"


def _shorten(names: list[str]) -> str:
    if len(names) <= MAX_NAMES:
        return ", ".join(names)
    return ", ".join(names[:MAX_NAMES]) + f" and {len(names) - MAX_NAMES} more"


def _lower_first(text: str) -> str:
    return text[:1].lower() + text[1:] if text[:2] != text[:2].upper() else text


class PathFinder:
    """XPaths of elements of one tree, asked for in document order, in linear time overall.

    The position of an element among its same-named siblings is counted back only to the last
    sibling whose position is already known, so a parent's children are walked once however
    many of them are asked for (libxml2's own path counts from the first sibling every time,
    which is what made a document with an error on each of 40,000 lines quadratic).
    """

    def __init__(self, document_ns: str | None) -> None:
        self._ns = document_ns
        self._known: dict[tuple[Any, str], tuple[etree._Element, int]] = {}

    def path(self, el: etree._Element) -> str:
        """``/Order/cac:OrderLine[3]/cac:LineItem[1]`` for an element of the tree."""
        steps: list[str] = []
        node: etree._Element | None = el
        while node is not None:
            parent = node.getparent()
            name = prefixed(*split_clark(str(node.tag)), self._ns)
            steps.append(name if parent is None else f"{name}[{self._position(parent, node)}]")
            node = parent
        return "/" + "/".join(reversed(steps))

    def _position(self, parent: etree._Element, node: etree._Element) -> int:
        tag = str(node.tag)
        known = self._known.get((parent, tag))
        if known is not None and known[0] is node:
            return known[1]
        count, base = 1, 0
        for sibling in node.itersiblings(tag, preceding=True):
            if known is not None and sibling is known[0]:
                base = known[1]
                break
            count += 1
        position = base + count
        self._known[(parent, tag)] = (node, position)
        return position
