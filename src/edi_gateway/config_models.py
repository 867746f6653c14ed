"""The typed shape of gateway.yaml: frozen pydantic v2 models that refuse unknown keys.

Relative paths (folder connectors, the SQLite file) are resolved against the folder of the
config file, which :func:`edi_gateway.config.load_config` passes in the validation context as
``base_dir``; without a context they resolve against the current directory.

Adding a connector type (sftp, as2, email, amqp) is one class here with ``type: Literal[...]``
added to :data:`Connector`; the loader, error messages and ``Settings.connector`` follow.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from decimal import Decimal
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from edi_gateway.domain.documents import DocumentKind
from edi_gateway.errors import ConfigError

_SLUG = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
_ICD = re.compile(r"^[0-9]{4}$")
_SQLITE = "sqlite:///"
_STORE_SCHEMES = ("sqlite://", "postgresql://", "postgresql+psycopg://")


def _base_dir(info: ValidationInfo) -> Path:
    context = info.context if isinstance(info.context, dict) else {}
    base = context.get("base_dir")
    return Path(base) if base is not None else Path.cwd()


def _check_slug(value: str) -> str:
    if not _SLUG.match(value):
        raise ValueError(
            f"found {value!r}, expected a slug: lower-case letters, digits, '-' or '_', "
            "starting with a letter or digit, at most 64 characters"
        )
    return value


def _check_icd(value: Any) -> Any:
    if isinstance(value, str) and _ICD.match(value):
        return value
    raise ValueError(
        f"found {value!r}, expected a 4-digit ISO 6523 ICD as a quoted string, such as '0088'"
    )


def _check_id_value(value: Any) -> Any:
    if isinstance(value, str) and value.strip():
        return value.strip()
    raise ValueError(
        f"found {value!r}, expected the identifier as a quoted string, such as '7300010000001' "
        "(unquoted digits are read as a number and may lose leading zeros)"
    )


def _resolve_path(value: Path, info: ValidationInfo) -> Path:
    path = value.expanduser()
    return path if path.is_absolute() else (_base_dir(info) / path).resolve()


Slug = Annotated[str, AfterValidator(_check_slug)]
ConfigPath = Annotated[Path, AfterValidator(_resolve_path)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PeppolId(_Model):
    """An identifier with its ISO 6523 ICD scheme, e.g. ``0088`` + a GLN."""

    scheme: Annotated[str, BeforeValidator(_check_icd)]
    value: Annotated[str, BeforeValidator(_check_id_value)]

    def key(self) -> str:
        """``scheme:value``, the same text as ``domain.documents.PartyId.key()``."""
        return f"{self.scheme}:{self.value}"


class StoreSettings(_Model):
    """Where the message store lives: a SQLite file (default) or a PostgreSQL URL."""

    url: str = Field(default="sqlite:///gateway.db", validate_default=True)

    @field_validator("url")
    @classmethod
    def _resolve_sqlite(cls, value: str, info: ValidationInfo) -> str:
        if not value.startswith(_STORE_SCHEMES):
            raise ValueError(
                f"found {value!r}, expected sqlite:///FILE or postgresql+psycopg://USER@HOST/DB"
            )
        if not value.startswith(_SQLITE):
            return value
        file, sep, query = value[len(_SQLITE) :].partition("?")
        if not file or file == ":memory:" or file.startswith("/"):
            return value
        return f"{_SQLITE}{(_base_dir(info) / file).resolve()}{sep}{query}"


class IntakeSettings(_Model):
    """Limits and policies applied when a payload arrives."""

    max_size_mb: int = Field(default=64, ge=1, le=2048)
    unknown_partner: Literal["reject", "accept"] = "reject"
    batch_size: int = Field(default=200, ge=1, le=10000)


_COUNTRY = re.compile(r"^[A-Z]{2}$")


def _check_country(value: Any) -> Any:
    if isinstance(value, str) and _COUNTRY.match(value.strip()):
        return value.strip()
    raise ValueError(f"found {value!r}, expected an ISO 3166-1 alpha-2 country code such as 'NL'")


class LegalId(_Model):
    """A legal registration number, optionally with its ISO 6523 ICD (``0106`` = Dutch KVK)."""

    value: Annotated[str, BeforeValidator(_check_id_value)]
    scheme: Annotated[str, BeforeValidator(_check_icd)] | None = None


class LegalProfile(_Model):
    """What an invoice must say about a party: legal name, address, tax and bank details.

    The supplier's profile fills the seller of every invoice the gateway issues; a buyer's
    profile completes what its orders leave out (address, VAT number).
    """

    registration_name: str
    company_id: LegalId | None = None
    vat_id: str | None = None
    """With its country prefix, e.g. ``NL123456789B01`` (EN 16931 BR-CO-09)."""
    street: str | None = None
    city: str | None = None
    postal_zone: str | None = None
    country: Annotated[str, BeforeValidator(_check_country)]
    iban: str | None = None
    bic: str | None = None
    payment_terms: str | None = None
    default_vat_category: Literal["S", "Z", "E", "AE", "K", "G", "O", "L", "M"] = "S"
    default_vat_rate: Annotated[Decimal, Field(ge=0, le=100)] | None = None
    """Percent, e.g. ``25``; needed on a supplier invoicing lines of a rated category."""


_FORMATS = ("ubl", "xlsx", "pdf", "csv")
_LAYOUT = re.compile(r"^layout:([a-z0-9][a-z0-9_-]{0,63})$")
_HHMM = re.compile(r"^([01][0-9]|2[0-3]):[0-5][0-9]$")
FILE_PLACEHOLDERS = ("supplier", "order", "buyer", "date", "seq", "format", "ext")
BUNDLE_PLACEHOLDERS = ("supplier", "date", "seq", "ext")


def _check_format(value: Any) -> Any:
    if isinstance(value, str) and (value in _FORMATS or _LAYOUT.match(value)):
        return value
    raise ValueError(
        f"found {value!r}, expected one of {', '.join(_FORMATS)} or layout:NAME "
        "(a layout in mappings/<supplier id>/)"
    )


def _check_clock(value: Any) -> Any:
    if isinstance(value, str) and _HHMM.match(value):
        return value
    raise ValueError(f"found {value!r}, expected a quoted UTC time HH:MM such as '08:00'")


def pattern_problem(pattern: str, allowed: tuple[str, ...]) -> str | None:
    """Why a file-name pattern is unusable (unknown placeholder, no ``{ext}``...), else None."""
    import string
    from datetime import date

    try:
        fields = [name for _, name, _, _ in string.Formatter().parse(pattern) if name is not None]
        sample = dict.fromkeys(allowed, "x") | {"seq": 1, "date": date(2026, 1, 1)}
        unknown = [f for f in fields if f not in allowed]
        if not unknown:
            pattern.format(**sample)
    except (ValueError, IndexError, KeyError) as exc:
        return f"found {pattern!r}, expected a pattern with {{placeholders}} ({exc})"
    if unknown:
        return f"found {{{unknown[0]}}} in {pattern!r}, expected only " + ", ".join(
            f"{{{a}}}" for a in allowed
        )
    if "ext" not in fields:
        return f"found {pattern!r}, expected it to contain {{ext}} (the file extension)"
    if "/" in pattern or "\\" in pattern:
        return f"found {pattern!r}, expected a file name without folders"
    return None


class ForwardProfile(_Model):
    """How orders to this supplier are forwarded: formats, bundling, schedule, names, hold."""

    formats: list[Annotated[str, BeforeValidator(_check_format)]] = Field(
        default_factory=lambda: ["ubl"], min_length=1
    )
    """``ubl`` (the order's bytes unchanged), ``xlsx``, ``pdf``, ``csv``, ``layout:NAME``."""
    bundle: Literal["none", "zip", "workbook", "csv"] = "none"
    """``none``: every order at once; else one zip / workbook / CSV per supplier per flush."""
    every_minutes: int | None = Field(default=None, ge=1, le=10080)
    """Flush at every multiple of N minutes (UTC; 30 = at :00 and :30)."""
    at: list[Annotated[str, BeforeValidator(_check_clock)]] = Field(default_factory=list)
    """Flush at these UTC times of day, ``HH:MM``."""
    when_waiting: int | None = Field(default=None, ge=1, le=100000)
    """Flush as soon as this many orders wait."""
    filename: str = "{supplier}-{order}-{format}.{ext}"
    """One order's file (alone, or a member of a zip)."""
    bundle_filename: str = "{supplier}-{date}-{seq:04d}.{ext}"
    """A bundle's file: ``{order}``, ``{buyer}`` and ``{format}`` are not known there."""
    connector: Slug | None = None
    """The outbound connector; default: the partner's ``outbound``."""
    hold: bool = False
    """Orders wait until an operator releases them (``edi-gateway orders release ORDER``)."""
    mappings: ConfigPath = Field(default=Path("mappings"), validate_default=True)
    """The folder holding ``<supplier id>/`` with this supplier's layouts."""
    csv_delimiter: str = Field(default=";", min_length=1, max_length=1)
    csv_encoding: str = "utf-8-sig"

    @field_validator("filename")
    @classmethod
    def _file_pattern(cls, value: str) -> str:
        problem = pattern_problem(value, FILE_PLACEHOLDERS)
        if problem:
            raise ValueError(problem)
        return value

    @field_validator("bundle_filename")
    @classmethod
    def _bundle_pattern(cls, value: str) -> str:
        problem = pattern_problem(value, BUNDLE_PLACEHOLDERS)
        if problem:
            raise ValueError(problem)
        return value

    @field_validator("csv_encoding")
    @classmethod
    def _codec(cls, value: str) -> str:
        import codecs

        try:
            codecs.lookup(value)
        except LookupError:
            raise ValueError(f"found {value!r}, expected an encoding such as utf-8-sig") from None
        return value

    @model_validator(mode="after")
    def _bundle_rules(self) -> ForwardProfile:
        scheduled = self.every_minutes is not None or self.at or self.when_waiting is not None
        repeated = [f for i, f in enumerate(self.formats) if f in self.formats[:i]]
        if repeated:
            raise ValueError(f"formats: found {repeated[0]!r} twice, expected each format once")
        if self.bundle == "none" and scheduled:
            raise ValueError(
                "found a schedule (every_minutes, at, when_waiting) with bundle: none, expected "
                "none: unbundled orders go at once; set bundle: zip | workbook | csv to batch them"
            )
        if self.bundle != "none" and not scheduled:
            raise ValueError(
                f"bundle: {self.bundle} needs a schedule, expected every_minutes, at or "
                "when_waiting (any combination)"
            )
        single = {"workbook": "xlsx or one Excel column-map layout", "csv": "csv"}
        first = self.formats[0]
        fits = {
            "workbook": len(self.formats) == 1 and (first == "xlsx" or first.startswith("layout:")),
            "csv": self.formats == ["csv"],
        }
        if self.bundle in single and not fits[self.bundle]:
            raise ValueError(
                f"bundle: {self.bundle} sends one file of all orders, found formats "
                f"{self.formats}, expected [{single[self.bundle]}]"
            )
        return self


class Partner(_Model):
    """A trading partner, recognised by its Peppol endpoint and identifiers."""

    id: Slug
    name: str
    role: Literal["buyer", "supplier", "both"]
    endpoint: PeppolId
    identifiers: list[PeppolId] = Field(default_factory=list)
    peppol_validation: bool = False
    language: str = "en"
    options: dict[str, str | int | bool] = Field(default_factory=dict)
    outbound: Slug | None = None
    """The outbound connector that documents for this partner go through."""
    auto_response: Literal["none", "acknowledge", "accept"] = "none"
    """Answer every order from (buyer) or to (supplier) this partner on receipt: AB or AP."""
    forward: ForwardProfile | None = None
    """How orders to this supplier are forwarded to it; none = not forwarded."""
    relay_replies: bool = False
    """Pass this supplier's Order Responses and Despatch Advices (UBL or its own layout) on to
    the buyer as Peppol UBL through the buyer's outbound connector."""
    legal: LegalProfile | None = None
    """Legal name, address, VAT and bank details: needed to invoice as or to this partner."""
    debit_note_as: Literal["invoice", "debitnote"] = "invoice"
    """A debit note to this partner: a Peppol Invoice 383, or a UBL DebitNote (non-Peppol)."""

    def keys(self) -> list[str]:
        """``scheme:value`` of the endpoint, then of each identifier, without repeats."""
        return list(dict.fromkeys([self.endpoint.key(), *(i.key() for i in self.identifiers)]))


class FolderConnector(_Model):
    """A local (or mounted) folder: inbound polls ``path``, outbound writes files into it."""

    name: Slug
    type: Literal["folder"]
    direction: Literal["in", "out"]
    path: ConfigPath
    archive: ConfigPath | None = Field(default=None, validate_default=True)
    error: ConfigPath | None = Field(default=None, validate_default=True)
    pattern: str = "*.xml"
    every_seconds: float = Field(default=10, gt=0, le=86400)
    partner: Slug | None = None
    replies: dict[str, Slug] = Field(default_factory=dict)
    """Supplier replies in the supplier's own layout: file-name pattern -> column map name in
    ``mappings/<partner>/replies/<name>.yaml``; files matching no pattern are read as UBL."""

    @field_validator("archive", "error")
    @classmethod
    def _default_beside_path(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        direction, path, name = (info.data.get(k) for k in ("direction", "path", "name"))
        if direction == "out":
            if value is not None:
                raise ValueError(
                    f"found {value}, expected no {info.field_name} folder: only inbound "
                    "connectors (direction: in) have one"
                )
            return None
        if value is None and isinstance(path, Path) and isinstance(name, str):
            return path.parent / str(info.field_name) / name
        return value


# A discriminated union on `type`: add SftpConnector etc. here as `FolderConnector | Sftp...`.
Connector = Annotated[FolderConnector, Field(discriminator="type")]


class RouteMatch(_Model):
    """Which documents a route applies to; an empty match applies to every document."""

    sender: Slug | None = None
    kinds: list[DocumentKind] = Field(default_factory=list)
    connector: Slug | None = None


class Route(_Model):
    """Forward matching documents to a supplier through an outbound connector."""

    name: Slug
    match: RouteMatch = Field(default_factory=RouteMatch)
    deliver_to: Slug
    via: Slug


class Settings(_Model):
    """Everything gateway.yaml says, validated. ``path`` is the file it was read from."""

    path: Path
    store: StoreSettings = Field(default_factory=StoreSettings)
    intake: IntakeSettings = Field(default_factory=IntakeSettings)
    partners: list[Partner] = Field(default_factory=list)
    connectors: list[Connector] = Field(default_factory=list)
    routes: list[Route] = Field(default_factory=list)

    @cached_property
    def _partner_index(self) -> dict[str, Partner]:
        return {key: p for p in self.partners for key in Partner.keys(p)}

    @cached_property
    def _connector_index(self) -> dict[str, FolderConnector]:
        return {c.name: c for c in self.connectors}

    def partner_by_key(self, keys: Iterable[str]) -> Partner | None:
        """The partner known by the first of ``keys`` that any partner has, else ``None``."""
        index = self._partner_index
        return next((index[k] for k in keys if k in index), None)

    def partner(self, partner_id: str) -> Partner | None:
        """The partner with this ``id``, else ``None``."""
        return next((p for p in self.partners if p.id == partner_id), None)

    def connector(self, name: str) -> FolderConnector:
        """The connector called ``name``; ConfigError naming the known ones if there is none."""
        found = self._connector_index.get(name)
        if found is None:
            known = ", ".join(sorted(self._connector_index)) or "none"
            raise ConfigError(f"{self.path}: no connector named {name!r}; known: {known}")
        return found

    @model_validator(mode="before")
    @classmethod
    def _store_default_in_context(cls, data: Any) -> Any:
        # a default_factory would build StoreSettings without the context (so without base_dir)
        return {"store": {}, **data} if isinstance(data, dict) else data

    @model_validator(mode="after")
    def _cross_check(self) -> Settings:
        problems = [*_unique_problems(self), *_reference_problems(self), *_forward_problems(self)]
        if problems:
            raise ValueError("\n".join(problems))
        return self


def _unique_problems(s: Settings) -> list[str]:
    problems: list[str] = []
    for section, names in (
        ("partners", [p.id for p in s.partners]),
        ("connectors", [c.name for c in s.connectors]),
        ("routes", [r.name for r in s.routes]),
    ):
        for i, name in enumerate(names):
            if name in names[:i]:
                key = "id" if section == "partners" else "name"
                problems.append(f"{section}[{i}].{key}: found {name!r} again, expected unique")
    owner: dict[str, str] = {}
    for i, partner in enumerate(s.partners):
        for key in Partner.keys(partner):
            if owner.setdefault(key, partner.id) != partner.id:
                problems.append(
                    f"partners[{i}]: identifier {key!r} is also used by partner "
                    f"{owner[key]!r}, expected each identifier to belong to one partner"
                )
    return problems


def _reference_problems(s: Settings) -> list[str]:
    partners = {p.id: p for p in s.partners}
    conns = {c.name: c for c in s.connectors}
    known_p = "a partner id: " + (", ".join(partners) or "none defined")
    problems: list[str] = []

    def connector_ref(where: str, name: str | None, direction: str) -> None:
        if name is None:
            return
        conn = conns.get(name)
        if conn is None or conn.direction != direction:
            wanted = ", ".join(n for n, c in conns.items() if c.direction == direction)
            kind = "inbound" if direction == "in" else "outbound"
            problems.append(
                f"{where}: found {name!r}, expected an {kind} connector: {wanted or 'none defined'}"
            )

    for i, p in enumerate(s.partners):
        connector_ref(f"partners[{i}].outbound", p.outbound, "out")
    for i, c in enumerate(s.connectors):
        problems += _reply_map_problems(s, i, c, partners)
        if c.partner is not None and c.partner not in partners:
            problems.append(f"connectors[{i}].partner: found {c.partner!r}, expected {known_p}")
    for i, r in enumerate(s.routes):
        where = f"routes[{i}]"
        if r.match.sender is not None and r.match.sender not in partners:
            problems.append(f"{where}.match.sender: found {r.match.sender!r}, expected {known_p}")
        target = partners.get(r.deliver_to)
        if target is None or target.role == "buyer":
            suppliers = ", ".join(p.id for p in s.partners if p.role != "buyer") or "none"
            problems.append(
                f"{where}.deliver_to: found {r.deliver_to!r}, expected a supplier: {suppliers}"
            )
        connector_ref(f"{where}.match.connector", r.match.connector, "in")
        connector_ref(f"{where}.via", r.via, "out")
    return problems


def _forward_problems(s: Settings) -> list[str]:
    outbound = ", ".join(c.name for c in s.connectors if c.direction == "out") or "none defined"
    problems: list[str] = []
    for i, p in enumerate(s.partners):
        if p.forward is None:
            continue
        where = f"partners[{i}].forward"
        if p.role == "buyer":
            problems.append(f"{where}: found on buyer {p.id!r}, expected role supplier or both")
        name = p.forward.connector or p.outbound
        conn = next((c for c in s.connectors if c.name == name), None)
        if name is None or conn is None or conn.direction != "out":
            problems.append(
                f"{where}.connector: found {name!r}, expected an outbound connector here or in "
                f"partners[{i}].outbound: {outbound}"
            )
        layouts = [f for f in p.forward.formats if f.startswith("layout:")]
        if layouts:
            from edi_gateway.outbound.layout import layout_problem

            workbook = p.forward.bundle == "workbook"
            for j, fmt in enumerate(p.forward.formats):
                if fmt in layouts:
                    problem = layout_problem(
                        p.forward.mappings, p.id, fmt.removeprefix("layout:"), workbook=workbook
                    )
                    if problem:
                        problems.append(f"{where}.formats[{j}]: {problem}")
    return problems


def reply_map_path(settings_path: Path, partner: str, name: str) -> Path:
    """Where the column map ``name`` of supplier ``partner`` lives."""
    return settings_path.parent / "mappings" / partner / "replies" / f"{name}.yaml"


def _reply_map_problems(
    s: Settings, i: int, c: FolderConnector, partners: dict[str, Partner]
) -> list[str]:
    if not c.replies:
        return []
    where = f"connectors[{i}].replies"
    owner = partners.get(c.partner or "")
    if c.direction != "in" or owner is None or owner.role == "buyer":
        return [
            f"{where}: found reply maps, expected them only on an inbound connector whose "
            "partner is a supplier (set connectors[].partner)"
        ]
    from edi_gateway.errors import ConfigError
    from edi_gateway.replies import load_map

    problems: list[str] = []
    for pattern, name in c.replies.items():
        path = reply_map_path(s.path, owner.id, name)
        if not path.is_file():
            problems.append(f"{where}.{pattern}: found {name!r}, expected a map file {path}")
            continue
        try:
            load_map(path)
        except ConfigError as exc:
            problems.append(f"{where}.{pattern}: {exc.message}")
    return problems
