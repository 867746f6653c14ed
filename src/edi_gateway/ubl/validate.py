"""The pure validation step: hardened parse, document type identification, UBL 2.1 XSD.

No store and no I/O beyond the verified schema files. Parsing and XSD validation are one
streaming pass (``ubl/xsd_check.py``, linear in the errors); a refusal is an
:class:`XsdInvalid` with at most 100 issues worded for people (``ubl/xsd_errors.py``), the
first explained further by xmlschema when the document is small (``ubl/xsd_explain.py``), and
the sender read loosely from the invalid tree.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import NoReturn

from lxml import etree

from edi_gateway.domain.documents import DocumentKind
from edi_gateway.errors import DocumentError, ErrorCode
from edi_gateway.ubl import xsd_check
from edi_gateway.ubl.namespaces import maindoc_ns
from edi_gateway.ubl.parse import parse, refuse_dtd, screen
from edi_gateway.ubl.read_parties import loose_sender_keys
from edi_gateway.ubl.read_values import source_line
from edi_gateway.ubl.schemas import SchemaSet, default_schema_set
from edi_gateway.ubl.xsd_errors import MAX_ISSUES, PathFinder, XsdInvalid, XsdIssue, word

__all__ = [
    "Validated",
    "XsdInvalid",
    "XsdIssue",
    "expected_namespace",
    "identify",
    "validate_document",
    "xsd_errors",
]

_KINDS = {kind.value: kind for kind in DocumentKind}
# The root element's local name, read from the bytes to pick the schema before parsing: BOM,
# whitespace, the XML declaration, comments and PIs, then "<" and an optional prefix. Only a
# guess: a wrong or missing one costs a second parse, never a wrong verdict.
_ROOT_NAME = re.compile(
    rb"(?:\xef\xbb\xbf)?"
    rb"(?:[ \t\r\n]++|<\?(?:[^?]++|\?(?!>))*+\?>|<!--(?:[^-]++|-(?!->))*+-->)*+"
    rb"<(?:[A-Za-z_][A-Za-z0-9_.-]*+:)?(?P<name>[A-Za-z]++)[ \t\r\n/>]"
)


@dataclass(frozen=True, slots=True)
class Validated:
    """A document that parsed, is a UBL 2.1 document type and is XSD-valid.

    ``kind`` is set when the gateway interprets this type (see ``DocumentKind``), else None.
    """

    root: etree._Element
    root_name: str
    kind: DocumentKind | None


expected_namespace = maindoc_ns
"""The namespace a UBL document whose root element is ``root_name`` must use."""


def identify(root: etree._Element, *, schema_set: SchemaSet | None = None) -> str:
    """Return the UBL 2.1 document type of ``root`` (its local name, e.g. ``"Order"``).

    Raises ``DocumentError(UNSUPPORTED_DOCUMENT)`` when the root is not a UBL 2.1 document:
    no namespace, another namespace, or a local name that is not one of the 65 UBL 2.1 types.
    """
    qname = etree.QName(root)
    local, namespace = qname.localname, qname.namespace
    names = (schema_set or default_schema_set()).root_names()
    if local not in names:
        raise DocumentError(
            ErrorCode.UNSUPPORTED_DOCUMENT,
            f"root element {_describe(local, namespace)} is not a UBL 2.1 document type",
            line=source_line(root),
        )
    if namespace != expected_namespace(local):
        raise DocumentError(
            ErrorCode.UNSUPPORTED_DOCUMENT,
            f"root element {_describe(local, namespace)} is not in the UBL 2.1 namespace; "
            f"expected {{{expected_namespace(local)}}}{local}",
            line=source_line(root),
        )
    return local


def _describe(local: str, namespace: str | None) -> str:
    return f"{{{namespace}}}{local}" if namespace else f"<{local}> (no namespace)"


def xsd_errors(
    tree_or_root: etree._Element | etree._ElementTree,
    root_name: str,
    *,
    schema_set: SchemaSet | None = None,
) -> list[XsdIssue]:
    """Validate a tree against the UBL 2.1 XSD for ``root_name``; the first 100 issues (empty
    if valid). The tree is serialised and validated as bytes, so lines are those of the
    serialised element (the source's, less the XML declaration's line, when parsed from text)."""
    root = tree_or_root.getroot() if isinstance(tree_or_root, etree._ElementTree) else tree_or_root
    schemas = schema_set or default_schema_set()
    payload = etree.tostring(root)
    found = xsd_check.check(payload, schemas.schema(root_name))
    if not found.total:
        return []
    return _locate(payload, schemas, root_name, found)[0]


def validate_document(
    payload: bytes,
    *,
    max_size: int,
    kinds: frozenset[str] | None = None,
    schema_set: SchemaSet | None = None,
) -> Validated:
    """Parse ``payload`` safely, identify its UBL type and validate it against the UBL 2.1 XSD.

    ``kinds`` (root names such as ``DocumentKind`` values) restricts the accepted types: the
    intake passes the kinds it interprets, ``edi-gateway validate`` passes None to check any
    UBL 2.1 document. Raises ``DocumentError`` (parse codes, ``UNSUPPORTED_DOCUMENT``) or
    :class:`XsdInvalid` (code ``XSD_INVALID``: the first issues, the total, the sender's keys).

    Up to ``xsd_check.TREE_MAX`` bytes the document is parsed and its tree validated. A larger
    one is parsed and validated in one streaming pass (``ubl/xsd_check.py``, linear in the
    errors) with the schema of the root name read from the bytes; when that guess is missing or
    wrong, it is parsed first and validated after. Only a refused document is read again, to
    place its first issues (and, when small, to have xmlschema explain the first).
    """
    schemas = schema_set or default_schema_set()
    if len(payload) <= xsd_check.TREE_MAX:  # small: parse, then validate the tree
        root = parse(payload, max_size=max_size)
        name = _accepted(root, schemas, kinds)
        messages = schemas.check_tree(name, root)
        if not messages:
            return Validated(root=root, root_name=name, kind=_KINDS.get(name))
        _refuse(payload, schemas, name, kinds, xsd_check.Pass(None, messages, len(messages)))
    screen(payload, max_size=max_size)
    guess = _ROOT_NAME.match(payload)
    name = guess["name"].decode("ascii") if guess else ""
    found: xsd_check.Pass | None = None
    if name in schemas.root_names() and (kinds is None or name in kinds):
        found = xsd_check.check(payload, schemas.schema(name))
        if found.root is not None:  # valid: as it should be, in one pass
            refuse_dtd(found.root)
            return _validated(found.root, schemas, kinds)
        if not found.well_formed:
            parse(payload, max_size=max_size)  # raises what is wrong with the XML itself
            found = None
    if found is None or found.total == 0:  # no usable guess: parse, identify, then validate
        root = parse(payload, max_size=max_size)
        name = _accepted(root, schemas, kinds)
        found = xsd_check.check(payload, schemas.schema(name))
        if found.root is not None:
            return Validated(root=root, root_name=name, kind=_KINDS.get(name))
    _refuse(payload, schemas, name, kinds, found)


def _refuse(
    payload: bytes,
    schemas: SchemaSet,
    name: str,
    kinds: frozenset[str] | None,
    found: xsd_check.Pass,
) -> NoReturn:
    """Raise the refusal of a document ``found`` invalid: its first issues placed, worded and
    (the first) explained, and the sender read from its tree."""
    issues, located = _locate(payload, schemas, name, found)
    tree = located.root if located.root is not None else parse(payload, max_size=len(payload))
    _accepted(tree, schemas, kinds)  # a root in another namespace is not a UBL document
    if issues:
        issues[0] = _explain(schemas, name, payload, issues[0], located)
    keys = loose_sender_keys(tree)
    if not keys and not located.whole:  # placing the issues stopped before the sender
        keys = loose_sender_keys(parse(payload, max_size=len(payload)))
    raise XsdInvalid(name, issues, found.total, found.complete, keys)


def _validated(root: etree._Element, schemas: SchemaSet, kinds: frozenset[str] | None) -> Validated:
    name = _accepted(root, schemas, kinds)
    return Validated(root=root, root_name=name, kind=_KINDS.get(name))


def _accepted(root: etree._Element, schemas: SchemaSet, kinds: frozenset[str] | None) -> str:
    """The root's UBL type, if it is one of ``kinds``; else ``UNSUPPORTED_DOCUMENT``."""
    root_name = identify(root, schema_set=schemas)
    if kinds is not None and root_name not in kinds:
        raise DocumentError(
            ErrorCode.UNSUPPORTED_DOCUMENT,
            f"{root_name} is a UBL 2.1 document type this gateway does not process "
            f"(accepted: {', '.join(sorted(kinds))})",
            line=source_line(root),
        )
    return root_name


def _locate(
    payload: bytes, schemas: SchemaSet, root_name: str, found: xsd_check.Pass
) -> tuple[list[XsdIssue], xsd_check.Located]:
    """The first issues placed and worded, and what :func:`xsd_check.locate` saw."""
    wanted = min(found.total, MAX_ISSUES)
    located = xsd_check.locate(payload, schemas.schema(root_name), found.marks, wanted)
    namespace = expected_namespace(root_name)
    paths = PathFinder(namespace)
    issues = [
        XsdIssue(
            source_line(el) if el is not None else None,
            paths.path(el) if el is not None else None,
            word(message, namespace),
        )
        for el, message in located.errors
    ]
    if len(issues) < wanted:  # not placed (should not happen): worded, without a place
        issues += [XsdIssue(None, None, word(m, namespace)) for m in found.messages[len(issues) :]]
    return issues[:wanted], located


def _explain(
    schemas: SchemaSet, root_name: str, payload: bytes, issue: XsdIssue, located: xsd_check.Located
) -> XsdIssue:
    """The first issue, with what xmlschema says the schema requires there (small documents)."""
    from edi_gateway.ubl.xsd_explain import MAX_BYTES, required_here

    element = located.errors[0][0] if located.errors else None
    if element is None or len(payload) > MAX_BYTES:
        return issue
    tree = located.root if located.whole else None
    whole = tree if tree is not None else parse(payload, max_size=len(payload))
    needed = required_here(schemas, root_name, whole, element)
    if needed is None:
        return issue
    return XsdIssue(issue.line, issue.location, f"{issue.text} (required here: {needed})")
