"""Read a UBL ``cac:Party`` into a domain :class:`Party`, and pick buyer/seller per kind."""

from __future__ import annotations

from collections.abc import Sequence

from edi_gateway.domain.documents import DocumentKind, Party, PartyId
from edi_gateway.ubl.namespaces import cbc, path
from edi_gateway.ubl.read_values import Element, clean, first_text, text

_ENDPOINT = cbc("EndpointID")
_PARTY_IDS = path("cac:PartyIdentification", "cbc:ID")
_NAMES = (
    path("cac:PartyName", "cbc:Name"),
    path("cac:PartyLegalEntity", "cbc:RegistrationName"),
    # UBL 2.0-era documents put the registered name in the tax scheme.
    path("cac:PartyTaxScheme", "cbc:RegistrationName"),
)
_VAT = path("cac:PartyTaxScheme", "cbc:CompanyID")
_COUNTRY = path("cac:PostalAddress", "cac:Country", "cbc:IdentificationCode")


def _party_id(el: Element | None) -> PartyId | None:
    if el is None:
        return None
    value = clean(el.text)
    if value is None:
        return None
    return PartyId(value, clean(el.get("schemeID")))


def read_party(el: Element) -> Party:
    """Interpret a ``cac:Party`` element (endpoint, identifiers, name, VAT id, country)."""
    ids = [pid for pid in map(_party_id, el.iterfind(_PARTY_IDS)) if pid is not None]
    return Party(
        endpoint=_party_id(el.find(_ENDPOINT)),
        ids=ids,
        name=first_text(el, _NAMES),
        vat_id=text(el, _VAT),
        country=text(el, _COUNTRY),
    )


def _first_party(root: Element, paths: Sequence[str]) -> Party | None:
    for p in paths:
        el = root.find(p)
        if el is not None:
            return read_party(el)
    return None


_BUYER_CUSTOMER = path("cac:BuyerCustomerParty", "cac:Party")
_SELLER_SUPPLIER = path("cac:SellerSupplierParty", "cac:Party")
_DESPATCH_SUPPLIER = path("cac:DespatchSupplierParty", "cac:Party")
_DELIVERY_CUSTOMER = path("cac:DeliveryCustomerParty", "cac:Party")
_ACCOUNTING_SUPPLIER = path("cac:AccountingSupplierParty", "cac:Party")
_ACCOUNTING_CUSTOMER = path("cac:AccountingCustomerParty", "cac:Party")
_SENDER = path("cac:SenderParty")
_RECEIVER = path("cac:ReceiverParty")

_ORDERING = ((_BUYER_CUSTOMER,), (_SELLER_SUPPLIER,))
_BILLING = ((_ACCOUNTING_CUSTOMER,), (_ACCOUNTING_SUPPLIER,))


def _paths_for(kind: DocumentKind) -> tuple[tuple[str, ...], tuple[str, ...]]:
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


def read_buyer_seller(root: Element, kind: DocumentKind) -> tuple[Party | None, Party | None]:
    """The (buyer, seller) parties of a document of ``kind``; each role tries its paths in order.

    Order, OrderChange, OrderCancellation, OrderResponse(Simple): BuyerCustomerParty /
    SellerSupplierParty. DespatchAdvice: buyer = BuyerCustomerParty else DeliveryCustomerParty,
    seller = DespatchSupplierParty else SellerSupplierParty. ReceiptAdvice: buyer =
    DeliveryCustomerParty else BuyerCustomerParty, seller = DespatchSupplierParty else
    SellerSupplierParty. Invoice, CreditNote, DebitNote: AccountingCustomerParty /
    AccountingSupplierParty. ApplicationResponse: buyer = ReceiverParty, seller = SenderParty.
    """
    buyer_paths, seller_paths = _paths_for(kind)
    return _first_party(root, buyer_paths), _first_party(root, seller_paths)
