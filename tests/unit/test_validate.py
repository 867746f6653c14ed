"""The validation step: identification, XSD errors with line numbers, kinds, corpus documents."""

from __future__ import annotations

from pathlib import Path

import pytest
from lxml import etree

from edi_gateway.domain.documents import DocumentKind
from edi_gateway.errors import DocumentError, ErrorCode
from edi_gateway.ubl.parse import parse
from edi_gateway.ubl.validate import (
    Validated,
    XsdInvalid,
    expected_namespace,
    identify,
    validate_document,
    xsd_errors,
)
from tests.conftest import shared_dir

DATA = Path(__file__).resolve().parents[1] / "data" / "parse"
ORDER = (DATA / "peppol-order-minimal.xml").read_bytes()
CATALOGUE = (DATA / "catalogue-minimal.xml").read_bytes()
CORPUS = Path(__file__).resolve().parents[2].parent / "shared" / "corpus"
LIMIT = 50 * 1024 * 1024
INTAKE_KINDS = frozenset(DocumentKind)


def corpus(relative: str) -> bytes:
    """Read a corpus file; skip without ../shared/corpus, except under CI where that fails."""
    if not CORPUS.is_dir():
        shared_dir()  # fails under CI=true, skips elsewhere
        pytest.fail(f"{CORPUS} is missing although ../shared is there")
    return (CORPUS / relative).read_bytes()


def refusal(payload: bytes, **kwargs: object) -> DocumentError:
    with pytest.raises(DocumentError) as info:
        validate_document(payload, max_size=LIMIT, **kwargs)  # type: ignore[arg-type]
    return info.value


def line_of(payload: bytes, needle: bytes) -> int:
    return payload[: payload.index(needle)].count(b"\n") + 1


# --- valid documents ----------------------------------------------------------------------------


def test_minimal_peppol_order_is_valid() -> None:
    result = validate_document(ORDER, max_size=LIMIT, kinds=INTAKE_KINDS)
    assert isinstance(result, Validated)
    assert result.root_name == "Order"
    assert result.kind is DocumentKind.ORDER
    assert result.root.findtext("{*}ID") == "PO-4711"


def test_utf16_order_is_valid() -> None:
    payload = ORDER.decode().replace('encoding="UTF-8"', 'encoding="UTF-16"').encode("utf-16")
    assert validate_document(payload, max_size=LIMIT).kind is DocumentKind.ORDER


def test_catalogue_is_checkable_but_not_an_intake_kind() -> None:
    result = validate_document(CATALOGUE, max_size=LIMIT)
    assert (result.root_name, result.kind) == ("Catalogue", None)
    error = refusal(CATALOGUE, kinds=INTAKE_KINDS)
    assert error.code is ErrorCode.UNSUPPORTED_DOCUMENT
    assert "Catalogue" in error.message


def test_kinds_restrict_accepted_types() -> None:
    only_invoices = frozenset({DocumentKind.INVOICE.value})
    assert refusal(ORDER, kinds=only_invoices).code is ErrorCode.UNSUPPORTED_DOCUMENT
    assert validate_document(ORDER, max_size=LIMIT, kinds=frozenset({"Order"})).root_name == "Order"


def test_parse_errors_pass_through() -> None:
    assert refusal(b"").code is ErrorCode.EMPTY
    assert refusal(b"<!DOCTYPE a><a/>").code is ErrorCode.FORBIDDEN_DTD
    assert refusal(ORDER[:500]).code is ErrorCode.NOT_WELL_FORMED
    with pytest.raises(DocumentError) as info:
        validate_document(ORDER, max_size=100)
    assert info.value.code is ErrorCode.TOO_LARGE


# --- identification -----------------------------------------------------------------------------


def test_identify_returns_local_name() -> None:
    assert identify(parse(ORDER, max_size=LIMIT)) == "Order"


def test_wrong_namespace_says_found_and_expected() -> None:
    payload = ORDER.replace(b"xsd:Order-2", b"xsd:Invoice-2", 1)
    error = refusal(payload)
    assert error.code is ErrorCode.UNSUPPORTED_DOCUMENT
    assert "{urn:oasis:names:specification:ubl:schema:xsd:Invoice-2}Order" in error.message
    assert expected_namespace("Order") in error.message


def test_ubl_1_namespace_is_unsupported() -> None:
    payload = ORDER.replace(b"xsd:Order-2", b"xsd:Order-1", 1)
    assert refusal(payload).code is ErrorCode.UNSUPPORTED_DOCUMENT


def test_no_namespace() -> None:
    error = refusal(b"<Order><ID>1</ID></Order>")
    assert error.code is ErrorCode.UNSUPPORTED_DOCUMENT
    assert "no namespace" in error.message


@pytest.mark.parametrize(
    "payload",
    [
        b'<html xmlns="http://www.w3.org/1999/xhtml"><body/></html>',
        b'<BusinessCard xmlns="urn:oasis:names:specification:ubl:schema:xsd:BusinessCard-2"/>',
        b"<a/>",
    ],
    ids=["xhtml", "ubl-2.3-only-type", "plain"],
)
def test_non_ubl_xml_is_unsupported(payload: bytes) -> None:
    error = refusal(payload)
    assert error.code is ErrorCode.UNSUPPORTED_DOCUMENT
    assert "not a UBL 2.1 document type" in error.message


