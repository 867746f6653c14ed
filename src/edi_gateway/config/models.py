"""The typed shape of gateway.yaml: frozen pydantic v2 models that refuse unknown keys.

Relative paths (folder connectors, the SQLite file) are resolved against the folder of the
config file, which :func:`edi_gateway.config.load_config` passes in the validation context as
``base_dir``; without a context they resolve against the current directory.

Connector types are listed in :mod:`edi_gateway.config.connectors`; each one's model lives
beside its transport (``transports/<name>_spec.py``).
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import (
    Field,
    StringConstraints,
    model_validator,
)

from edi_gateway.config.alerts import AlertSettings
from edi_gateway.config.base import IntakeSettings, PeppolId, Slug, StoreSettings, _Model
from edi_gateway.config.connectors import Connector
from edi_gateway.config.daemon import DaemonSettings
from edi_gateway.config.packing import GS1CompanyPrefix, LabelSize, PackingSettings
from edi_gateway.config.profiles import ForwardProfile, LegalProfile
from edi_gateway.config.retention import RetentionSettings
from edi_gateway.config.rules import RulesSettings
from edi_gateway.config.signature import SignatureSettings, signing_refused
from edi_gateway.config.sla import SlaSettings
from edi_gateway.domain.kinds import DocumentKind
from edi_gateway.errors import ConfigError

if TYPE_CHECKING:
    from edi_gateway.domain.documents import Party

RuleId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]
"""A rule's ID as the rule sets write it (``BR-CO-15``, ``PEPPOL-T01-B00101``)."""

__all__ = ["Partner", "Route", "RouteMatch", "Settings", "reply_map_path"]


GONE_PARTNER_KEYS = {
    "peppol_validation": (
        "this key never did anything and was removed. To check this partner's documents "
        "against the official Peppol rules write `validation: peppol` instead (after "
        "`edi-gateway rules install PATH`); `validation: xsd`, the default, checks the UBL 2.1 "
        "schema only."
    ),
    "options": "this key was never read by anything and was removed. Remove it.",
}
"""Keys older configs may still carry: refused with what to do, never silently ignored."""


class Partner(_Model):
    """A trading partner, recognised by its Peppol endpoint and identifiers."""

    id: Slug
    name: str
    role: Literal["buyer", "supplier", "both"]
    endpoint: PeppolId
    identifiers: list[PeppolId] = Field(default_factory=list)
    language: str = "en"
    outbound: Slug | None = None
    """The outbound connector that documents for this partner go through."""
    auto_response: Literal["none", "acknowledge", "accept"] = "none"
    """Answer every order from (buyer) or to (supplier) this partner on receipt: AB or AP."""
    forward: ForwardProfile | None = None
    """How orders to this supplier are forwarded to it; none = not forwarded."""
    invoicee: Slug | None = None
    """The partner this buyer's bills go to when an order names no invoicee of its own (no
    ``cac:AccountingCustomerParty`` other than the buyer): its central accounts payable, say.
    Its keys become the order's invoicee keys (so the supplier's bills to it find the order),
    and the bills the gateway issues or relays name it and go through its ``outbound``
    connector when it has one (docs/adr/0005, 0007)."""
    relay_replies: bool = False
    """Pass this supplier's Order Responses and Despatch Advices (UBL or its own layout) on to
    the buyer as Peppol UBL through the buyer's outbound connector."""
    legal: LegalProfile | None = None
    """Legal name, address, VAT and bank details: needed to invoice as or to this partner."""
    signature: SignatureSettings | None = None
    """XML signatures: sign what we send this partner, verify what it sends (ADR 0021)."""
    debit_note_as: Literal["invoice", "debitnote"] = "invoice"
    """A debit note to this partner: a Peppol Invoice 383, or a UBL DebitNote (non-Peppol)."""
    self_billing: bool = False
    """This supplier is self-billed (Peppol BIS Self-Billing 3.0): the buyer, or this gateway
    for it, issues its invoices (389), credit notes (261) and debit notes (527) and sends them
    to the supplier through its ``outbound`` connector (ADR 0027)."""
    validation: Literal["xsd", "peppol"] = "xsd"
    """What documents from this partner must pass: the UBL 2.1 XSD, or also the official Peppol
    rules of their CustomizationID (an installed release, see ``edi-gateway rules``)."""
    mlr: Literal["never", "on_failure", "always"] = "never"
    """Answer this partner's messages with a Peppol Message Level Response through its
    ``outbound`` connector: refusals only (``on_failure``), or acceptances too (``always``)."""
    severity: dict[RuleId, Literal["fatal", "warning", "ignore"]] = Field(default_factory=dict)
    """Per rule ID, how serious a finding is in the documents this partner sends, as the
    KoSIT validator's custom levels: ``{BR-CL-14: warning, PEPPOL-T01-R002: ignore}``."""
    sla: SlaSettings = Field(default_factory=SlaSettings)
    """When this partner's orders must be answered and despatched (docs/adr/0034)."""
    gs1_company_prefix: GS1CompanyPrefix | None = None
    """This supplier's GS1 company prefix: the SSCCs of the boxes it despatches (else
    ``packing.gs1_company_prefix``)."""
    label_size: LabelSize | None = None
    """This supplier's box labels: ``a4`` or ``label-100x150`` (else ``packing.label_size``)."""

    @model_validator(mode="before")
    @classmethod
    def _no_dead_keys(cls, data: Any) -> Any:
        if isinstance(data, dict):
            for key, why in GONE_PARTNER_KEYS.items():
                if key in data:
                    raise ValueError(f"{key}: {why}")
        return data

    @model_validator(mode="after")
    def _mlr_needs_a_way_out(self) -> Partner:
        if self.mlr != "never" and self.outbound is None:
            raise ValueError(
                f"mlr: {self.mlr} needs outbound: the connector through which the Message "
                "Level Responses reach this partner"
            )
        return self

    @model_validator(mode="after")
    def _self_billing_makes_sense(self) -> Partner:
        refused = self_billing_refused(self)
        if refused:
            raise ValueError(refused)
        return self

    @model_validator(mode="after")
    def _signature_allowed(self) -> Partner:
        refused = signing_refused(self.signature, self.validation, self.forward)
        if refused:
            raise ValueError(refused)
        return self

    def keys(self) -> list[str]:
        """``scheme:value`` of the endpoint, then of each identifier, without repeats."""
        return list(dict.fromkeys([self.endpoint.key(), *(i.key() for i in self.identifiers)]))

    def party(self) -> Party:
        """This partner as a document's party: its endpoint, identifiers and name."""
        from edi_gateway.domain.documents import Party, PartyId

        return Party(
            endpoint=PartyId(self.endpoint.value, self.endpoint.scheme),
            ids=[PartyId(i.value, i.scheme) for i in self.identifiers],
            name=self.name,
        )


