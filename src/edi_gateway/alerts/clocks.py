"""States that last, looked at on a cadence: deliveries overdue, certificates about to expire.

The daemon calls :func:`look` every ``LOOK_EVERY``; each finding is an alert event at most once
per ``alerts.every_minutes`` (overdue deliveries, per connector) or per day (a certificate), so a
state that lasts is told again, not at every look.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import BaseModel
from sqlalchemy import Connection, insert, select

from edi_gateway.alerts.events import record, record_once, subscribed
from edi_gateway.store.leases import TOLD, xact_locks
from edi_gateway.store.schema import history

if TYPE_CHECKING:
    from edi_gateway.config import Settings
    from edi_gateway.store.db import Store

log = logging.getLogger(__name__)
LOOK_EVERY = timedelta(minutes=10)
CERTIFICATE_FIELDS = ("certificate", "partner_certificate", "tls_certificate", "ca_file")


@dataclass(frozen=True, slots=True)
class Expiry:
    """One configured certificate: where gateway.yaml names it, its subject and last day."""

    where: str
    path: Path
    subject: str
    not_after: datetime

    def days_left(self, at: datetime) -> float:
        return (self.not_after - at).total_seconds() / 86400


def certificate_files(settings: Settings) -> list[tuple[str, Path]]:
    """Every certificate file gateway.yaml names: (``connectors.NAME.FIELD`` or
    ``partners.ID.signature.FIELD``, path)."""
    found: list[tuple[str, Path]] = []

    def walk(model: BaseModel, where: str) -> None:
        for name in type(model).model_fields:
            value = getattr(model, name)
            if name in CERTIFICATE_FIELDS and isinstance(value, Path):
                found.append((f"{where}.{name}", value))
            elif isinstance(value, BaseModel):
                walk(value, f"{where}.{name}")

    for conn in settings.connectors:
        walk(conn, f"connectors.{conn.name}")
    for partner in settings.partners:
        if partner.signature is not None:
            walk(partner.signature, f"partners.{partner.id}.signature")
    return found


def expiries(settings: Settings) -> list[Expiry]:
    """The certificates of every configured file (a CA bundle gives several), soonest first;
    an unreadable file is logged and left out (loading it fails loudly where it is used)."""
    found: list[Expiry] = []
    for where, path in certificate_files(settings):
        from cryptography import x509  # only where certificates are configured

        try:
            data = path.read_bytes()
            certs = (
                x509.load_pem_x509_certificates(data)
                if b"-----BEGIN" in data
                else [x509.load_der_x509_certificate(data)]
            )
        except (OSError, ValueError) as exc:
            log.warning("certificate %s (%s) cannot be read: %s", path, where, exc)
            continue
        for cert in certs:
            found.append(
                Expiry(where, path, cert.subject.rfc4514_string(), cert.not_valid_after_utc)
            )
    return sorted(found, key=lambda e: e.not_after)


def _key(cert: Expiry) -> str:
    return f"{cert.path}#{cert.subject}"


def _told_today(conn: Connection, key: str, at: datetime) -> bool:
    h = history.c
    recent = h.at > at - timedelta(days=1)
    told = select(h.id).where(
        h.event == "certificate.expiring", recent, h.detail.startswith(f"{key}: ")
    )
    return conn.scalar(told.limit(1)) is not None


def look(store: Store, settings: Settings, at: datetime) -> list[Expiry]:
    """Record alert events for overdue deliveries and certificates within
    ``alerts.certificate_days`` of expiry; return every certificate's expiry (for metrics)."""
    from edi_gateway.outbound.outbox import delivery_states

    causes = subscribed(settings)
    every = timedelta(minutes=settings.alerts.every_minutes)
    found = expiries(settings)
    warn = settings.alerts.certificate_days
    near = [cert for cert in found if cert.days_left(at) <= warn]
    with store.connect() as conn:
        states = delivery_states(conn, settings, at) if "delivery.overdue" in causes else {}
        # gateways looking at the same moment each check "told already?" then tell: one at
        # a time per subject, all the locks at once (store/leases.py), so each is told once
        keys = [f"delivery.overdue:{name}" for name, state in states.items() if state.overdue]
        xact_locks(conn, TOLD, keys + [f"certificate.expiring:{_key(c)}" for c in near])
        for name, state in states.items():
            if state.overdue:
                text = (
                    f"{state.overdue} deliveries via {name} overdue (oldest due "
                    f"{state.as_json(at)['oldest_due_seconds']} s ago)"
                )
                record_once(conn, "delivery.overdue", text, at, subject=name, within=every)
        for cert in near:
            left = cert.days_left(at)
            when = cert.not_after.astimezone(UTC).strftime("%Y-%m-%d")
            how = f"expired on {when}" if left < 0 else f"expires on {when} (in {left:.0f} days)"
            text = f"{cert.subject} in {cert.path} ({cert.where}) {how}"
            key = _key(cert)
            if _told_today(conn, key, at):
                continue
            conn.execute(  # the timer fires in the history (no order), once a day
                insert(history).values(
                    at=at,
                    event="certificate.expiring",
                    detail=f"{key}: {text}"[:2000],
                    actor="system (clock)",
                )
            )
            if "certificate.expiring" in causes:
                record(conn, "certificate.expiring", text, at, subject=key)
    return found
