"""Partner profiles in gateway.yaml: the legal data invoices need, and how orders are forwarded."""

from __future__ import annotations

import re
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BeforeValidator,
    Field,
    field_validator,
    model_validator,
)

from edi_gateway.config.base import (
    ConfigPath,
    Slug,
    _check_icd,
    _check_id_value,
    _Model,
)

_COUNTRY = re.compile(r"^[A-Z]{2}$")


def _check_country(value: Any) -> Any:
    if isinstance(value, str) and _COUNTRY.match(value.strip()):
        return value.strip()
    raise ValueError(f"found {value!r}, expected an ISO 3166-1 alpha-2 country code such as 'NL'")


class LegalId(_Model):
    """A legal registration number, optionally with its ISO 6523 ICD (``0106`` = Dutch KVK)."""

    value: Annotated[str, BeforeValidator(_check_id_value)]
    scheme: Annotated[str, BeforeValidator(_check_icd)] | None = None


class LegalProfile(_Model):
    """What an invoice must say about a party: legal name, address, tax and bank details.

    The supplier's profile fills the seller of every invoice the gateway issues; a buyer's
    profile completes what its orders leave out (address, VAT number).
    """

    registration_name: str
    company_id: LegalId | None = None
    vat_id: str | None = None
    """With its country prefix, e.g. ``NL123456789B01`` (EN 16931 BR-CO-09)."""
    street: str | None = None
    city: str | None = None
    postal_zone: str | None = None
    country: Annotated[str, BeforeValidator(_check_country)]
    iban: str | None = None
    bic: str | None = None
    payment_terms: str | None = None
    default_vat_category: Literal["S", "Z", "E", "AE", "K", "G", "O", "L", "M"] = "S"
    default_vat_rate: Annotated[Decimal, Field(ge=0, le=100)] | None = None
    """Percent, e.g. ``25``; needed on a supplier invoicing lines of a rated category."""


_FORMATS = ("ubl", "xlsx", "pdf", "csv")
_LAYOUT = re.compile(r"^layout:([a-z0-9][a-z0-9_-]{0,63})$")
_HHMM = re.compile(r"^([01][0-9]|2[0-3]):[0-5][0-9]$")
FILE_PLACEHOLDERS = ("supplier", "order", "buyer", "date", "seq", "format", "ext")
BUNDLE_PLACEHOLDERS = ("supplier", "date", "seq", "part", "ext")


def _check_format(value: Any) -> Any:
    if isinstance(value, str) and (value in _FORMATS or _LAYOUT.match(value)):
        return value
    raise ValueError(
        f"found {value!r}, expected one of {', '.join(_FORMATS)} or layout:NAME "
        "(a layout in mappings/<supplier id>/)"
    )


def _check_clock(value: Any) -> Any:
    if isinstance(value, str) and _HHMM.match(value):
        return value
    raise ValueError(f"found {value!r}, expected a quoted UTC time HH:MM such as '08:00'")


def pattern_problem(pattern: str, allowed: tuple[str, ...]) -> str | None:
    """Why a file-name pattern is unusable (unknown placeholder, no ``{ext}``...), else None."""
    import string
    from datetime import date

    try:
        fields = [name for _, name, _, _ in string.Formatter().parse(pattern) if name is not None]
        numbers = {"seq": 1, "part": 1, "date": date(2026, 1, 1)}
        sample = dict.fromkeys(allowed, "x") | {k: v for k, v in numbers.items() if k in allowed}
        unknown = [f for f in fields if f not in allowed]
        if not unknown:
            pattern.format(**sample)
    except (ValueError, IndexError, KeyError) as exc:
        return f"found {pattern!r}, expected a pattern with {{placeholders}} ({exc})"
    if unknown:
        return f"found {{{unknown[0]}}} in {pattern!r}, expected only " + ", ".join(
            f"{{{a}}}" for a in allowed
        )
    if "ext" not in fields:
        return f"found {pattern!r}, expected it to contain {{ext}} (the file extension)"
    if "/" in pattern or "\\" in pattern:
        return f"found {pattern!r}, expected a file name without folders"
    return None


