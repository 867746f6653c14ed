"""Read a UBL ``cac:Party`` into a domain :class:`Party`, and pick buyer/seller per kind.

:func:`loose_sender_keys` reads the sender of a document that failed the XSD or
interpretation, so that the failed message still names its partner.
"""

from __future__ import annotations

from collections.abc import Sequence

from edi_gateway.domain.documents import BUYER_SENT, DocumentKind, Party, PartyId
from edi_gateway.ubl.namespaces import cac, cbc, split_clark
from edi_gateway.ubl.read_values import (
    Element,
    Kids,
    Steps,
    children,
    clean,
    find_in,
    group_children,
    steps,
    text_of,
)

_ENDPOINT = cbc("EndpointID")
_IDENTIFICATION = cac("PartyIdentification")
_PARTY_NAME = cac("PartyName")
_LEGAL_ENTITY = cac("PartyLegalEntity")
_TAX_SCHEME = cac("PartyTaxScheme")
_POSTAL_ADDRESS = cac("PostalAddress")
_COUNTRY = cac("Country")
_ID = cbc("ID")
_NAME = cbc("Name")
_REGISTRATION_NAME = cbc("RegistrationName")
_COMPANY_ID = cbc("CompanyID")
_COUNTRY_CODE = cbc("IdentificationCode")


def _party_id(el: Element | None) -> PartyId | None:
    if el is None:
        return None
    value = clean(el.text)
    if value is None:
        return None
    return PartyId(value, clean(el.get("schemeID")))


def _first(el: Element, tag: str) -> Element | None:
    for kid in children(el):
        if kid.tag == tag:
            return kid
    return None


def read_party(el: Element) -> Party:  # noqa: PLR0912 - one pass, a branch per child tag
    """Interpret a ``cac:Party`` element (endpoint, identifiers, name, VAT id, country).

    One pass over the party's children. Each field is the first element at its path, as
    ``find`` would select it: endpoint ``cbc:EndpointID``; ids every
    ``cac:PartyIdentification/cbc:ID``; name the first non-empty of ``cac:PartyName/cbc:Name``,
    ``cac:PartyLegalEntity/cbc:RegistrationName`` and (UBL 2.0-era documents)
    ``cac:PartyTaxScheme/cbc:RegistrationName``; VAT id ``cac:PartyTaxScheme/cbc:CompanyID``;
    country ``cac:PostalAddress/cac:Country/cbc:IdentificationCode``.
    """
    endpoint = name = legal_name = tax_name = vat = country = None
    ids: list[PartyId] = []
    for kid in children(el):
        tag = kid.tag
        if tag == _ENDPOINT:
            if endpoint is None:
                endpoint = kid
        elif tag == _IDENTIFICATION:
            for sub in children(kid):
                if sub.tag == _ID:
                    pid = _party_id(sub)
                    if pid is not None:
                        ids.append(pid)
        elif tag == _PARTY_NAME:
            if name is None:
                name = _first(kid, _NAME)
        elif tag == _LEGAL_ENTITY:
            if legal_name is None:
                legal_name = _first(kid, _REGISTRATION_NAME)
        elif tag == _TAX_SCHEME:
            if tax_name is None:
                tax_name = _first(kid, _REGISTRATION_NAME)
            if vat is None:
                vat = _first(kid, _COMPANY_ID)
        elif tag == _POSTAL_ADDRESS and country is None:
            for sub in children(kid):
                if sub.tag == _COUNTRY:
                    country = _first(sub, _COUNTRY_CODE)
                    if country is not None:
                        break
    return Party(
        endpoint=_party_id(endpoint),
        ids=ids,
        name=text_of(name) or text_of(legal_name) or text_of(tax_name),
        vat_id=text_of(vat),
        country=text_of(country),
    )


def _first_party(root_kids: Kids, paths: Sequence[Steps]) -> Party | None:
    for p in paths:
        el = find_in(root_kids, p)
        if el is not None:
            return read_party(el)
    return None


