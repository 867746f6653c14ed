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


class ConnectorBase(_Model):
    """What every connector has: a name, a direction, when it is polled and for whom."""

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
