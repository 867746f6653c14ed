"""UBL 2.1 namespace URIs and Clark-notation helpers.

lxml names elements in Clark notation, ``{namespace-uri}LocalName``. Readers build their tag names
and ``find``/``findall`` paths once, at import time, with :func:`cbc`, :func:`cac` and
:func:`path`, so that no prefix mapping is resolved per element on the hot path.

All values here are immutable strings (and one read-only mapping); nothing is mutable.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Final

CBC: Final = "urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2"
CAC: Final = "urn:oasis:names:specification:ubl:schema:xsd:CommonAggregateComponents-2"
EXT: Final = "urn:oasis:names:specification:ubl:schema:xsd:CommonExtensionComponents-2"

MAINDOC_PREFIX: Final = "urn:oasis:names:specification:ubl:schema:xsd:"
"""Every UBL 2.x main document namespace is this prefix + ``<DocumentName>-2``."""

PREFIXES: Final = MappingProxyType({"cbc": CBC, "cac": CAC, "ext": EXT})
"""The conventional prefixes understood by :func:`path` (read-only)."""


def maindoc_ns(document_name: str) -> str:
    """Namespace URI of a UBL main document, e.g. ``maindoc_ns("Order")``."""
    return f"{MAINDOC_PREFIX}{document_name}-2"


def clark(namespace: str, local_name: str) -> str:
    """Clark-notation name ``{namespace}local_name`` as lxml uses for ``.tag``."""
    return f"{{{namespace}}}{local_name}"


def cbc(local_name: str) -> str:
    """Clark name of a CommonBasicComponents element, e.g. ``cbc("ID")``."""
    return clark(CBC, local_name)


def cac(local_name: str) -> str:
    """Clark name of a CommonAggregateComponents element, e.g. ``cac("Party")``."""
    return clark(CAC, local_name)


def root_tag(document_name: str) -> str:
    """Clark name of a UBL main document root element, e.g. ``{...:Invoice-2}Invoice``."""
    return clark(maindoc_ns(document_name), document_name)


def path(*steps: str) -> str:
    """Join prefixed steps into a Clark-notation ElementPath for ``find``/``findtext``.

    ``path("cac:Party", "cac:PartyName", "cbc:Name")`` returns
    ``"{...Aggregate...}Party/{...Aggregate...}PartyName/{...Basic...}Name"``. Only the prefixes
    in :data:`PREFIXES` are accepted; a step without a prefix is rejected so that a typo cannot
    silently select nothing.
    """
    out: list[str] = []
    for step in steps:
        prefix, sep, local = step.partition(":")
        if not sep or prefix not in PREFIXES or not local:
            raise ValueError(f"path step must be cbc:/cac:/ext:Name, got {step!r}")
        out.append(clark(PREFIXES[prefix], local))
    return "/".join(out)


def split_clark(tag: str) -> tuple[str | None, str]:
    """Split ``{namespace}local`` into ``(namespace, local)``; ``(None, tag)`` without one."""
    if tag.startswith("{"):
        namespace, _, local = tag[1:].partition("}")
        return namespace, local
    return None, tag
