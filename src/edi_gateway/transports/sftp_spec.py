"""Connector model of a folder on a partner's SFTP server (``type: sftp``); the transport is
:mod:`.sftp`. A light module: loading a config imports it, not paramiko."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator, model_validator

from edi_gateway.config.base import ConfigPath, ConnectorBase, Secret, Slug

__all__ = ["SftpConnector"]

_FINGERPRINT = re.compile(r"^SHA256:[A-Za-z0-9+/]{43}$")


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

    @property
    def exchange_seconds(self) -> float:
        """Connect, then the I/O timeout (``ConnectorBase.exchange_seconds``)."""
        return self.connect_timeout + self.timeout

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