def self_billing_refused(partner: Partner) -> str | None:
    """Why ``self_billing: true`` makes no sense on this partner, or None when it does."""
    if not partner.self_billing:
        return None
    if partner.role == "buyer":
        return (
            "self_billing: true is for a supplier (the seller the buyer bills itself); "
            "this partner's role is buyer"
        )
    missing = [
        what
        for what, absent in (
            (
                "outbound (the connector through which its self-billed invoices reach it)",
                partner.outbound is None,
            ),
            (
                "legal (the seller's name, address and VAT number the invoices carry)",
                partner.legal is None,
            ),
        )
        if absent
    ]
    if missing:
        return "self_billing: true needs " + " and ".join(missing)
    if partner.debit_note_as != "invoice":
        return (
            "self_billing: true and debit_note_as: debitnote do not go together: a self-billed "
            "debit note is a Peppol Invoice with type code 527 (remove debit_note_as)"
        )
    return None


class RouteMatch(_Model):
    """Which orders a route applies to; an empty match applies to every order."""

    sender: Slug | None = None
    """The buyer partner the order comes from."""
    kinds: list[DocumentKind] = Field(default_factory=lambda: [DocumentKind.ORDER])
    """Only ``Order`` is routed: every later document follows its order."""
    connector: Slug | None = None
    """The inbound connector the order came through."""


class Route(_Model):
    """Send matching orders to a supplier, whatever supplier party the order names.

    Routes are tried in order and the first that matches wins; an order no route matches goes
    to the supplier it names (its seller party), if that supplier has a ``forward`` profile.
    The supplier's ``forward`` profile says how (formats, bundling, connector).
    """

    name: Slug
    match: RouteMatch = Field(default_factory=RouteMatch)
    deliver_to: Slug


