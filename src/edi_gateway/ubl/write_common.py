"""Building blocks shared by the UBL writers: elements, values, parties, items, the header.

Everything here builds lxml elements in Clark notation (see :mod:`edi_gateway.ubl.namespaces`)
and appends children in the order the UBL 2.1 XSD sequences demand. Data that a Peppol rule
makes mandatory but the domain object lacks is not invented: it is collected in a
:class:`Problems` list and raised together as one :class:`WriteError`.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date
from decimal import Decimal
from typing import cast

from lxml import etree

from edi_gateway.domain.documents import Document, Line, Party, Quantity
from edi_gateway.ubl.namespaces import CAC, CBC, cac, cbc, maindoc_ns, root_tag
from edi_gateway.ubl.read_values import clean

Element = etree._Element

GTIN_SCHEME = "0160"
"""ISO 6523 ICD of GS1 GTINs, the only standard item scheme the domain's bare IDs can name."""
_GTIN_LENGTHS = frozenset({8, 12, 13, 14})


class WriteError(ValueError):
    """The domain document cannot become a valid Peppol document: data is missing or wrong.

    ``problems`` names every issue found (the message joins them), so a caller fixes them all
    at once rather than one per attempt.
    """

    def __init__(self, document: str, problems: Iterable[str]) -> None:
        self.problems: tuple[str, ...] = tuple(problems)
        super().__init__(f"cannot write {document}: " + "; ".join(self.problems))


class Problems:
    """What a writer found missing or wrong, in document order."""

    def __init__(self, document: str) -> None:
        self.document = document
        self.found: list[str] = []

    def add(self, problem: str) -> None:
        """Record one problem."""
        self.found.append(problem)

    def raise_any(self) -> None:
        """Raise :class:`WriteError` listing every problem, if there is one."""
        if self.found:
            raise WriteError(self.document, self.found)


def new_root(document_name: str) -> Element:
    """The root element of a UBL main document: default namespace plus ``cac`` and ``cbc``."""
    nsmap = {None: maindoc_ns(document_name), "cac": CAC, "cbc": CBC}
    # lxml-stubs type nsmap as Mapping[str, str]; lxml takes None for the default namespace.
    return etree.Element(root_tag(document_name), nsmap=cast("dict[str, str]", nsmap))


XML_DECLARATION = b'<?xml version="1.0" encoding="UTF-8"?>\n'


def serialize(root: Element) -> bytes:
    """UTF-8 bytes with an XML declaration, indented for people reading them.

    The declaration is written by hand in the customary double quotes (lxml writes single
    quotes, which some receiving systems' prefix checks do not expect).
    """
    body = etree.tostring(root, xml_declaration=False, encoding="UTF-8", pretty_print=True)
    return XML_DECLARATION + body


def add(parent: Element, tag: str, text: str | None = None, **attrs: str) -> Element:
    """Append the child ``tag`` (a Clark name) with optional text and attributes."""
    el = etree.SubElement(parent, tag, attrs)
    if text is not None:
        el.text = text
    return el


def decimal_text(value: Decimal) -> str:
    """Plain decimal notation (never an exponent, which ``xsd:decimal`` refuses)."""
    return format(value, "f")


def date_text(value: date) -> str:
    """``YYYY-MM-DD``."""
    return value.isoformat()


def add_quantity(
    parent: Element, tag: str, quantity: Quantity, where: str, problems: Problems
) -> None:
    """Append a quantity with its ``@unitCode``, which Peppol makes mandatory."""
    if not quantity.value.is_finite():
        problems.add(f"{where}: quantity {quantity.value} is not a number")
        return
    unit = clean(quantity.unit)
    if unit is None:
        problems.add(f"{where}: quantity {quantity.value} has no unit code")
        return
    add(parent, tag, decimal_text(quantity.value), unitCode=unit)


def add_header(
    root: Element,
    doc: Document,
    *,
    customization: str,
    profile: str,
    problems: Problems,
) -> None:
    """CustomizationID, ProfileID, ID and IssueDate: the head every Peppol document starts with.

    The domain's own CustomizationID / ProfileID win over the given Peppol defaults.
    """
    add(root, cbc("CustomizationID"), clean(doc.customization_id) or customization)
    add(root, cbc("ProfileID"), clean(doc.profile_id) or profile)
    document_id = clean(doc.document_id)
    if document_id is None:
        problems.add("the document ID is empty")
    add(root, cbc("ID"), document_id or "")
    if doc.issue_date is None:
        problems.add("the issue date is missing")
    else:
        add(root, cbc("IssueDate"), date_text(doc.issue_date))