# --- XSD ----------------------------------------------------------------------------------------


def test_xsd_error_has_line_path_and_readable_text() -> None:
    payload = ORDER.replace(b"<cbc:IssueDate>", b"<cbc:IssueDay>").replace(
        b"</cbc:IssueDate>", b"</cbc:IssueDay>"
    )
    with pytest.raises(XsdInvalid) as info:
        validate_document(payload, max_size=LIMIT)
    error = info.value
    assert error.code is ErrorCode.XSD_INVALID
    assert error.line == line_of(payload, b"<cbc:IssueDay>")
    assert (error.total, error.complete, len(error.issues)) == (1, True, 1)
    issue = error.issues[0]
    assert (issue.line, issue.location) == (error.line, "/Order/cbc:IssueDay[1]")
    assert issue.text.startswith("cbc:IssueDay is not expected here; expected one of ")
    assert issue.text.endswith("cbc:IssueDate (required here: cbc:IssueDate)")  # xmlschema's
    assert "{urn:" not in error.message and "more)" not in error.message
    assert error.message == f"not a valid UBL 2.1 Order: /Order/cbc:IssueDay[1]: {issue.text}"
    assert str(issue) == f"line {error.line}: /Order/cbc:IssueDay[1]: {issue.text}"


def test_several_xsd_errors_are_counted_and_attached() -> None:
    payload = ORDER.replace(b"<cbc:Quantity", b"<cbc:Quantity unknownAttr='1'").replace(
        b">10.00<", b">ten<"
    )
    with pytest.raises(XsdInvalid) as info:
        validate_document(payload, max_size=LIMIT)
    issues = info.value.issues
    assert len(issues) == info.value.total >= 2
    assert info.value.message.endswith(f"(and {len(issues) - 1} more)")
    assert info.value.line == issues[0].line == line_of(payload, b"unknownAttr")
    assert issues[0].text == (
        "cbc:Quantity, attribute 'unknownAttr': the attribute 'unknownAttr' is not allowed"
    )
    assert issues[1].text == "cbc:PriceAmount: 'ten' is not a valid value of the local atomic type"
    assert (
        issues[1].location
        == "/Order/cac:OrderLine[1]/cac:LineItem[1]/cac:Price[1]/cbc:PriceAmount[1]"
    )
    assert all(issue.line and issue.location for issue in issues)


def test_xsd_errors_accepts_tree_or_root() -> None:
    root = parse(ORDER.replace(b"<cbc:ID>PO-4711</cbc:ID>", b""), max_size=LIMIT)
    from_root = xsd_errors(root, "Order")
    from_tree = xsd_errors(root.getroottree(), "Order")
    assert from_root == from_tree
    assert len(from_root) == 1
    assert from_root[0].location == "/Order/cbc:IssueDate[1]"
    assert xsd_errors(parse(ORDER, max_size=LIMIT), "Order") == []


def test_large_order_validates() -> None:
    start, end = ORDER.index(b"  <cac:OrderLine>"), ORDER.index(b"</Order>")
    lines = b"".join(
        ORDER[start:end].replace(b"<cbc:ID>1</cbc:ID>", b"<cbc:ID>%d</cbc:ID>" % n)
        for n in range(1, 2001)
    )
    result = validate_document(ORDER[:start] + lines + ORDER[end:], max_size=LIMIT)
    assert len(result.root.findall("{*}OrderLine")) == 2000


# --- corpus -------------------------------------------------------------------------------------


def test_corpus_order_good_is_valid() -> None:
    payload = corpus("oasis-ubl-2.1/val/order-test-good.xml")
    assert validate_document(payload, max_size=LIMIT).kind is DocumentKind.ORDER


def test_corpus_order_bad1_is_invalid_at_line_50() -> None:
    with pytest.raises(XsdInvalid) as info:
        validate_document(corpus("oasis-ubl-2.1/val/order-test-bad1.xml"), max_size=LIMIT)
    assert info.value.line == 50
    assert "ChannelCod" in info.value.message


def test_peppol_t116_example_fails_ubl21_xsd() -> None:
    """T116 uses cac:OrderChangeDocumentReference (UBL 2.2 only): XSD_INVALID, see ADR 0002."""
    payload = corpus(
        "peppol-validation-artefacts/2026.5/examples/OrderResponseAdvanced_Example.xml"
    )
    with pytest.raises(XsdInvalid) as info:
        validate_document(payload, max_size=LIMIT, kinds=INTAKE_KINDS)
    assert "OrderChangeDocumentReference" in info.value.message


def test_validated_root_is_a_live_element() -> None:
    result = validate_document(ORDER, max_size=LIMIT)
    assert isinstance(result.root, etree._Element)
    assert result.root.getroottree().docinfo.encoding == "UTF-8"
