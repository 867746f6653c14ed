"""Shared pieces of the gateway.yaml models: the strict base model, the value checks, secret
references (:class:`Secret`) and what every connector has (:class:`ConnectorBase`)."""

from __future__ import annotations

import os
import re
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

from edi_gateway.config.where import STORE_URL, store_url
from edi_gateway.errors import ConfigError

_SLUG = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
_ICD = re.compile(r"^[0-9]{4}$")
ICD_CODES = frozenset(
    {f"{n:04d}" for n in range(2, 221)} - {"0092", "0103", "0181", "0182"}
    | {"9901", "9910", "9913", "9914", "9915", "9918", "9919", "9920", "9955", "9957", "9959"}
    | {f"{n:04d}" for n in range(9922, 9954)}
)
"""The ISO 6523 ICD codes assigned (0002-0220, as the EN 16931 / Peppol code lists publish
them) and the Peppol EAS codes in the 99xx range, the schemes a Peppol participant ID uses."""


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
        if value not in ICD_CODES:
            raise ValueError(
                f"found {value!r}, which is not an ISO 6523 ICD (nor a Peppol EAS code), "
                "expected one such as '0088' (GLN), '0192' (Norwegian organisation number) or "
                "'0106' (Dutch KVK)"
            )
        return value
    raise ValueError(
        f"found {value!r}, expected a 4-digit ISO 6523 ICD as a quoted string, such as '0088'"
        + _octal_hint(value)
    )


def _octal_hint(value: Any) -> str:
    """For a number YAML read from an unquoted ICD with a leading zero (``0060`` -> 48)."""
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        return ""
    written = f"0{value:o}".rjust(4, "0")
    if written not in ICD_CODES:
        return ""
    return (
        f"; YAML reads an unquoted {written} as the octal number {value}: "
        f"write scheme: '{written}' (quoted)"
    )


def _check_id_value(value: Any) -> Any:
    if isinstance(value, str) and value.strip():
        return value.strip()
    raise ValueError(
        f"found {value!r}, expected the identifier as a quoted string, such as '7300010000001' "
        "(unquoted digits are read as a number and may lose leading zeros)"
    )


def _check_participant_value(value: Any) -> Any:
    if isinstance(value, str) and any(c.isspace() for c in value):
        raise ValueError(
            f"found {value!r}, expected an identifier without spaces or other whitespace "
            "(Peppol compares participant IDs character by character)"
        )
    return _check_id_value(value)


def gln_problem(value: str) -> str | None:
    """Why ``value`` is not a GLN (13 digits, the last a GS1 check digit), or None."""
    if not (len(value) == 13 and value.isdigit()):
        return f"found {value!r}, expected a GLN of 13 digits for scheme 0088"
    digits = [int(c) for c in value]
    total = sum(d * (3 if i % 2 else 1) for i, d in enumerate(digits[:12]))
    check = (10 - total % 10) % 10
    if digits[12] != check:
        return (
            f"found {value!r}, whose GS1 check digit should be {check}, not {digits[12]}: "
            "a typing error? Check the GLN with the partner"
        )
    return None


def _resolve_path(value: Path, info: ValidationInfo) -> Path:
    from edi_gateway.config.cache import expanded, resolved

    path = expanded(value)
    return path if path.is_absolute() else resolved(_base_dir(info) / path)


Slug = Annotated[str, AfterValidator(_check_slug)]
ConfigPath = Annotated[Path, AfterValidator(_resolve_path)]


class _Model(BaseModel):
    """Strict and frozen. ``defer_build``: a model builds its validator when first used, not
    when its class is defined, so a command pays only for the models its config holds (the
    config's import went from ~0.14 s to ~0.08 s CPU; its first validation from 1 to ~16 ms)."""

    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)


class PeppolId(_Model):
    """An identifier with its ISO 6523 ICD scheme, e.g. ``0088`` + a GLN."""

    scheme: Annotated[str, BeforeValidator(_check_icd)]
    value: Annotated[str, BeforeValidator(_check_participant_value)]

    @field_validator("value")
    @classmethod
    def _gln(cls, value: str, info: ValidationInfo) -> str:
        problem = gln_problem(value) if info.data.get("scheme") == "0088" else None
        if problem:
            raise ValueError(problem)
        return value

    def key(self) -> str:
        """``scheme:value``, the same text as ``domain.documents.PartyId.key()``."""
        return f"{self.scheme}:{self.value}"


class IntakeSettings(_Model):
    """Limits and policies applied when a payload arrives."""

    max_size_mb: int = Field(default=64, ge=1, le=2048)
    unknown_partner: Literal["reject", "accept"] = "reject"
    batch_size: int = Field(default=200, ge=1, le=10000)


