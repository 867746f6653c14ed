"""What a finding of a compiled rule says: apart from :mod:`.compile`, so that reading an
installed release (``rules list``, a gateway's start) does not import lxml and the XML tools
the compiler needs."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Assertion:
    """One ``assert`` (or ``report``): what a finding of it says."""

    rule_id: str
    flag: str
    text: str
    report: bool = False
