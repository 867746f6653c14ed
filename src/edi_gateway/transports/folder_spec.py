"""Connector model of a local or mounted folder (``type: folder``); the transport is
:mod:`.folder`. A light module: loading a config imports it, not the transport."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationInfo, field_validator

from edi_gateway.config.base import ConfigPath, ConnectorBase

__all__ = ["FolderConnector"]


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
