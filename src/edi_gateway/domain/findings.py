"""Findings: what a check (the UBL XSD, an official rule set) says about one document."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Literal

Flag = Literal["fatal", "warning", "information"]
Severity = Literal["fatal", "warning", "ignore"]
XSD = "XSD"
"""``rule_set`` and ``rule_id`` of UBL 2.1 schema errors."""
MAX_FINDINGS = 1000
"""Findings kept per message or outbox row; beyond, one more says how many were left out."""


def bounded(findings: list[Finding]) -> list[Finding]:
    """The first :data:`MAX_FINDINGS`, then one finding counting the rest (a hostile document
    failing every line must not write hundreds of thousands of rows)."""
    if len(findings) <= MAX_FINDINGS:
        return findings
    rest = findings[MAX_FINDINGS:]
    more = sum(1 for f in rest if f.flag == "fatal")
    text = f"and {len(rest)} more findings not kept ({more} fatal)"
    return [*findings[:MAX_FINDINGS], Finding("GATEWAY", "MORE", rest[0].flag, None, None, text)]


@dataclass(frozen=True, slots=True)
class Finding:
    """One failed rule: which, how serious, where (an XPath with prefixes, a line) and why."""

    rule_set: str
    rule_id: str
    flag: str
    location: str | None
    line: int | None
    text: str

    def describe(self) -> str:
        """One line: ``fatal BR-CO-15 line 40 /Invoice/cac:LegalMonetaryTotal[1]: text``."""
        where = " ".join(
            w for w in (f"line {self.line}" if self.line else "", self.location or "") if w
        )
        return f"{self.flag} {self.rule_id}{' ' + where if where else ''}: {self.text}"


def apply_severity(findings: Iterable[Finding], levels: Mapping[str, Severity]) -> list[Finding]:
    """A partner's overrides by rule ID (as the KoSIT validator's custom levels): a finding is
    made fatal or a warning, or dropped with ``ignore``."""
    out = []
    for finding in findings:
        level = levels.get(finding.rule_id)
        if level == "ignore":
            continue
        out.append(replace(finding, flag=level) if level else finding)
    return out


def fatal(findings: Iterable[Finding]) -> list[Finding]:
    """The findings that fail a document."""
    return [f for f in findings if f.flag == "fatal"]