_BUYER_CUSTOMER = steps("cac:BuyerCustomerParty", "cac:Party")
_SELLER_SUPPLIER = steps("cac:SellerSupplierParty", "cac:Party")
_DESPATCH_SUPPLIER = steps("cac:DespatchSupplierParty", "cac:Party")
_DELIVERY_CUSTOMER = steps("cac:DeliveryCustomerParty", "cac:Party")
_ACCOUNTING_SUPPLIER = steps("cac:AccountingSupplierParty", "cac:Party")
_ACCOUNTING_CUSTOMER = steps("cac:AccountingCustomerParty", "cac:Party")
_SENDER = steps("cac:SenderParty")
_RECEIVER = steps("cac:ReceiverParty")

_ORDERING = ((_BUYER_CUSTOMER,), (_SELLER_SUPPLIER,))
_BILLING = ((_ACCOUNTING_CUSTOMER,), (_ACCOUNTING_SUPPLIER,))


def _paths_for(kind: DocumentKind) -> tuple[tuple[Steps, ...], tuple[Steps, ...]]:
    """(buyer paths, seller paths), each tried in order."""
    if kind is DocumentKind.DESPATCH_ADVICE:
        return (_BUYER_CUSTOMER, _DELIVERY_CUSTOMER), (_DESPATCH_SUPPLIER, _SELLER_SUPPLIER)
    if kind is DocumentKind.RECEIPT_ADVICE:
        return (_DELIVERY_CUSTOMER, _BUYER_CUSTOMER), (_DESPATCH_SUPPLIER, _SELLER_SUPPLIER)
    if kind in (DocumentKind.INVOICE, DocumentKind.CREDIT_NOTE, DocumentKind.DEBIT_NOTE):
        return _BILLING
    if kind is DocumentKind.APPLICATION_RESPONSE:
        # ApplicationResponse names sender and receiver, not buyer and seller: the sender is
        # stored as ``seller`` so that ``Document.sender()`` (seller for this kind) returns it.
        return (_RECEIVER,), (_SENDER,)
    return _ORDERING


def read_buyer_seller(root_kids: Kids, kind: DocumentKind) -> tuple[Party | None, Party | None]:
    """The (buyer, seller) parties of a document of ``kind``; each role tries its paths in order.

    ``root_kids`` are the root's children grouped by :func:`group_children`.

    Order, OrderChange, OrderCancellation, OrderResponse(Simple): BuyerCustomerParty /
    SellerSupplierParty. DespatchAdvice: buyer = BuyerCustomerParty else DeliveryCustomerParty,
    seller = DespatchSupplierParty else SellerSupplierParty. ReceiptAdvice: buyer =
    DeliveryCustomerParty else BuyerCustomerParty, seller = DespatchSupplierParty else
    SellerSupplierParty. Invoice, CreditNote, DebitNote: AccountingCustomerParty /
    AccountingSupplierParty. ApplicationResponse: buyer = ReceiverParty, seller = SenderParty.
    """
    buyer_paths, seller_paths = _paths_for(kind)
    return _first_party(root_kids, buyer_paths), _first_party(root_kids, seller_paths)


def read_billed(root_kids: Kids) -> Party | None:
    """An Order's ``cac:AccountingCustomerParty``: the party its invoices are addressed to."""
    return _first_party(root_kids, (_ACCOUNTING_CUSTOMER,))


def loose_sender_keys(root: Element) -> tuple[str, ...]:
    """The keys of the party that sent the document ``root``, read from a tree that may be
    XSD-invalid: the party :meth:`Document.sender` would give (the buyer of an Order, the
    seller of an OrderResponse, the despatch or accounting supplier...), read as
    :func:`read_buyer_seller` reads it. Empty for a root that is no ``DocumentKind``, or
    when that party is missing or has no identifier."""
    try:
        kind = DocumentKind(split_clark(str(root.tag))[1])
    except ValueError:
        return ()
    buyer, seller = read_buyer_seller(group_children(root), kind)
    party = buyer if kind in BUYER_SENT else seller
    return tuple(party.keys()) if party is not None else ()
