"""The pure validation step: hardened parse, document type identification, UBL 2.1 XSD.

No store and no I/O beyond the verified schema files. Rule sets (Schematron) come later.
"""

from __future__ import annotations

from dataclasses import dataclass

from lxml import etree

from edi_gateway.domain.documents import DocumentKind
from edi_gateway.domain.findings import XSD, Finding
from edi_gateway.errors import DocumentError, ErrorCode
from edi_gateway.ubl.namespaces import maindoc_ns
from edi_gateway.ubl.parse import parse
from edi_gateway.ubl.read_values import source_line
from edi_gateway.ubl.schemas import SchemaSet, default_schema_set

_KINDS = {kind.value: kind for kind in DocumentKind}


@dataclass(frozen=True, slots=True)
class XsdIssue:
    """One XSD validation error: libxml2's line number (if known) and its message."""

    line: int | None
    message: str


@dataclass(frozen=True, slots=True)
class Validated:
    """A document that parsed, is a UBL 2.1 document type and is XSD-valid.

    ``kind`` is set when the gateway interprets this type (see ``DocumentKind``), else None.
    """

    root: etree._Element
    root_name: str
    kind: DocumentKind | None


class XsdInvalid(DocumentError):
    """``XSD_INVALID`` with every issue attached as ``issues`` (the message names the first)."""

    def __init__(self, root_name: str, issues: list[XsdIssue]) -> None:
        first = issues[0]
        more = f" (and {len(issues) - 1} more)" if len(issues) > 1 else ""
        super().__init__(
            ErrorCode.XSD_INVALID,
            f"not a valid UBL 2.1 {root_name}: {first.message}{more}",
            line=first.line,
        )
        self.issues: tuple[XsdIssue, ...] = tuple(issues)

    @property
    def findings(self) -> list[Finding]:
        """The issues as findings (rule set and rule ``XSD``), kept with the failed message."""
        return [Finding(XSD, XSD, "fatal", None, i.line, i.message) for i in self.issues]


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
    """Validate against the UBL 2.1 XSD for ``root_name``; return the issues (empty if valid).

    Uses the process-wide compiled schema (see ``schema_for``); safe to call from threads.
    """
    root = tree_or_root.getroot() if isinstance(tree_or_root, etree._ElementTree) else tree_or_root
    found = (schema_set or default_schema_set()).check(root_name, root)
    return [XsdIssue(line, message) for line, message in found]


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
    :class:`XsdInvalid` (code ``XSD_INVALID``, all issues in ``.issues``).
    """
    root = parse(payload, max_size=max_size)
    root_name = identify(root, schema_set=schema_set)
    if kinds is not None and root_name not in kinds:
        raise DocumentError(
            ErrorCode.UNSUPPORTED_DOCUMENT,
            f"{root_name} is a UBL 2.1 document type this gateway does not process "
            f"(accepted: {', '.join(sorted(kinds))})",
            line=source_line(root),
        )
    issues = xsd_errors(root, root_name, schema_set=schema_set)
    if issues:
        raise XsdInvalid(root_name, issues)
    return Validated(root=root, root_name=root_name, kind=_KINDS.get(root_name))