class Settings(_Model):
    """Everything gateway.yaml says, validated. ``path`` is the file it was read from."""

    path: Path
    store: StoreSettings = Field(default_factory=StoreSettings)
    intake: IntakeSettings = Field(default_factory=IntakeSettings)
    partners: list[Partner] = Field(default_factory=list)
    connectors: list[Connector] = Field(default_factory=list)
    routes: list[Route] = Field(default_factory=list)
    daemon: DaemonSettings = Field(default_factory=DaemonSettings)
    rules: RulesSettings
    alerts: AlertSettings = Field(default_factory=AlertSettings)
    packing: PackingSettings = Field(default_factory=PackingSettings)
    retention: RetentionSettings | None = None
    """The daemon's automatic purge (docs/adr/0037); none: only ``edi-gateway purge``."""

    @cached_property
    def _partner_index(self) -> dict[str, Partner]:
        return {key: p for p in self.partners for key in Partner.keys(p)}

    @cached_property
    def _connector_index(self) -> dict[str, Connector]:
        return {c.name: c for c in self.connectors}

    def partner_by_key(self, keys: Iterable[str]) -> Partner | None:
        """The partner known by the first of ``keys`` that any partner has, else ``None``."""
        index = self._partner_index
        return next((index[k] for k in keys if k in index), None)

    def route_for(self, sender: str | None, connector: str | None) -> Route | None:
        """The first route whose match takes an order from partner ``sender`` that came
        through inbound connector ``connector`` (None: not through a connector, e.g. ingest)."""
        for route in self.routes:
            match = route.match
            if match.sender is not None and match.sender != sender:
                continue
            if match.connector is not None and match.connector != connector:
                continue
            return route
        return None

    def partner(self, partner_id: str) -> Partner | None:
        """The partner with this ``id``, else ``None``."""
        return next((p for p in self.partners if p.id == partner_id), None)

    def invoicee(self, buyer: Partner | None) -> Party | None:
        """The party ``buyer``'s bills go to when an order names none (its ``invoicee:``)."""
        target = self.partner(buyer.invoicee) if buyer and buyer.invoicee else None
        return target.party() if target else None

    def bill_recipient(self, keys: Iterable[str]) -> Partner | None:
        """The partner known by ``keys`` (a bill's or a relayed document's Buyer) that may be
        sent a buyer's documents: one with an outbound connector that is not only a supplier
        (a supplier's document is never sent to another supplier)."""
        partner = self.partner_by_key(keys)
        if partner is None or partner.outbound is None or partner.role == "supplier":
            return None
        return partner

    def connector(self, name: str) -> Connector:
        """The connector called ``name``; ConfigError naming the known ones if there is none."""
        found = self._connector_index.get(name)
        if found is None:
            known = ", ".join(sorted(self._connector_index)) or "none"
            raise ConfigError(f"{self.path}: no connector named {name!r}; known: {known}")
        return found

    @model_validator(mode="before")
    @classmethod
    def _store_default_in_context(cls, data: Any) -> Any:
        # a default_factory would build StoreSettings without the context (so without base_dir)
        return {"store": {}, "rules": {}, **data} if isinstance(data, dict) else data

    @model_validator(mode="after")
    def _cross_check(self) -> Settings:
        problems = [*_unique_problems(self), *_reference_problems(self), *_forward_problems(self)]
        if problems:
            raise ValueError("\n".join(problems))
        return self


def _unique_problems(s: Settings) -> list[str]:
    problems: list[str] = []
    for section, names in (
        ("partners", [p.id for p in s.partners]),
        ("connectors", [c.name for c in s.connectors]),
        ("routes", [r.name for r in s.routes]),
        ("alerts.webhooks", [w.name for w in s.alerts.webhooks]),
    ):
        for i, name in enumerate(names):
            if name in names[:i]:
                key = "id" if section == "partners" else "name"
                problems.append(f"{section}[{i}].{key}: found {name!r} again, expected unique")
    connectors = {c.name for c in s.connectors}
    for i, hook in enumerate(s.alerts.webhooks):
        if hook.name in connectors:
            problems.append(
                f"alerts.webhooks[{i}].name: found {hook.name!r}, also a connector's name; "
                "expected a name of its own (alerts are tracked per channel name)"
            )
    owner: dict[str, str] = {}
    for i, partner in enumerate(s.partners):
        for key in Partner.keys(partner):
            if owner.setdefault(key, partner.id) != partner.id:
                problems.append(
                    f"partners[{i}]: identifier {key!r} is also used by partner "
                    f"{owner[key]!r}, expected each identifier to belong to one partner"
                )
    return problems


