"""XSD refusals: wording, element paths, placing errors while streaming, bounds, loose sender."""

from __future__ import annotations

import pickle

import pytest
from lxml import etree

from edi_gateway.errors import ErrorCode
from edi_gateway.ubl import xsd_check
from edi_gateway.ubl.parse import parse
from edi_gateway.ubl.read_parties import loose_sender_keys
from edi_gateway.ubl.schemas import default_schema_set
from edi_gateway.ubl.validate import XsdInvalid, XsdIssue, validate_document
from edi_gateway.ubl.xsd_errors import MAX_ISSUES, PathFinder, word
from tests import factory

LIMIT = 64 * 1024 * 1024
ORDER_NS = "urn:oasis:names:specification:ubl:schema:xsd:Order-2"
CBC = "{urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2}"


def refusal(payload: bytes) -> XsdInvalid:
    with pytest.raises(XsdInvalid) as info:
        validate_document(payload, max_size=LIMIT)
    return info.value


def misspelt_quantities(payload: bytes) -> bytes:
    """Every order line carries a misspelt element (``cbc:Quantiy``)."""
    return payload.replace(b"<cbc:Quantity ", b"<cbc:Quantiy ").replace(
        b"</cbc:Quantity>", b"</cbc:Quantiy>"
    )


def pretty(payload: bytes) -> bytes:
    root = etree.fromstring(payload)
    return etree.tostring(root, pretty_print=True, xml_declaration=True, encoding="UTF-8")


# --- wording -------------------------------------------------------------------------------------


def test_not_expected_is_worded_with_prefixes() -> None:
    message = (
        f"Element '{CBC}IsueDate': This element is not expected. Expected is one of "
        f"( {CBC}SalesOrderID, {CBC}CopyIndicator, {CBC}UUID, {CBC}IssueDate )."
    )
    assert word(message, ORDER_NS) == (
        "cbc:IsueDate is not expected here; expected one of cbc:SalesOrderID, "
        "cbc:CopyIndicator, cbc:UUID, cbc:IssueDate"
    )


def test_long_expected_lists_are_cut_with_a_count() -> None:
    names = ", ".join(f"{CBC}N{n}" for n in range(12))
    message = f"Element '{CBC}X': This element is not expected. Expected is one of ( {names} )."
    assert word(message).endswith("cbc:N6, cbc:N7 and 4 more")


def test_missing_child_attribute_and_value_wording() -> None:
    cac = "{urn:oasis:names:specification:ubl:schema:xsd:CommonAggregateComponents-2}"
    missing = f"Element '{cac}Party': Missing child element(s). Expected is ( {CBC}ID )."
    assert word(missing) == "cac:Party lacks a required child element; expected cbc:ID"
    attribute = f"Element '{CBC}Quantity', attribute 'foo': The attribute 'foo' is not allowed."
    assert word(attribute) == "cbc:Quantity, attribute 'foo': the attribute 'foo' is not allowed"
    root = f"Element '{{{ORDER_NS}}}Order': No matching global declaration available."
    assert word(root, ORDER_NS) == "Order: no matching global declaration available"
    assert word("Element '{urn:x}A': odd.") == "{urn:x}A: odd"  # a foreign namespace stays


def test_paths_carry_prefixes_and_positions_in_linear_order() -> None:
    root = parse(factory.order("PO-1", factory.items(3)), max_size=LIMIT)
    quantities = root.findall(f".//{CBC}Quantity")
    finder = PathFinder(ORDER_NS)
    assert [finder.path(q) for q in quantities] == [
        f"/Order/cac:OrderLine[{n}]/cac:LineItem[1]/cbc:Quantity[1]" for n in (1, 2, 3)
    ]
    assert finder.path(root) == "/Order"
    assert PathFinder(ORDER_NS).path(quantities[2]) == finder.path(quantities[2])  # no cache


# --- placing errors ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("old", "new"),
    [
        (b"<cbc:IssueDate>", b"<cbc:IssueDay>"),
        (b"<cbc:Quantity ", b"<cbc:Quantity foo='1' bar='2' "),
        (b'unitCode="C62">10<', b'unitCode="C62">ten<'),
        (b"<cbc:ID>PO-1</cbc:ID>", b""),
        (b"<cbc:Name>Article 2</cbc:Name>", b"<cbc:Name>Article 2</cbc:Name><cbc:Name/>"),
        (b"<cac:SellerSupplierParty>", b"<x:y xmlns:x='urn:x'/><cac:SellerSupplierParty>"),
    ],
    ids=["misspelt", "attributes", "value", "missing", "repeated", "foreign"],
)
def test_placed_issues_are_libxml2s_own(old: bytes, new: bytes) -> None:
    """Streamed and placed afterwards, the issues are the ones libxml2 reports on the tree:
    same lines, same elements (compared through lxml's own path), same messages."""
    payload = pretty(factory.order("PO-1", factory.items(3))).replace(old, new)
    assert new in payload or not new
    if b"IssueDay>" in payload:
        payload = payload.replace(b"</cbc:IssueDate>", b"</cbc:IssueDay>")
    tree = parse(payload, max_size=LIMIT)
    schema = default_schema_set().schema("Order")
    assert not schema.validate(tree)
    expected = [(e.line, e.path, word(e.message, ORDER_NS)) for e in schema.error_log]
    found = xsd_check.check(payload, schema)
    located = xsd_check.locate(payload, schema, found.marks, found.total)
    assert found.total == len(expected) == len(located.errors)
    lxml_paths = located.root.getroottree() if located.root is not None else None
    assert lxml_paths is not None
    got = [
        (el.sourceline, lxml_paths.getpath(el), word(message, ORDER_NS))
        for el, message in located.errors
        if el is not None
    ]
    assert [(line, text) for line, _, text in got] == [(line, text) for line, _, text in expected]
    assert [_plain(p) for _, p, _ in got] == [_plain(p) for _, p, _ in expected]


