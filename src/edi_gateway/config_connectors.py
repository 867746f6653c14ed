"""Connector models of gateway.yaml: one class per transport type, and :data:`Connector`.

Every connector shares :class:`ConnectorBase` (name, direction, schedule, partner, reply
layouts). Secrets (passwords, private keys, tokens) are never written in the YAML: a
:class:`Secret` names an environment variable or a file, read when the connector opens.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from edi_gateway.config_base import ConfigPath, Slug, _Model
from edi_gateway.errors import ConfigError

__all__ = ["Connector", "ConnectorBase", "FolderConnector", "Secret"]


class Secret(_Model):
    """A secret by reference: ``{env: NAME}`` or ``{file: PATH}`` (exactly one).

    The value is read only when needed, so a config can be validated on a machine that does not
    hold the secrets; a missing variable or file is a ConfigError naming it.
    """

    env: str | None = None
    file: ConfigPath | None = None

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
    partner: Slug | None = None
    replies: dict[str, Slug] = Field(default_factory=dict)
    """Supplier replies in the supplier's own layout: file-name pattern -> column map name in
    ``mappings/<partner>/replies/<name>.yaml``; files matching no pattern are read as UBL."""


class FolderConnector(ConnectorBase):
    """A local (or mounted) folder: inbound polls ``path``, outbound writes files into it."""

    type: Literal["folder"]
    path: ConfigPath
    archive: ConfigPath | None = Field(default=None, validate_default=True)
    error: ConfigPath | None = Field(default=None, validate_default=True)
    pattern: str = "*.xml"

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


# A discriminated union on `type`: add each new connector class here (`FolderConnector | ...`).
Connector = Annotated[FolderConnector, Field(discriminator="type")]