def _reference_problems(s: Settings) -> list[str]:
    partners = {p.id: p for p in s.partners}
    conns = {c.name: c for c in s.connectors}
    known_p = "a partner id: " + (", ".join(partners) or "none defined")
    problems: list[str] = []

    def connector_ref(where: str, name: str | None, direction: str) -> None:
        if name is None:
            return
        conn = conns.get(name)
        if conn is None or conn.direction != direction:
            wanted = ", ".join(n for n, c in conns.items() if c.direction == direction)
            kind = "inbound" if direction == "in" else "outbound"
            problems.append(
                f"{where}: found {name!r}, expected an {kind} connector: {wanted or 'none defined'}"
            )

    for i, p in enumerate(s.partners):
        connector_ref(f"partners[{i}].outbound", p.outbound, "out")
        if p.invoicee is not None:
            problems += _invoicee_problems(f"partners[{i}].invoicee", p, partners)
    for i, c in enumerate(s.connectors):
        problems += _reply_map_problems(s, i, c, partners)
        if c.partner is not None and c.partner not in partners:
            problems.append(f"connectors[{i}].partner: found {c.partner!r}, expected {known_p}")
        for where, ref in c.partner_refs():
            if ref not in partners:
                problems.append(f"connectors[{i}].{where}: found {ref!r}, expected {known_p}")
    for i, r in enumerate(s.routes):
        where = f"routes[{i}]"
        if r.match.sender is not None and r.match.sender not in partners:
            problems.append(f"{where}.match.sender: found {r.match.sender!r}, expected {known_p}")
        target = partners.get(r.deliver_to)
        if target is None or target.role == "buyer" or target.forward is None:
            suppliers = ", ".join(p.id for p in s.partners if p.forward is not None) or "none"
            problems.append(
                f"{where}.deliver_to: found {r.deliver_to!r}, expected a supplier with a "
                f"forward: profile: {suppliers}"
            )
        if any(kind is not DocumentKind.ORDER for kind in r.match.kinds):
            problems.append(
                f"{where}.match.kinds: found {[k.value for k in r.match.kinds]}, expected "
                "[Order]: only orders are routed; later documents follow their order"
            )
        connector_ref(f"{where}.match.connector", r.match.connector, "in")
    return problems


def _invoicee_problems(where: str, p: Partner, partners: dict[str, Partner]) -> list[str]:
    if p.role == "supplier":
        return [f"{where}: found on supplier {p.id!r}, expected role buyer or both"]
    target = partners.get(p.invoicee or "")
    if target is None or target.id == p.id or target.role == "supplier":
        others = ", ".join(q.id for q in partners.values() if q.role != "supplier" and q is not p)
        return [
            f"{where}: found {p.invoicee!r}, expected another partner with role buyer or both: "
            f"{others or 'none defined'}"
        ]
    return []


def _forward_problems(s: Settings) -> list[str]:
    outbound = ", ".join(c.name for c in s.connectors if c.direction == "out") or "none defined"
    problems: list[str] = []
    for i, p in enumerate(s.partners):
        if p.forward is None:
            continue
        where = f"partners[{i}].forward"
        if p.role == "buyer":
            problems.append(f"{where}: found on buyer {p.id!r}, expected role supplier or both")
        name = p.forward.connector or p.outbound
        conn = next((c for c in s.connectors if c.name == name), None)
        if name is None or conn is None or conn.direction != "out":
            problems.append(
                f"{where}.connector: found {name!r}, expected an outbound connector here or in "
                f"partners[{i}].outbound: {outbound}"
            )
        layouts = [f for f in p.forward.formats if f.startswith("layout:")]
        if layouts:
            from edi_gateway.outbound.layout import layout_problem

            workbook = p.forward.bundle == "workbook"
            for j, fmt in enumerate(p.forward.formats):
                if fmt in layouts:
                    problem = layout_problem(
                        p.forward.mappings, p.id, fmt.removeprefix("layout:"), workbook=workbook
                    )
                    if problem:
                        problems.append(f"{where}.formats[{j}]: {problem}")
    return problems


def reply_map_path(settings_path: Path, partner: str, name: str) -> Path:
    """Where the column map ``name`` of supplier ``partner`` lives."""
    return settings_path.parent / "mappings" / partner / "replies" / f"{name}.yaml"


def _reply_map_problems(
    s: Settings, i: int, c: Connector, partners: dict[str, Partner]
) -> list[str]:
    if not c.replies:
        return []
    where = f"connectors[{i}].replies"
    owner = partners.get(c.partner or "")
    if c.direction != "in" or owner is None or owner.role == "buyer":
        return [
            f"{where}: found reply maps, expected them only on an inbound connector whose "
            "partner is a supplier (set connectors[].partner)"
        ]
    from edi_gateway.errors import ConfigError
    from edi_gateway.replies import load_map

    problems: list[str] = []
    for pattern, name in c.replies.items():
        path = reply_map_path(s.path, owner.id, name)
        if not path.is_file():
            problems.append(f"{where}.{pattern}: found {name!r}, expected a map file {path}")
            continue
        try:
            load_map(path)
        except ConfigError as exc:
            problems.append(f"{where}.{pattern}: {exc.message}")
    return problems
