"""Packing slips and box labels: the GS1 company prefix SSCCs are made from, the label size.

``packing:`` in gateway.yaml holds the gateway's own values; a supplier partner may carry its
own ``gs1_company_prefix`` and ``label_size``, which win for the despatches of its orders.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, StringConstraints

from edi_gateway.config.base import _Model

LabelSize = Literal["a4", "label-100x150"]
"""One label per A4 page, or one per 100 x 150 mm page (a label printer's roll)."""


def _prefix_as_text(value: Any) -> Any:
    if isinstance(value, int) and not isinstance(value, bool):
        raise ValueError(
            f"write the GS1 company prefix in quotes ('{value}'): as a number YAML drops "
            "leading zeros, and a leading zero is part of the prefix"
        )
    return value


GS1CompanyPrefix = Annotated[
    str,
    BeforeValidator(_prefix_as_text),
    StringConstraints(pattern=r"^[0-9]{4,12}$"),
]
"""The company prefix GS1 gave the supplier: 4 to 12 digits, quoted in YAML."""


class PackingSettings(_Model):
    """The gateway's own packing values (``packing:`` in gateway.yaml)."""

    gs1_company_prefix: GS1CompanyPrefix | None = None
    """The prefix of the SSCCs of boxes despatched for suppliers without their own; none =
    ``despatch --boxes`` is refused for them (GS1_PREFIX_MISSING), never a made-up number."""
    sscc_extension_digit: int = Field(default=0, ge=0, le=9)
    """The SSCC's first digit, which the company chooses to widen its serial range."""
    label_size: LabelSize = "a4"
    """Box labels of suppliers without their own ``label_size``."""