class ForwardProfile(_Model):
    """How orders to this supplier are forwarded: formats, bundling, schedule, names, hold."""

    formats: list[Annotated[str, BeforeValidator(_check_format)]] = Field(
        default_factory=lambda: ["ubl"], min_length=1
    )
    """``ubl`` (the order's bytes unchanged), ``xlsx``, ``pdf``, ``csv``, ``layout:NAME``."""
    bundle: Literal["none", "zip", "workbook", "csv"] = "none"
    """``none``: every order at once; else one zip / workbook / CSV per supplier per flush."""
    every_minutes: int | None = Field(default=None, ge=1, le=10080)
    """Flush at every multiple of N minutes (UTC; 30 = at :00 and :30)."""
    at: list[Annotated[str, BeforeValidator(_check_clock)]] = Field(default_factory=list)
    """Flush at these UTC times of day, ``HH:MM``."""
    when_waiting: int | None = Field(default=None, ge=1, le=100000)
    """Flush as soon as this many orders wait."""
    filename: str = "{supplier}-{order}-{format}.{ext}"
    """One order's file (alone, or a member of a zip)."""
    bundle_filename: str = "{supplier}-{date}-{seq:04d}.{ext}"
    """A bundle's file: ``{order}``, ``{buyer}`` and ``{format}`` are not known there;
    ``{part}``: which part of the flush (1 when unsplit; see ``max_orders``)."""
    max_orders: int | None = Field(default=None, ge=1, le=1_000_000, strict=True)
    """At most this many orders in one bundle file; more go as further parts (each its own
    ``{seq}``), whole orders each, in order."""
    max_bytes: int | None = Field(default=None, ge=1024, le=2**40, strict=True)
    """At most this many bytes in one bundle file (an order bigger than that alone goes alone,
    logged); more go as further parts, like ``max_orders``."""
    connector: Slug | None = None
    """The outbound connector; default: the partner's ``outbound``."""
    hold: bool = False
    """Orders wait until an operator releases them (``edi-gateway orders release ORDER``)."""
    mappings: ConfigPath = Field(default=Path("mappings"), validate_default=True)
    """The folder holding ``<supplier id>/`` with this supplier's layouts."""
    csv_delimiter: str = Field(default=";", min_length=1, max_length=1)
    csv_encoding: str = "utf-8-sig"

    @field_validator("filename")
    @classmethod
    def _file_pattern(cls, value: str) -> str:
        problem = pattern_problem(value, FILE_PLACEHOLDERS)
        if problem:
            raise ValueError(problem)
        return value

    @field_validator("bundle_filename")
    @classmethod
    def _bundle_pattern(cls, value: str) -> str:
        problem = pattern_problem(value, BUNDLE_PLACEHOLDERS)
        if problem:
            raise ValueError(problem)
        return value

    @field_validator("csv_encoding")
    @classmethod
    def _codec(cls, value: str) -> str:
        import codecs

        try:
            codecs.lookup(value)
        except LookupError:
            raise ValueError(f"found {value!r}, expected an encoding such as utf-8-sig") from None
        return value

    @model_validator(mode="after")
    def _bundle_rules(self) -> ForwardProfile:
        scheduled = self.every_minutes is not None or self.at or self.when_waiting is not None
        repeated = [f for i, f in enumerate(self.formats) if f in self.formats[:i]]
        if repeated:
            raise ValueError(f"formats: found {repeated[0]!r} twice, expected each format once")
        if self.bundle == "none" and scheduled:
            raise ValueError(
                "found a schedule (every_minutes, at, when_waiting) with bundle: none, expected "
                "none: unbundled orders go at once; set bundle: zip | workbook | csv to batch them"
            )
        capped = [k for k in ("max_orders", "max_bytes") if getattr(self, k) is not None]
        if self.bundle == "none" and capped:
            raise ValueError(
                f"found {capped[0]} with bundle: none, expected it only with bundle: zip | "
                "workbook | csv (it caps the orders or bytes of one bundle file)"
            )
        if self.bundle != "none" and not scheduled:
            raise ValueError(
                f"bundle: {self.bundle} needs a schedule, expected every_minutes, at or "
                "when_waiting (any combination)"
            )
        single = {"workbook": "xlsx or one Excel column-map layout", "csv": "csv"}
        first = self.formats[0]
        fits = {
            "workbook": len(self.formats) == 1 and (first == "xlsx" or first.startswith("layout:")),
            "csv": self.formats == ["csv"],
        }
        if self.bundle in single and not fits[self.bundle]:
            raise ValueError(
                f"bundle: {self.bundle} sends one file of all orders, found formats "
                f"{self.formats}, expected [{single[self.bundle]}]"
            )
        return self