class Secret(_Model):
    """A secret by reference: ``{env: NAME}`` or ``{file: PATH}`` (exactly one).

    The value is read only when needed, so a config can be validated on a machine that does not
    hold the secrets; a missing variable or file is a ConfigError naming it.
    """

    env: str | None = None
    file: ConfigPath | None = None

    @model_validator(mode="before")
    @classmethod
    def _a_reference(cls, data: Any) -> Any:
        if not isinstance(data, dict):  # never echo it: it may be the secret itself
            raise ValueError(
                "expected {env: VARIABLE} or {file: PATH}: secrets are never written in "
                "gateway.yaml itself (the value found is not repeated here)"
            )
        return data

    @model_validator(mode="after")
    def _exactly_one(self) -> Secret:
        if (self.env is None) == (self.file is None):
            raise ValueError(
                "expected exactly one of env: VARIABLE or file: PATH (secrets are never "
                "written in gateway.yaml itself)"
            )
        return self

    def value(self) -> str:
        """The secret's text (a file's trailing newline removed)."""
        if self.env is not None:
            found = os.environ.get(self.env)
            if found is None:
                raise ConfigError(f"secret: environment variable {self.env} is not set")
            return found
        assert self.file is not None
        try:
            return Path(self.file).read_text(encoding="utf-8").rstrip("\r\n")
        except OSError as exc:
            raise ConfigError(f"secret: cannot read {self.file}: {exc.strerror}") from exc


class StoreSettings(_Model):
    """Where the message store lives: a SQLite file (default) or a PostgreSQL URL, whose
    password is a secret reference (``password: {env: NAME}`` or ``{file: PATH}``)."""

    url: str = Field(default=STORE_URL, validate_default=True)
    password: Secret | None = None

    @field_validator("url")
    @classmethod
    def _resolve_sqlite(cls, value: str, info: ValidationInfo) -> str:
        return store_url(value, _base_dir(info))

    def connect_url(self) -> str:
        """``url`` with the password from ``password`` (read now) put in."""
        if self.password is None:
            return self.url
        from sqlalchemy.engine import make_url

        with_password = make_url(self.url).set(password=self.password.value())
        return with_password.render_as_string(hide_password=False)


class ConnectorBase(_Model):
    """What every connector has: a name, a direction, when it is polled and for whom."""

    # dumped as the class it is (its `type`'s model) wherever a field says ConnectorBase; it was
    # SerializeAsAny on the field, whose module cost every config load ~2 ms (docs/adr/0041)
    model_config = ConfigDict(polymorphic_serialization=True)

    name: Slug
    type: str
    """Each connector class narrows this to its own ``Literal``."""
    direction: Literal["in", "out"]
    every_seconds: float = Field(default=10, gt=0, le=86400)
    """Inbound: seconds between polls."""
    cron: str | None = None
    """Inbound, instead of ``every_seconds``: poll at the times of this five-field cron
    expression, in UTC (``"*/5 * * * *"``, ``"0 6 * * MON-FRI"``); see edi_gateway/cron.py."""
    partner: Slug | None = None
    replies: dict[str, Slug] = Field(default_factory=dict)
    """Supplier replies in the supplier's own layout: file-name pattern -> column map name in
    ``mappings/<partner>/replies/<name>.yaml``; files matching no pattern are read as UBL."""

    @property
    def exchange_seconds(self) -> float:
        """The longest one exchange with the partner through this connector may take (its
        connect and I/O timeouts added); 0 for one that sets none (a folder). A delivery keeps
        its outbox row locked that much longer than the gateway's lease (docs/adr/0018)."""
        return 0.0

    def partner_refs(self) -> list[tuple[str, str]]:
        """(where in the connector, partner id) of every partner its settings name besides
        ``partner``; the config check wants each to be a ``partners[].id``."""
        return []

    @field_validator("cron")
    @classmethod
    def _cron_expression(cls, value: str | None) -> str | None:
        from edi_gateway.cron import cron_problem

        problem = None if value is None else cron_problem(value)
        if problem:
            raise ValueError(problem)
        return value

    @model_validator(mode="after")
    def _one_schedule(self) -> ConnectorBase:
        if self.cron is None:
            return self
        if "every_seconds" in self.model_fields_set:
            raise ValueError(
                "every_seconds and cron are both given, expected one schedule: "
                "every_seconds: N (seconds between polls) or cron: 'EXPR' (UTC)"
            )
        if self.direction == "out":
            raise ValueError(
                "cron is for inbound connectors (direction: in); outbound deliveries "
                "follow the outbox (daemon.outbox_every_seconds)"
            )
        return self
