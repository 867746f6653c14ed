"""Peppol Message Level Response (BIS MLR 3, transaction T71): a UBL ApplicationResponse that
tells the sender of a message whether it was taken (``AP``) or refused (``RE``) and, when
refused, which rules it broke, one ``cac:LineResponse`` each: ``cbc:LineID`` the location (an
XPath), ``cbc:StatusReasonCode`` ``SV`` (syntax: the UBL XSD) or ``BV`` (a business rule)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from edi_gateway.ubl.namespaces import cac, cbc
from edi_gateway.ubl.write_common import add, new_root, serialize

CUSTOMIZATION_ID = "urn:fdc:peppol.eu:poacc:trns:mlr:3"
PROFILE_ID = "urn:fdc:peppol.eu:poacc:bis:mlr:3"


@dataclass(frozen=True, slots=True)
class MlrLine:
    """One broken rule: where (an XPath, or a line), why, and ``SV`` / ``BV``."""

    location: str
    text: str
    reason: str


@dataclass(frozen=True, slots=True)
class Mlr:
    """What an MLR says; ``sender`` / ``receiver`` are ``(scheme, value)`` endpoints."""

    response_id: str
    issued: datetime
    sender: tuple[str, str]
    receiver: tuple[str, str]
    code: str
    reference: str
    description: str
    lines: Sequence[MlrLine] = ()


def write_mlr(mlr: Mlr) -> bytes:
    """The ApplicationResponse bytes (UBL 2.1, Peppol T71)."""
    root = new_root("ApplicationResponse")
    add(root, cbc("CustomizationID"), CUSTOMIZATION_ID)
    add(root, cbc("ProfileID"), PROFILE_ID)
    add(root, cbc("ID"), mlr.response_id)
    add(root, cbc("IssueDate"), mlr.issued.date().isoformat())
    add(root, cbc("IssueTime"), mlr.issued.strftime("%H:%M:%S"))
    for tag, (scheme, value) in (("SenderParty", mlr.sender), ("ReceiverParty", mlr.receiver)):
        add(add(root, cac(tag)), cbc("EndpointID"), value, schemeID=scheme)
    answer = add(root, cac("DocumentResponse"))
    response = add(answer, cac("Response"))
    add(response, cbc("ResponseCode"), mlr.code)
    add(response, cbc("Description"), mlr.description)
    reference = add(answer, cac("DocumentReference"))
    add(reference, cbc("ID"), mlr.reference)
    for line in mlr.lines:
        each = add(answer, cac("LineResponse"))
        add(add(each, cac("LineReference")), cbc("LineID"), line.location)
        said = add(each, cac("Response"))
        add(said, cbc("ResponseCode"), "RE")
        add(said, cbc("Description"), line.text)
        add(add(said, cac("Status")), cbc("StatusReasonCode"), line.reason)
    return serialize(root)
