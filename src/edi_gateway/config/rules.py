"""Where the official rule releases are installed, and which one is used."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, field_validator

from edi_gateway.config.base import ConfigPath, _Model
from edi_gateway.rules.catalog import RELEASES


class RulesSettings(_Model):
    """``rules:`` in gateway.yaml: ``dir`` holds what ``edi-gateway rules install`` installed
    (default ``rules/`` beside gateway.yaml); ``release`` pins one, else the newest is used."""

    dir: ConfigPath = Field(default=Path("rules"), validate_default=True)
    release: str | None = None

    @field_validator("release")
    @classmethod
    def _known(cls, value: str | None) -> str | None:
        if value is not None and value not in RELEASES:
            raise ValueError(f"found {value!r}, expected one of {', '.join(RELEASES)}")
        return value