def _plain(path: str | None) -> str:
    """lxml's path without the positions it leaves out for only children ("[1]")."""
    return (path or "").replace("[1]", "").replace("/*", "/Order", 1)


def test_one_line_document_is_placed_by_element() -> None:
    payload = factory.order("PO-1", factory.items(4)).replace(
        b"<cbc:ID>3</cbc:ID>", b"<cbc:ID>3</cbc:ID><cbc:Bogus/>"
    )
    assert payload.count(b"\n") == 1  # the factory writes the whole order on line 2
    error = refusal(payload)
    assert (error.line, error.total) == (2, 1)
    assert error.issues[0].location == "/Order/cac:OrderLine[3]/cac:LineItem[1]/cbc:Bogus[1]"


# --- every line invalid --------------------------------------------------------------------


def test_every_line_invalid_keeps_100_issues_and_counts_all() -> None:
    lines = 1500
    payload = misspelt_quantities(factory.order("PO-BIG", factory.items(lines), detailed=True))
    error = refusal(payload)
    assert (len(error.issues), error.total, error.complete) == (MAX_ISSUES, lines, True)
    assert [issue.location for issue in error.issues] == [
        f"/Order/cac:OrderLine[{n}]/cac:LineItem[1]/cbc:Quantiy[1]" for n in range(1, 101)
    ]
    assert error.message.endswith(f"(and {lines - 1:,} more)")
    assert error.sender_keys == (f"0088:{factory.BUYER_GLN}",)


def test_counting_stops_at_the_limit() -> None:
    """Beyond the limit the rest of the document is not read; the total is a lower bound."""
    lines = 40_000
    payload = misspelt_quantities(factory.order("PO-BIG", factory.items(lines)))
    schema = default_schema_set().schema("Order")
    found = xsd_check.check(payload, schema, max_counted=500)
    assert not found.complete
    assert 500 <= found.total < lines
    assert found.root is None and found.well_formed
    assert xsd_check.check(payload, schema).total == lines  # under MAX_COUNTED: all counted
    issues = [XsdIssue(2, "/Order/cbc:X[1]", "bad")]
    assert XsdInvalid("Order", issues, 500, complete=False).message.endswith(
        "(and at least 499 more)"
    )


# --- the refusal ---------------------------------------------------------------------------------


def test_refusal_pickles_whole() -> None:
    error = refusal(misspelt_quantities(factory.order("PO-1", factory.items(2))))
    copy = pickle.loads(pickle.dumps(error))
    assert isinstance(copy, XsdInvalid)
    assert (copy.code, copy.message, copy.line) == (
        ErrorCode.XSD_INVALID,
        error.message,
        error.line,
    )
    assert (copy.issues, copy.total, copy.sender_keys) == (
        error.issues,
        error.total,
        error.sender_keys,
    )


def test_refusal_keeps_at_most_100_issues() -> None:
    issues = [XsdIssue(n, f"/Order/cbc:X[{n}]", "bad") for n in range(1, 151)]
    error = XsdInvalid("Order", issues, 150)
    assert len(error.issues) == MAX_ISSUES and error.total == 150


def test_wrong_namespace_is_unsupported_not_xsd_invalid() -> None:
    payload = factory.order("PO-1").replace(b"xsd:Order-2", b"xsd:Invoice-2", 1)
    with pytest.raises(Exception) as info:
        validate_document(payload, max_size=LIMIT)
    assert getattr(info.value, "code", None) is ErrorCode.UNSUPPORTED_DOCUMENT


# --- the loose sender ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("payload", "sender"),
    [
        (factory.order("PO-1"), factory.BUYER_GLN),
        (factory.order_response("OR-1", "PO-1", "AP"), factory.SELLER_GLN),
    ],
    ids=["order-buyer", "response-seller"],
)
def test_loose_sender_reads_the_party_the_document_names(payload: bytes, sender: str) -> None:
    broken = payload.replace(b"<cbc:IssueDate>", b"<cbc:IssueDay>").replace(
        b"</cbc:IssueDate>", b"</cbc:IssueDay>"
    )
    assert refusal(broken).sender_keys[0] == f"0088:{sender}"
    assert loose_sender_keys(parse(broken, max_size=LIMIT))[0] == f"0088:{sender}"


def test_loose_sender_of_a_document_without_one_is_empty() -> None:
    assert loose_sender_keys(etree.fromstring(f"<Order xmlns='{ORDER_NS}'/>")) == ()
    assert loose_sender_keys(etree.fromstring("<Catalogue/>")) == ()
