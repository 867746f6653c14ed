"""What the product knows about official rule releases: their files' sha256 and which rule sets
check which document (by ``cbc:CustomizationID``).

The product never ships OpenPeppol or CEN files; only these hashes, which let
``edi-gateway rules install`` prove that what an operator installs is the release it claims to be.
"""

from __future__ import annotations

POACC = "urn:fdc:peppol.eu:poacc:trns:"
BILLING = "urn:cen.eu:en16931:2017#compliant#urn:fdc:peppol.eu:2017:poacc:billing:3.0"
SELF_BILLING = "urn:cen.eu:en16931:2017#compliant#urn:fdc:peppol.eu:2017:poacc:selfbilling:3.0"

RELEASES: dict[str, dict[str, str]] = {
    "2026.5": {
        "CEN-EN16931-UBL": "268d4f7a2688676695e6c69cba6fba69a6802604fee12cb544a6b30ff09555a3",
        "PEPPOL-EN16931-UBL-SB": "2e62d3e97370ab133958c45a735532a621c072b9a95a2fa6b3a04900346e34fb",
        "PEPPOL-EN16931-UBL": "f8234c0ec97317a5c4b690d414b0daae386031c9ac9a8ea3a5f693f5098a4cd9",
        "PEPPOLBIS-T01": "a783a773eaf7965ae2070e6bdebed1cc4c9b66c4f2c6d286226e96960014bbb7",
        "PEPPOLBIS-T110": "f59010977978de8cdda67f958892a460d6e7f3c0709f42328e7cf93c297ecb0b",
        "PEPPOLBIS-T111": "727eef7f41e0f478f546e87b6bc36cbeb256a73f2ebdd265450f47127948b562",
        "PEPPOLBIS-T114": "8f78bd97acad4729bb3901f5903132146e154eedbe3aadbbd0c489ed5be2ab43",
        "PEPPOLBIS-T115": "d66ff5611b1ed66763e2ab562df023d310c78ec9fa04d3c31adf5b4899339c5f",
        "PEPPOLBIS-T116": "ef7610176d6aad76f9ec4169a9222de75d35f99da2b8bc8c02f9a78a98f60966",
        "PEPPOLBIS-T16": "0addef3af4a6a77c24e1833e3650e4a11e174f6de45eb8234be72ad0d3d0d2d8",
        "PEPPOLBIS-T19": "f4f8fce24017c2896bffe852fc0050d83c21548c0222d7fb1650c6d53f0f3e42",
        "PEPPOLBIS-T58": "72ec868929ecbcf4de8f8540b3d34896b82c1b3426fb9f3ae8a45aa8401e00ee",
        "PEPPOLBIS-T71": "faca47cbdbd4d858caf6abb4072d419f655277238ffddef8492bd60183c553b8",
        "PEPPOLBIS-T76": "feb0c36d4a1f65602e20edca1f118cfd754e999415b5e660bcfd874980a4aaba",
        "PEPPOLBIS-T77": "a033bbc339a569857d0cdea895abe168d2b26b0a4a4d792a95837d41ad5cec77",
    },
}
"""Known releases: rule set name (the ``.sch`` file's stem) -> sha256 of the file as published."""

ROOTS: dict[str, frozenset[str]] = {
    "PEPPOLBIS-T01": frozenset({"Order"}),
    "PEPPOLBIS-T76": frozenset({"OrderResponse"}),
    "PEPPOLBIS-T16": frozenset({"DespatchAdvice"}),
    "PEPPOLBIS-T110": frozenset({"OrderResponse"}),
    "PEPPOLBIS-T114": frozenset({"OrderChange"}),
    "PEPPOLBIS-T115": frozenset({"OrderCancellation"}),
    "PEPPOLBIS-T116": frozenset({"OrderResponse"}),
    "PEPPOLBIS-T71": frozenset({"ApplicationResponse"}),
    "PEPPOLBIS-T111": frozenset({"ApplicationResponse"}),
    "PEPPOLBIS-T19": frozenset({"Catalogue"}),
    "PEPPOLBIS-T58": frozenset({"ApplicationResponse"}),
    "PEPPOLBIS-T77": frozenset({"Catalogue"}),
    "CEN-EN16931-UBL": frozenset({"Invoice", "CreditNote"}),
    "PEPPOL-EN16931-UBL": frozenset({"Invoice", "CreditNote"}),
    "PEPPOL-EN16931-UBL-SB": frozenset({"Invoice", "CreditNote"}),
}
"""The UBL root element each rule set is written for: a CustomizationID is only believed on a
document of that type (as the official validators select by both)."""

TRANSACTIONS: dict[str, tuple[str, ...]] = {
    "order:3": ("PEPPOLBIS-T01",),
    "order_response:3": ("PEPPOLBIS-T76",),
    "despatch_advice:3": ("PEPPOLBIS-T16",),
    "order_agreement:3": ("PEPPOLBIS-T110",),
    "order_change:3": ("PEPPOLBIS-T114",),
    "order_cancellation:3": ("PEPPOLBIS-T115",),
    "order_response_advanced:3": ("PEPPOLBIS-T116",),
    "mlr:3": ("PEPPOLBIS-T71",),
    "invoice_response:3": ("PEPPOLBIS-T111",),
    "catalogue:3": ("PEPPOLBIS-T19",),
    "catalogue_response:3": ("PEPPOLBIS-T58",),
    "punch_out:3": ("PEPPOLBIS-T77",),
}
"""Peppol post-award transactions (``urn:fdc:peppol.eu:poacc:trns:<name>``) -> rule sets."""


def rule_sets(customization_id: str | None) -> tuple[str, ...]:
    """The rule sets that check a document with this CustomizationID; () when none applies.

    Billing 3.0 invoices and credit notes get the CEN EN 16931 rules and Peppol's; self-billing
    the CEN rules and Peppol's self-billing set. A CIUS or extension built on them
    (``...billing:3.0#conformant#...``) gets the same rule sets: they are what it builds on.
    """
    cid = (customization_id or "").strip()
    if cid.startswith(SELF_BILLING):
        return ("CEN-EN16931-UBL", "PEPPOL-EN16931-UBL-SB")
    if cid.startswith(BILLING):
        return ("CEN-EN16931-UBL", "PEPPOL-EN16931-UBL")
    if cid.startswith(POACC):
        return TRANSACTIONS.get(cid[len(POACC) :].split("#")[0], ())
    return ()


def misfits(names: tuple[str, ...], root_name: str) -> list[str]:
    """The rule sets among ``names`` that are not written for a ``root_name`` document."""
    return [n for n in names if root_name not in ROOTS.get(n, frozenset({root_name}))]


def newest(names: list[str]) -> str | None:
    """The newest release name (``2026.5`` > ``2025.11``), compared as numbers."""

    def key(name: str) -> tuple[int, ...]:
        return tuple(int(p) if p.isdigit() else -1 for p in name.split("."))

    return max(names, key=key) if names else None
