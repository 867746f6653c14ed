"""Connector models of gateway.yaml: folder and SFTP here, the others beside their transports
(:mod:`edi_gateway.transports.email_spec`, :mod:`~edi_gateway.transports.amqp_spec`,
:mod:`~edi_gateway.transports.http_spec`), and the :data:`Connector` union.

Every connector shares :class:`~edi_gateway.config.base.ConnectorBase` (name, direction,
schedule, partner, reply layouts). Secrets (passwords, private keys, tokens) are never written in
the YAML: a :class:`~edi_gateway.config.base.Secret` names an environment variable or a file,
read when the connector opens. Adding a type: one class with ``type: Literal[...]``, added to
:data:`Connector` below.
"""

from __future__ import annotations

import importlib
import re
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import (
    BeforeValidator,
    Field,
    SerializeAsAny,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from edi_gateway.config.base import ConfigPath, ConnectorBase, Secret, Slug

if TYPE_CHECKING:
    from edi_gateway.transports.amqp_spec import AmqpConnector
    from edi_gateway.transports.email_spec import ImapConnector, SmtpConnector
    from edi_gateway.transports.http_spec import As2Connector, HttpConnector

__all__ = [
    "CONNECTOR_TYPES",
    "Connector",
    "ConnectorBase",
    "FolderConnector",
    "Secret",
    "SftpConnector",
    "connector_model",
]

CONNECTOR_TYPES: dict[str, str] = {
    "folder": "edi_gateway.config.connectors:FolderConnector",
    "sftp": "edi_gateway.config.connectors:SftpConnector",
    "imap": "edi_gateway.transports.email_spec:ImapConnector",
    "smtp": "edi_gateway.transports.email_spec:SmtpConnector",
    "amqp": "edi_gateway.transports.amqp_spec:AmqpConnector",
    "as2": "edi_gateway.transports.http_spec:As2Connector",
    "http": "edi_gateway.transports.http_spec:HttpConnector",
}
"""``type:`` -> the model class (``module:Class``), imported when a config uses that type: each
pydantic model costs start-up time to build, and ``ingest`` should not pay for seven."""

_FINGERPRINT = re.compile(r"^SHA256:[A-Za-z0-9+/]{43}$")


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


class SftpConnector(ConnectorBase):
    """A directory on a partner's SFTP server: inbound polls ``path``, outbound uploads into it.

    Remote paths are POSIX paths on the server; relative ones start at the login directory.
    The server's host key must be pinned (``known_hosts`` or ``host_key_fingerprint``): an
    unknown or changed key refuses the connection, nothing is ever added automatically.
    """

    type: Literal["sftp"]
    host: str = Field(min_length=1)
    port: int = Field(default=22, ge=1, le=65535)
    username: str = Field(min_length=1)
    private_key: Secret | None = None
    """The client's private key (OpenSSH or PEM text): ``{file: PATH}`` or ``{env: NAME}``."""
    private_key_passphrase: Secret | None = None
    password: Secret | None = None
    """Tried after the key (or alone) when the server asks for a password."""
    known_hosts: ConfigPath | None = None
    """An OpenSSH known_hosts file holding the server's key (``[host]:port`` when not 22)."""
    host_key_fingerprint: str | None = None
    """The server's key as ``ssh-keygen -lf`` prints it: ``SHA256:`` + 43 base64 characters."""
    path: str = Field(min_length=1)
    """Inbound: the remote folder polled. Outbound: the remote folder written into."""
    pattern: str = "*.xml"
    ignore: list[str] = Field(default_factory=lambda: ["*.part", "*.tmp", ".*"])
    """Inbound: names never taken (files still being written under a temporary name)."""
    stable_seconds: float = Field(default=0, ge=0, le=3600)
    """Inbound: take a file only after two looks this many seconds apart saw the same size and
    time (0: rely on the temporary-name convention alone)."""
    claimed: str | None = None
    """Inbound: the remote folder files are renamed into when claimed (``<path>/.claimed``)."""
    claim_tag: Slug | None = None
    """Inbound: marks this gateway's claims (default: the connector name); give each gateway
    its own when several poll one remote folder."""
    archive: str | None = None
    """Inbound: the remote folder taken files are moved to after intake committed them."""
    delete: bool = False
    """Inbound: delete taken files instead of moving them to ``archive``."""
    error: str | None = None
    """Inbound: the remote folder failed files are moved to (default: as taken files)."""
    connect_timeout: float = Field(default=15, gt=0, le=600)
    timeout: float = Field(default=60, gt=0, le=3600)
    """Seconds one SFTP operation may take before the link counts as dead."""

    @field_validator("path", "claimed", "archive", "error")
    @classmethod
    def _remote_path(cls, value: str | None) -> str | None:
        if value is not None and ("\x00" in value or "\\" in value or not value.strip()):
            raise ValueError(
                f"found {value!r}, expected a POSIX path on the server such as /upload/orders"
            )
        return (value.rstrip("/") or "/") if value is not None else None

    @field_validator("host_key_fingerprint")
    @classmethod
    def _fingerprint(cls, value: str | None) -> str | None:
        if value is not None and not _FINGERPRINT.match(value.rstrip("=")):
            raise ValueError(
                f"found {value!r}, expected SHA256:<43 base64 characters> as printed by "
                "ssh-keygen -lf or ssh-keyscan HOST | ssh-keygen -lf -"
            )
        return value.rstrip("=") if value is not None else None

    @model_validator(mode="after")
    def _consistent(self) -> SftpConnector:
        if (self.known_hosts is None) == (self.host_key_fingerprint is None):
            raise ValueError(
                "expected exactly one of known_hosts: FILE or host_key_fingerprint: "
                "'SHA256:...' (the server's host key is always pinned)"
            )
        if self.private_key is None and self.password is None:
            raise ValueError("expected private_key: {file: PATH} and/or password: {env: NAME}")
        inbound_only = {"archive": self.archive, "error": self.error, "claimed": self.claimed}
        if self.direction == "out":
            given = [k for k, v in inbound_only.items() if v is not None] + (
                ["delete"] if self.delete else []
            )
            if given:
                raise ValueError(f"found {', '.join(given)}, expected none on direction: out")
        elif (self.archive is None) == (not self.delete):
            raise ValueError(
                "expected exactly one of archive: REMOTE_FOLDER or delete: true (what happens "
                "to a file on the server once the gateway has it)"
            )
        return self


def connector_model(kind: str) -> type[ConnectorBase] | None:
    """The model class of connector ``type: kind``, or None for an unknown type."""
    target = CONNECTOR_TYPES.get(kind)
    if target is None:
        return None
    module, name = target.split(":")
    model: type[ConnectorBase] = getattr(importlib.import_module(module), name)
    return model


def _by_type(value: Any, info: ValidationInfo) -> Any:
    """Validate one ``connectors:`` entry with the model its ``type`` names (a tagged union
    whose members are imported on demand; errors keep their locations inside the entry)."""
    if not isinstance(value, dict):
        return value  # ConnectorBase then reports "expected a mapping"
    kind = value.get("type")
    if kind is None:
        raise PydanticCustomError(
            "union_tag_not_found",
            "Unable to extract tag using discriminator {discriminator}",
            {"discriminator": "'type'"},
        )
    model = connector_model(kind) if isinstance(kind, str) else None
    if model is None:
        expected = ", ".join(repr(k) for k in CONNECTOR_TYPES)
        raise PydanticCustomError(
            "union_tag_invalid",
            "Input tag {tag} found using {discriminator} does not match any of the expected "
            "tags: {expected_tags}",
            {"discriminator": "'type'", "tag": str(kind), "expected_tags": expected},
        )
    return model.model_validate(value, context=info.context)


if TYPE_CHECKING:
    Connector = (
        FolderConnector
        | SftpConnector
        | ImapConnector
        | SmtpConnector
        | AmqpConnector
        | As2Connector
        | HttpConnector
    )
else:  # at run time: one entry validated (and dumped) as the class its `type` names
    Connector = Annotated[SerializeAsAny[ConnectorBase], BeforeValidator(_by_type)]
