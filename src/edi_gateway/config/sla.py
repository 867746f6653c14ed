"""``sla:`` of a partner: when its orders must be answered and despatched, and auto-approval.

Response due: the order's arrival plus ``response_hours`` by the order's urgency, read from
``cac:Delivery/cac:Shipment/cbc:ShippingPriorityLevelCode`` (UNCL4219: 1 Express = very
urgent, 2 High speed = urgent, anything else or none = normal), as the order-process norm's
24 h / 12 h / 2 h. Despatch due: the end (UTC) of the requested delivery date. ``by_type``
overrides per order type code (docs/adr/0034-sla-timers.md).
"""

from __future__ import annotations

from pydantic import Field, field_validator

from edi_gateway.config.base import _Model


class ResponseHours(_Model):
    """Hours from an order's arrival to its response, by urgency."""

    normal: float = Field(default=24, gt=0, le=24 * 90)
    urgent: float = Field(default=12, gt=0, le=24 * 90)
    very_urgent: float = Field(default=2, gt=0, le=24 * 90)

    def of(self, urgency: str) -> float:
        """The hours for ``urgency``: ``very_urgent``, ``urgent``, else normal."""
        if urgency == "very_urgent":
            return self.very_urgent
        if urgency == "urgent":
            return self.urgent
        return self.normal


class SlaTerms(_Model):
    """The timers of one kind of order."""

    response_hours: ResponseHours = Field(default_factory=ResponseHours)
    despatch: bool = True
    """Despatch due by the end of the requested delivery date (when the order gives one)."""


class SlaSettings(SlaTerms):
    """``partners[].sla``: the timers of the orders this partner sends (as buyer)."""

    auto_approve_days: int | None = Field(default=None, ge=1, le=365)
    """Orders still unanswered after this many days are accepted automatically (an Order
    Response AP from the gateway, in the order's history as ``sla.auto_approved``); off unless
    set (14 for partners whose terms say "approved after 14 days without feedback")."""
    by_type: dict[str, SlaTerms] = Field(default_factory=dict)
    """Per order type (code, e.g. ``"221"``, or name, e.g. ``blanket``): other terms."""

    @field_validator("by_type")
    @classmethod
    def _known_types(cls, value: dict[str, SlaTerms]) -> dict[str, SlaTerms]:
        # imported here: the order's dataclasses are ~3 ms, and a config read from the cache
        # (docs/adr/0041) never runs this check
        from edi_gateway.domain.order_data import ORDER_TYPES, TYPE_FILTERS

        found: dict[str, SlaTerms] = {}
        for key, terms in value.items():
            code = TYPE_FILTERS.get(key.lower(), key)
            if code not in ORDER_TYPES:
                known = ", ".join([*ORDER_TYPES, *TYPE_FILTERS])
                raise ValueError(f"found order type {key!r}, expected one of {known}")
            found[code] = terms
        return found

    def terms(self, order_type: str | None) -> SlaTerms:
        """The terms for an order of this type code (none: a purchase order, 220)."""
        return self.by_type.get(order_type or "220", self)
