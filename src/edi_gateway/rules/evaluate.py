"""Run the installed rule sets over a document: Saxon (saxonche, no JVM) on our compiled
stylesheets (``rules/compile.py``), findings located with lxml.

The stylesheet reports each failure as (assertion number, element number in document order,
attribute). This module turns the element number into an XPath with ``cbc:``/``cac:`` prefixes
and the source line, in one pass over the lxml tree that stops at the last element wanted.
"""

from __future__ import annotations

import tempfile
import threading
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from lxml import etree

from edi_gateway.domain.findings import Finding
from edi_gateway.errors import DocumentError, ErrorCode, GatewayError
from edi_gateway.rules.catalog import ROOTS, misfits, rule_sets
from edi_gateway.ubl.namespaces import CBC
from edi_gateway.ubl.parse import parse
from edi_gateway.ubl.read_values import source_line

if TYPE_CHECKING:
    from edi_gateway.rules.install import Release, RuleSet

PREFIXES = {
    "urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2": "cbc",
    "urn:oasis:names:specification:ubl:schema:xsd:CommonAggregateComponents-2": "cac",
    "urn:oasis:names:specification:ubl:schema:xsd:CommonExtensionComponents-2": "ext",
    "urn:oasis:names:specification:ubl:schema:xsd:CommonSignatureComponents-2": "sig",
    "urn:oasis:names:specification:ubl:schema:xsd:SignatureAggregateComponents-2": "sac",
    "urn:oasis:names:specification:ubl:schema:xsd:SignatureBasicComponents-2": "sbc",
    "http://www.w3.org/2000/09/xmldsig#": "ds",
}
GATEWAY_RULE_IDS = frozenset({"CUSTOMIZATION", "EVALUATION", "XSD", "MORE"})
"""Rule IDs of the gateway's own findings beside the release's (a ``severity:`` may name them)."""
_LOCK = threading.Lock()  # saxonche objects are not to be shared between threads at once
_SAXON: list[Any] = []  # the process's one Saxon processor, made on first use


def _processor() -> Any:
    if not _SAXON:
        from saxonche import PySaxonProcessor

        _SAXON.append(PySaxonProcessor(license=False))
    return _SAXON[0]


def saxon_check(rule_set: RuleSet) -> None:
    """Compile ``rule_set`` with Saxon now: ``RULES_UNAVAILABLE`` if it does not compile."""
    with _LOCK:
        _compile(rule_set)


def _compile(rule_set: RuleSet) -> Any:
    try:
        return _processor().new_xslt30_processor().compile_stylesheet(stylesheet_text=rule_set.xslt)
    except Exception as exc:  # saxonche raises its own PySaxonApiError
        raise GatewayError(
            ErrorCode.RULES_UNAVAILABLE, f"rule set {rule_set.name} does not compile: {exc}"
        ) from exc


class RuleEngine:
    """The rule sets of one release, each compiled by Saxon on first use and kept."""

    def __init__(self, release: Release) -> None:
        self.release = release
        self._executables: dict[str, Any] = {}

    def rule_sets_for(self, root: etree._Element) -> tuple[str, ...]:
        """The rule sets of this release that check ``root`` (by its CustomizationID)."""
        cid = root.findtext(f"{{{CBC}}}CustomizationID")
        return tuple(n for n in rule_sets(cid) if n in self.release.sets)

    def check(self, payload: bytes, root: etree._Element) -> list[Finding]:
        """Every finding of the rule sets for ``root``; ``payload`` are its bytes.

        ``payload`` must have passed the hardened parse (``ubl/parse.py``): no DTD, no entity
        reaches Saxon, and Saxon is given the text, never a location to fetch.
        """
        names = self.rule_sets_for(root)
        if not names:
            return []
        raw: list[tuple[RuleSet, int, int, str]] = []
        # Saxon reads the very bytes (its own parser decodes them as XML says), from a private
        # file: never a location the document names. The hardened parse already refused DTDs.
        with _LOCK, tempfile.NamedTemporaryFile(suffix=".xml") as file:
            file.write(payload)
            file.flush()
            try:
                document = _processor().parse_xml(xml_file_name=file.name)
                for name in names:
                    raw += self._run(name, document)
            except GatewayError:
                raise
            except Exception as exc:  # the official rules raise on it too (a dynamic error)
                raise DocumentError(
                    ErrorCode.RULES_FAILED,
                    f"the official rules cannot evaluate this document: {_first(exc)}",
                ) from exc
        return _located(raw, root)

    def _run(self, name: str, document: Any) -> list[tuple[RuleSet, int, int, str]]:
        rule_set = self.release.sets[name]
        executable = self._executables.get(name)
        if executable is None:
            executable = self._executables[name] = _compile(rule_set)
        out = executable.transform_to_string(xdm_node=document) or ""
        found = []
        for line in out.splitlines():
            number, element, attribute = line.split("\t")
            found.append((rule_set, int(number), int(element), attribute))
        return found


