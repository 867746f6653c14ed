"""``alerts:`` in gateway.yaml: how often operators hear about each cause, and the webhooks.

Mail alerts go to the ``to`` of every ``smtp`` connector whose ``notify:`` lists causes; webhooks
are listed here. Every cause is throttled: at most one alert per cause and channel per
``every_minutes``; what happens meanwhile waits and goes in the next digest (docs/adr/0033).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, GetCoreSchemaHandler, field_validator
from pydantic_core import CoreSchema

from edi_gateway.config.base import Secret, _Model

if TYPE_CHECKING:
    from pydantic import HttpUrl as WebhookUrl
else:

    class WebhookUrl:
        """``HttpUrl``, whose schema (so pydantic.networks, ~2 ms to import) is made when a
        Webhook is first validated: settings read from the cache (docs/adr/0041) without a
        webhook never import it. Same checks, errors and values as ``url: HttpUrl``."""

        @classmethod
        def __get_pydantic_core_schema__(
            cls, source: Any, handler: GetCoreSchemaHandler
        ) -> CoreSchema:
            from pydantic import HttpUrl

            return handler.generate_schema(HttpUrl)


Cause = Literal[
    "order.received",
    "message.failed",
    "delivery.failed",
    "delivery.overdue",
    "connector.down",
    "store.unavailable",
    "certificate.expiring",
    "sla.overdue",
]
CAUSES: tuple[str, ...] = Cause.__args__  # type: ignore[attr-defined]


class Webhook(_Model):
    """A JSON POST per digest to ``url``, signed with HMAC-SHA256 of ``secret``."""

    name: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.-]+$")
    url: WebhookUrl
    secret: Secret
    """Signs each POST: header ``X-Edi-Gateway-Signature: t=<unix time>,v1=<hex HMAC-SHA256 of
    "<t>.<body>">``, so the receiver can check origin and freshness."""
    causes: list[Cause] = Field(min_length=1)
    timeout_seconds: float = Field(default=10, gt=0, le=120)

    @field_validator("causes")
    @classmethod
    def _once(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError("found a cause listed twice, expected each at most once")
        return value


class AlertSettings(_Model):
    """``alerts:``: throttle, certificate warning period and webhooks."""

    every_minutes: float = Field(default=15, gt=0, le=7 * 24 * 60)
    """At most one alert per cause and channel in this many minutes (a digest of the rest)."""
    certificate_days: int = Field(default=30, ge=1, le=365)
    """Warn about a configured certificate this many days before it expires."""
    webhooks: list[Webhook] = Field(default_factory=list)