def add_notes(root: Element, notes: Iterable[str | None]) -> None:
    """One ``cbc:Note`` per distinct non-blank note, in the order given."""
    for note in dict.fromkeys(clean(n) for n in notes):
        if note is not None:
            add(root, cbc("Note"), note)


def add_party(
    parent: Element,
    role: str,
    party: Party | None,
    *,
    with_address: bool,
    name_required: bool,
    problems: Problems,
) -> None:
    """``cac:<role>/cac:Party`` as the Peppol post-award transactions want it.

    EndpointID with its scheme (mandatory), every identifier as a PartyIdentification, the
    country as ``PostalAddress/Country`` when ``with_address`` (T16 only; T76 forbids an
    address), and the name as ``PartyLegalEntity/RegistrationName``. Without a name a party
    needs an identifier (T76-R001/R002); ``name_required`` when the legal entity is mandatory.
    """
    if party is None:
        problems.add(f"the {role} is missing")
        return
    wrapper = add(parent, cac(role))
    el = add(wrapper, cac("Party"))
    endpoint = party.endpoint
    if endpoint is None or clean(endpoint.value) is None or clean(endpoint.scheme) is None:
        problems.add(f"the {role} has no endpoint ID with a scheme (EAS code)")
    else:
        add(el, cbc("EndpointID"), clean(endpoint.value), schemeID=clean(endpoint.scheme) or "")
    has_id = False
    for pid in party.ids:
        value = clean(pid.value)
        if value is None:
            continue
        has_id = True
        identification = add(el, cac("PartyIdentification"))
        scheme = clean(pid.scheme)
        if scheme is None:
            add(identification, cbc("ID"), value)
        else:
            add(identification, cbc("ID"), value, schemeID=scheme)
    country = clean(party.country)
    if with_address and country is not None:
        address = add(el, cac("PostalAddress"))
        add(add(address, cac("Country")), cbc("IdentificationCode"), country)
    name = clean(party.name)
    if name is not None:
        add(add(el, cac("PartyLegalEntity")), cbc("RegistrationName"), name)
    elif name_required:
        problems.add(f"the {role} has no name (PartyLegalEntity/RegistrationName)")
    elif not has_id:
        problems.add(f"the {role} has neither a name nor an identifier")


def standard_item_scheme(value: str) -> str | None:
    """The ICD of a standard item ID the domain keeps without one: GTIN when it looks like one.

    ``StandardItemIdentification/cbc:ID/@schemeID`` is mandatory in Peppol ordering; a value of
    8, 12, 13 or 14 digits is taken as a GS1 GTIN (``0160``), anything else cannot be written.
    """
    return (
        GTIN_SCHEME if value.isascii() and value.isdigit() and len(value) in _GTIN_LENGTHS else None
    )


def add_item(parent: Element, line: Line, where: str, problems: Problems) -> bool:
    """``cac:Item``: Name (mandatory in Peppol), buyer's, seller's and standard item IDs.

    Returns whether the item is identified by the seller's or a standard (GTIN) ID, which a
    despatch line must be (PEPPOL-T16-R003).
    """
    item = add(parent, cac("Item"))
    name = clean(line.item_name)
    if name is None:
        problems.add(f"{where}: the item has no name")
    else:
        add(item, cbc("Name"), name)
    buyers = clean(line.buyer_item_id)
    if buyers is not None:
        add(add(item, cac("BuyersItemIdentification")), cbc("ID"), buyers)
    sellers = clean(line.seller_item_id)
    if sellers is not None:
        add(add(item, cac("SellersItemIdentification")), cbc("ID"), sellers)
    standard = clean(line.standard_item_id)
    scheme = standard_item_scheme(standard) if standard is not None else None
    if standard is not None and scheme is not None:
        add(add(item, cac("StandardItemIdentification")), cbc("ID"), standard, schemeID=scheme)
    return sellers is not None or scheme is not None


def check_unique_line_ids(lines: Iterable[Line], problems: Problems) -> None:
    """Every line ID must be non-blank and unique within the document (PEPPOL-T76-R003)."""
    seen: set[str] = set()
    for position, line in enumerate(lines, start=1):
        line_id = clean(line.line_id)
        if line_id is None:
            problems.add(f"line {position}: the line ID is empty")
        elif line_id in seen:
            problems.add(f"line {line_id}: the line ID is used twice")
        else:
            seen.add(line_id)
