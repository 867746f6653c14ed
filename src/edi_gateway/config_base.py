"""Shared pieces of the gateway.yaml models: the strict base model and the value checks."""

from __future__ import annotations

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
)

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