class RulesFailed(DocumentError):
    """``RULES_FAILED``: the fatal findings, named in the message and carried as ``findings``."""

    def __init__(self, failing: Sequence[Finding]) -> None:
        first = failing[0]
        more = f" (and {len(failing) - 1} more fatal)" if len(failing) > 1 else ""
        super().__init__(
            ErrorCode.RULES_FAILED,
            f"{first.rule_set}: {first.rule_id} at {first.location or '/'}: {first.text}{more}",
            line=first.line,
        )
        self.failing = tuple(failing)


def check_document(
    engine: RuleEngine,
    payload: bytes,
    *,
    max_size: int,
    required: bool = True,
    root: etree._Element | None = None,
) -> list[Finding]:
    """Parse ``payload`` (hardened) and run the rule sets of its CustomizationID over it.

    ``required``: a document whose CustomizationID no rule set of the release covers is itself a
    fatal finding (a partner with ``validation: peppol`` must send Peppol BIS documents);
    otherwise such a document simply has no findings. A CustomizationID on a document of
    another type (an Order labelled as an MLR) is a fatal finding either way. ``root``: the
    tree of ``payload`` when the caller parsed it already.
    """
    if root is None:
        root = parse(payload, max_size=max_size)
    names = engine.rule_sets_for(root)
    cid = (root.findtext(f"{{{CBC}}}CustomizationID") or "").strip()
    root_name = etree.QName(root).localname
    wrong = misfits(names, root_name)
    if wrong:
        why = f"CustomizationID {cid!r} is for {' / '.join(sorted(ROOTS[wrong[0]]))} documents"
        return [_customization(root, f"{why}, not for a {root_name}")]
    if not names:
        if not required:
            return []
        return [
            _customization(
                root,
                f"CustomizationID {cid or '(none)'!r} is not a Peppol BIS document that release "
                f"{engine.release.name} has rules for",
            )
        ]
    return engine.check(payload, root)


def _customization(root: etree._Element, text: str) -> Finding:
    location = "/ubl:" + etree.QName(root).localname + "/cbc:CustomizationID[1]"
    return Finding("PEPPOL", "CUSTOMIZATION", "fatal", location, source_line(root), text)


def _first(exc: Exception) -> str:
    """The first line of what Saxon said, without its class names."""
    text = " ".join(str(exc).split())
    return text[:500] or type(exc).__name__


def _located(raw: Sequence[tuple[RuleSet, int, int, str]], root: etree._Element) -> list[Finding]:
    places = _places({element for _, _, element, _ in raw}, root)
    findings = []
    for rule_set, number, element, attribute in raw:
        assertion = rule_set.assertions[number]
        path, line = places.get(element, ("/", None))
        if attribute:
            path += "/@" + _name(attribute)
        findings.append(
            Finding(rule_set.name, assertion.rule_id, assertion.flag, path, line, assertion.text)
        )
    findings.sort(key=lambda f: f.line or 0)  # document order for the reader (a stable sort)
    return findings


def _name(clark: str) -> str:
    """``Q{ns}local`` (as the stylesheet writes it) or ``{ns}local`` -> ``prefix:local``."""
    if clark.startswith("Q{"):
        clark = clark[1:]
    if not clark.startswith("{"):
        return clark
    ns, local = clark[1:].split("}", 1)
    if not ns:
        return local
    prefix = PREFIXES.get(ns)
    return f"{prefix}:{local}" if prefix else f"Q{{{ns}}}{local}"


def _places(wanted: Iterable[int], root: etree._Element) -> dict[int, tuple[str, int | None]]:
    """Element number (document order, root = 1) -> (XPath with positions, source line).

    One pass in document order that ends at the last number wanted: each element's position
    among its same-named siblings is counted as it goes; only elements with children keep
    theirs (for their descendants' paths)."""
    want = set(wanted) - {0}
    if not want:
        return {}
    last = max(want)
    root_ns = etree.QName(root).namespace
    counts: dict[Any, dict[str, int]] = {}
    position: dict[Any, int] = {}
    found: dict[int, tuple[str, int | None]] = {}
    for number, element in enumerate(root.iter(etree.Element), 1):
        parent = element.getparent()
        seen = counts.setdefault(parent, {})
        index = seen[element.tag] = seen.get(element.tag, 0) + 1
        if len(element):
            position[element] = index
        if number in want:
            steps = [_step(element, index, root_ns)]
            up = parent
            while up is not None:
                steps.append(_step(up, position[up], root_ns))
                up = up.getparent()
            found[number] = ("/" + "/".join(reversed(steps)), source_line(element))
        if number >= last:
            break
    return found


def _step(element: etree._Element, index: int, root_ns: str | None) -> str:
    qname = etree.QName(element)
    if qname.namespace == root_ns and element.getparent() is None:
        return f"ubl:{qname.localname}"
    return f"{_name(element.tag)}[{index}]"
