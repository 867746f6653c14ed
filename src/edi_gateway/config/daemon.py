"""The ``daemon:`` section of gateway.yaml: how ``edi-gateway run`` serves, logs and backs off.

Every key is optional; without the section the daemon logs text, serves no HTTP endpoint,
flushes the outbox every 5 seconds and backs off failing connectors from 5 s up to 5 minutes.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from edi_gateway.config.base import _Model
from edi_gateway.config.where import LEASE_SECONDS

__all__ = ["BackoffSettings", "ConsoleSettings", "DaemonSettings", "HttpSettings"]


class ConsoleSettings(_Model):
    """The web console's sessions and sign-in limits (docs/adr/0031)."""

    session_idle_minutes: float = Field(default=480, gt=0, le=10080)
    """A session unused this long ends (default 8 hours)."""
    session_max_hours: float = Field(default=24, gt=0, le=720)
    """A session ends this long after sign-in, however much it is used."""
    secure_cookie: bool = False
    """Mark the session cookie ``Secure`` (sent over HTTPS only): set it when a TLS proxy
    serves the console."""
    login_failures: int = Field(default=5, ge=1, le=1000)
    """Failed sign-ins borne per user name and address (or device) within ``login_window_minutes``;
    past them sign-in is refused (LOGIN_THROTTLED) until the window has passed."""
    login_window_minutes: float = Field(default=15, gt=0, le=1440)
    login_failures_per_user: int = Field(default=20, ge=1, le=100000)
    """Failed sign-ins borne per user name within ``login_window_minutes`` from all clients
    without that user's device cookie together, whatever their address; past them such
    clients are refused for that name, while a browser that signed in as the user before
    still can (docs/adr/0047)."""


class HttpSettings(_Model):
    """Where ``/healthz``, ``/metrics`` and the web console are served (plain HTTP: keep it on
    a private interface or behind a TLS proxy)."""

    host: str = "127.0.0.1"
    """The address to listen on: 127.0.0.1 (this machine only) or 0.0.0.0 (in a container)."""
    port: int = Field(default=9464, ge=1, le=65535)
    """The TCP port (9464 is the port commonly used for Prometheus exporters of this kind)."""
    console: ConsoleSettings = Field(default_factory=ConsoleSettings)
    """The web console on the same port: sessions and sign-in limits."""


class BackoffSettings(_Model):
    """How long a failing connector waits before it is tried again."""

    initial_seconds: float = Field(default=5, gt=0, le=3600)
    """After the first failure; doubled after each further failure in a row."""
    max_seconds: float = Field(default=300, gt=0, le=86400)
    """The longest wait after a recoverable failure (a dropped connection, a server away)."""
    not_recoverable_seconds: float = Field(default=900, gt=0, le=86400)
    """The wait after a failure an operator must fix (bad credentials, a wrong host key)."""

    @model_validator(mode="after")
    def _ordered(self) -> BackoffSettings:
        if self.max_seconds < self.initial_seconds:
            raise ValueError(
                f"found max_seconds {self.max_seconds} below initial_seconds "
                f"{self.initial_seconds}, expected max_seconds >= initial_seconds"
            )
        return self


class DaemonSettings(_Model):
    """``edi-gateway run``: health and metrics endpoint, log format, outbox cadence, backoff."""

    http: HttpSettings | None = None
    """Serve ``/healthz`` (JSON) and ``/metrics`` (Prometheus text); none = no endpoint."""
    log_format: Literal["text", "json"] = "text"
    """``json``: one JSON object per line on stderr (for a log shipper); ``--log-format``
    overrides it."""
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    """What ``run`` (without ``--once``) logs; ``info`` logs every message taken and sent."""
    outbox_every_seconds: float = Field(default=5, gt=0, le=86400)
    """How often due outbox rows and supplier bundles are delivered (also after every poll
    that took messages); each supplier's bundling schedule still decides when a bundle is due."""
    backoff: BackoffSettings = Field(default_factory=BackoffSettings)
    lease_seconds: float = Field(default=LEASE_SECONDS[1], ge=LEASE_SECONDS[0], le=LEASE_SECONDS[2])
    """How long a gateway's leases last (renewed every third of it): when a gateway sharing a
    PostgreSQL store dies, another takes over its connectors and unfinished messages within
    about this long (docs/adr/0018); a transaction idle this long is ended by PostgreSQL."""
