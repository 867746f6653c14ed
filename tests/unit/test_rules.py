"""Official Peppol rule releases at run time: install, verify, compile, evaluate, findings.

The decisive test compares every finding of our compiled rule sets with the straight run of
the official XSLT (as phive-rules compiled it with the ISO skeleton) over the release's own
examples and over generated documents that break rules on purpose.
"""

from __future__ import annotations

import json
import re
import shutil
import tarfile
import tempfile
import zipfile
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from lxml import etree

from edi_gateway.app import Gateway
from edi_gateway.config import Settings
from edi_gateway.domain.findings import Finding, apply_severity
from edi_gateway.errors import ErrorCode, GatewayError
from edi_gateway.rules.catalog import RELEASES, rule_sets
from edi_gateway.rules.evaluate import RuleEngine, check_document
from edi_gateway.rules.install import identify, install, listing, load
from edi_gateway.store.db import Store
from edi_gateway.store.queries import message_detail
from edi_gateway.ubl.namespaces import CAC, CBC
from edi_gateway.ubl.parse import parse
from tests import factory as f
from tests.conftest import shared_dir
from tests.unit.support import receive

RELEASE = "2026.5"
SVRL = "http://purl.oclc.org/dsdl/svrl"


@pytest.fixture(scope="module")
def artefacts() -> Path:
    return shared_dir() / "corpus" / "peppol-validation-artefacts" / RELEASE


@pytest.fixture(scope="module")
def rules_dir(artefacts: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = tmp_path_factory.mktemp("rules")
    install(artefacts, target)
    return target


@pytest.fixture(scope="module")
def engine(rules_dir: Path) -> RuleEngine:
    return RuleEngine(load(rules_dir, RELEASE))


# --- install, list, verify -------------------------------------------------------------------


def test_install_from_the_folder_lists_it_verified(rules_dir: Path) -> None:
    [row] = listing(rules_dir, None)
    assert (row.name, row.active, row.verified, row.rule_sets) == (RELEASE, True, True, 15)
    assert sorted(p.stem for p in (rules_dir / RELEASE / "sch").iterdir()) == sorted(
        RELEASES[RELEASE]
    )


@pytest.mark.parametrize("kind", ["zip", "tar.gz"])
def test_install_from_an_archive_of_any_layout(artefacts: Path, tmp_path: Path, kind: str) -> None:
    archive = tmp_path / f"release.{kind}"
    if kind == "zip":
        with zipfile.ZipFile(archive, "w") as z:
            for sch in (artefacts / "sch").glob("*.sch"):
                z.write(sch, f"peppol-2026.5/deep/{sch.name}")
    else:
        with tarfile.open(archive, "w:gz") as t:
            t.add(artefacts / "sch", arcname="release/rules")
    release = install(archive, tmp_path / "rules")
    assert release.name == RELEASE and len(release.sets) == 15


def test_a_changed_file_is_refused_naming_it(artefacts: Path, tmp_path: Path) -> None:
    copy = tmp_path / "release"
    shutil.copytree(artefacts / "sch", copy)
    with (copy / "PEPPOLBIS-T01.sch").open("a") as fh:
        fh.write("\n")
    with pytest.raises(GatewayError) as err:
        install(copy, tmp_path / "rules")
    assert err.value.code is ErrorCode.RULES_UNAVAILABLE
    assert "PEPPOLBIS-T01.sch has sha256" in err.value.message
    assert not (tmp_path / "rules" / RELEASE).exists()


def test_a_folder_without_the_release_says_what_is_missing(artefacts: Path, tmp_path: Path) -> None:
    copy = tmp_path / "release"
    shutil.copytree(artefacts / "sch", copy)
    (copy / "PEPPOLBIS-T16.sch").unlink()
    with pytest.raises(GatewayError, match=r"PEPPOLBIS-T16\.sch is missing"):
        identify(copy)


def test_an_installed_release_changed_afterwards_does_not_load(
    artefacts: Path, tmp_path: Path
) -> None:
    install(artefacts, tmp_path)
    compiled = tmp_path / RELEASE / "compiled" / "PEPPOLBIS-T76.xslt"
    compiled.write_text(compiled.read_text().replace("not((", "((", 1))
    with pytest.raises(GatewayError, match="changed since installed"):
        load(tmp_path, RELEASE)
    [row] = listing(tmp_path, None)
    assert not row.verified and row.problem and "PEPPOLBIS-T76" in row.problem


# --- the same findings as the official run ----------------------------------------------------


def _official(artefacts: Path, name: str, payload: bytes) -> Counter[tuple[str, str, str, str]]:
    from saxonche import PySaxonProcessor

    processor = PySaxonProcessor(license=False)
    xslt = processor.new_xslt30_processor().compile_stylesheet(
        stylesheet_file=str(artefacts / "xslt" / f"{name}.xslt")
    )
    with tempfile.NamedTemporaryFile(suffix=".xml") as file:  # the bytes, as a file: as-is
        file.write(payload)
        file.flush()
        document = processor.parse_xml(xml_file_name=file.name)
    report = etree.fromstring(xslt.transform_to_string(xdm_node=document).encode())
    found: Counter[tuple[str, str, str, str]] = Counter()
    for fa in report.iter(f"{{{SVRL}}}failed-assert", f"{{{SVRL}}}successful-report"):
        text = " ".join("".join(fa.itertext()).split())
        found[
            (fa.get("id") or "", fa.get("flag") or "", _ours(fa.get("location") or ""), text)
        ] += 1
    return found


_STEP = re.compile(r"/\*:([\w.-]+)\[namespace-uri\(\)='([^']*)'\](\[\d+\])")
_ATTR = re.compile(r"/@\*\[local-name\(\)='([^']*)' and namespace-uri\(\)='([^']*)'\]")


def _ours(location: str) -> str:
    """The skeleton's location written our way (``/ubl:Order/cac:OrderLine[3]``)."""
    from edi_gateway.rules.evaluate import PREFIXES

    first = [True]

    def step(m: re.Match[str]) -> str:
        local, ns, index = m.groups()
        if first[0]:
            first[0] = False
            return f"/ubl:{local}"
        prefix = PREFIXES.get(ns)
        return f"/{prefix}:{local}{index}" if prefix else f"/Q{{{ns}}}{local}{index}"

    location = _STEP.sub(step, location)
    return _ATTR.sub(lambda m: f"/@{m[1]}", location)


def _mine(findings: list[Finding], name: str) -> Counter[tuple[str, str, str, str]]:
    return Counter(
        (x.rule_id, x.flag, x.location or "", x.text) for x in findings if x.rule_set == name
    )


def _examples(artefacts: Path) -> Iterator[Path]:
    for path in sorted((artefacts / "examples").rglob("*.xml")):
        root = parse(path.read_bytes(), max_size=1 << 26)
        if rule_sets(root.findtext(f"{{{CBC}}}CustomizationID")):
            yield path


def _compare(engine: RuleEngine, artefacts: Path, payload: bytes) -> int:
    root = parse(payload, max_size=1 << 26)
    mine = engine.check(payload, root)
    compared = 0
    for name in engine.rule_sets_for(root):
        official = _official(artefacts, name, payload)
        assert _mine(mine, name) == official, name
        compared += sum(official.values())
    return compared


def test_every_official_example_gets_the_official_findings(
    engine: RuleEngine, artefacts: Path
) -> None:
    examples = list(_examples(artefacts))
    assert len(examples) >= 40
    covered: set[str] = set()
    for path in examples:
        _compare(engine, artefacts, path.read_bytes())
        covered.update(engine.rule_sets_for(parse(path.read_bytes(), max_size=1 << 26)))
    assert len(covered) >= 14  # the examples are clean: the generated cases below break rules


def _broken_order(*, same_line_ids: bool = True) -> bytes:
    payload = f.order("PO-R1", f.items(30), detailed=True).decode()
    payload = payload.replace('unitCode="C62"', 'unitCode="XYZQ"', 7)
    payload = payload.replace(">EUR<", ">ZZZ<", 1).replace(
        'currencyID="EUR"', 'currencyID="ZZZ"', 9
    )
    if same_line_ids:  # the gateway's own reading refuses this first (DUPLICATE_LINE_ID)
        payload = payload.replace("<cbc:ID>3</cbc:ID>", "<cbc:ID>2</cbc:ID>", 1)
    payload = payload.replace("<cbc:DocumentCurrencyCode>", "<cbc:Note/><cbc:DocumentCurrencyCode>")
    return payload.encode()


@pytest.mark.parametrize(
    "make",
    [
        _broken_order,
        lambda: f.order("PO-R2", f.items(400), detailed=True),
        lambda: f.order_response("OR-1", "PO-R3", "CA", [("1", "5", "EA"), ("2", "0", "EA")]),
        lambda: f.despatch_advice("DA-1", "PO-R4", [("1", "5"), ("2", "7")]),
        lambda: f.invoice("INV-1", "PO-R5", [("1", "5", "10.00"), ("2", "3", "99999")]),
        lambda: f.invoice("CN-1", "PO-R6", [("1", "2", "10.00")], root="CreditNote"),
    ],
)
def test_generated_documents_get_the_official_findings(
    engine: RuleEngine, artefacts: Path, make: Any
) -> None:
    payload = make()
    try:
        parse(payload, max_size=1 << 26)
    except GatewayError:
        pytest.fail("the generated case must at least be well-formed")
    _compare(engine, artefacts, payload)


def test_every_line_failing_is_located_on_its_line(engine: RuleEngine) -> None:
    payload = f.order("PO-R7", f.items(300), detailed=True).replace(
        b'unitCode="C62"', b'unitCode="Q"'
    )
    found = [
        x
        for x in engine.check(payload, parse(payload, max_size=1 << 26))
        if x.rule_id == "PEPPOL-T01-B24102"
    ]
    assert len(found) == 300
    assert found[-1].location == "/ubl:Order/cac:OrderLine[300]/cac:LineItem[1]/cbc:Quantity[1]"


def test_severity_overrides_as_custom_levels() -> None:
    findings = [
        Finding("S", "R-1", "fatal", None, None, "a"),
        Finding("S", "R-2", "warning", None, None, "b"),
        Finding("S", "R-3", "fatal", None, None, "c"),
    ]
    levels: dict[str, Any] = {"R-1": "warning", "R-2": "fatal", "R-3": "ignore"}
    assert [(x.rule_id, x.flag) for x in apply_severity(findings, levels)] == [
        ("R-1", "warning"),
        ("R-2", "fatal"),
    ]


def test_a_document_outside_peppol_is_a_finding_only_when_required(engine: RuleEngine) -> None:
    payload = f.order("PO-R8", f.items(2)).replace(b"urn:fdc:peppol.eu:poacc:trns:order:3", b"x")
    [finding] = check_document(engine, payload, max_size=1 << 20)
    assert finding.rule_id == "CUSTOMIZATION" and finding.flag == "fatal"
    assert check_document(engine, payload, max_size=1 << 20, required=False) == []


# --- at intake, per partner -----------------------------------------------------------------


def _gateway(store: Store, tmp_path: Path, rules: Path, **buyer: Any) -> Gateway:
    settings = Settings.model_validate(
        {
            "path": tmp_path / "gateway.yaml",
            "rules": {"dir": str(rules)},
            "partners": [f.buyer_partner(**buyer), f.seller_partner()],
        },
        context={"base_dir": tmp_path},
    )
    return Gateway(settings, store)


def _message(gateway: Gateway, mid: int) -> dict[str, Any]:
    with gateway.store.session() as session:
        return message_detail(session, mid)


def test_a_peppol_partner_s_broken_order_fails_with_its_findings(
    store: Store, tmp_path: Path, rules_dir: Path
) -> None:
    gateway = _gateway(store, tmp_path, rules_dir, validation="peppol")
    shown = _message(gateway, receive(gateway, _broken_order(same_line_ids=False)))
    assert (shown["state"], shown["error_code"], shown["partner"]) == (
        "failed",
        "RULES_FAILED",
        "buyer",
    )
    ids = {x["rule_id"] for x in shown["findings"]}
    assert {"PEPPOL-T01-B01001", "PEPPOL-T01-B24102", "PEPPOL-COMMON-R001"} <= ids
    assert all(x["location"].startswith("/ubl:Order") for x in shown["findings"])
    assert shown["findings"][0]["line"] is not None


def test_warnings_are_kept_and_processing_goes_on(
    store: Store, tmp_path: Path, rules_dir: Path
) -> None:
    fatal_ids = {
        x.rule_id for x in _findings_of(rules_dir, f.order("PO-W", f.items(3))) if x.flag == "fatal"
    }
    gateway = _gateway(
        store,
        tmp_path,
        rules_dir,
        validation="peppol",
        severity=dict.fromkeys(fatal_ids, "warning"),
    )
    shown = _message(gateway, receive(gateway, f.order("PO-W", f.items(3))))
    assert shown["state"] == "processed" and shown["error_code"] is None
    assert shown["findings"] and {x["flag"] for x in shown["findings"]} == {"warning"}


def _findings_of(rules_dir: Path, payload: bytes) -> list[Finding]:
    return RuleEngine(load(rules_dir, RELEASE)).check(payload, parse(payload, max_size=1 << 26))


def test_an_xsd_partner_gets_no_rules(store: Store, tmp_path: Path, rules_dir: Path) -> None:
    gateway = _gateway(store, tmp_path, rules_dir)
    shown = _message(gateway, receive(gateway, _broken_order(same_line_ids=False)))
    assert shown["state"] == "processed" and shown["findings"] == []


def test_peppol_without_an_installed_release_fails_clearly(store: Store, tmp_path: Path) -> None:
    gateway = _gateway(store, tmp_path, tmp_path / "no-rules", validation="peppol")
    shown = _message(gateway, receive(gateway, f.order("PO-N", f.items(2))))
    assert shown["error_code"] == "RULES_UNAVAILABLE"
    assert "rules install" in shown["error_detail"]


# --- on the way out ----------------------------------------------------------------------------


def _sender(store: Store, tmp_path: Path, rules: Path, **buyer: Any) -> Gateway:
    """A gateway with the rules installed and the buyer reached through an outbound folder."""
    settings = Settings.model_validate(
        {
            "path": tmp_path / "gateway.yaml",
            "rules": {"dir": str(rules)},
            "partners": [f.buyer_partner(outbound="to-buyer", **buyer), f.seller_partner()],
            "connectors": [
                {"name": "to-buyer", "type": "folder", "direction": "out", "path": "out"}
            ],
        },
        context={"base_dir": tmp_path},
    )
    return Gateway(settings, store)


def _queue(gateway: Gateway, payload: bytes) -> int:
    from edi_gateway.outbound.outbox import Outgoing, enqueue

    with gateway.store.session() as session:
        return enqueue(
            session,
            Outgoing("buyer", "to-buyer", "OrderResponse", "OR-9", payload),
            gateway.settings,
        )


def test_an_outgoing_document_that_breaks_a_rule_is_held_with_its_findings(
    store: Store, tmp_path: Path, rules_dir: Path, artefacts: Path
) -> None:
    from edi_gateway.outbound.outbox import flush
    from edi_gateway.store.queries import findings_of

    gateway = _sender(store, tmp_path, rules_dir)
    good = (artefacts / "examples" / "OrderResponse_Example.xml").read_bytes()
    bad = good.replace(b"</cbc:OrderResponseCode>", b"</cbc:OrderResponseCode><cbc:Note/>")
    good_id, bad_id = _queue(gateway, good), _queue(gateway, bad)
    states = flush(gateway.store, gateway.settings)
    assert states[bad_id] == "failed" and states[good_id] == "sent"
    sent = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert sent == ["OrderResponse-OR-9.xml"]  # the good one (the names come from the rows)
    with gateway.store.session() as session:
        held = findings_of(session, outbox_id=bad_id)
        from edi_gateway.store.tables import OutboxRow

        row = session.get(OutboxRow, bad_id)
        assert row is not None and row.last_error and row.last_error.startswith("RULES_FAILED")
    assert any(x["flag"] == "fatal" for x in held)


# --- answering the sender (MLR, T71) -----------------------------------------------------------

AR_CODE = "cac:DocumentResponse/cac:Response/cbc:ResponseCode/text()"
AR_LINES = "cac:DocumentResponse/cac:LineResponse"
AR_REASONS = f"{AR_LINES}/cac:Response/cac:Status/cbc:StatusReasonCode/text()"


def _mlr_gateway(
    store: Store, tmp_path: Path, rules: Path, mlr: str, severity: dict[str, str] | None = None
) -> Gateway:
    return _sender(store, tmp_path, rules, validation="peppol", mlr=mlr, severity=severity or {})


def _sent_mlrs(gateway: Gateway, tmp_path: Path, engine: RuleEngine) -> list[etree._Element]:
    """Deliver the outbox (each MLR passing the T71 rules first) and read what was sent."""
    from edi_gateway.outbound.outbox import flush

    states = flush(gateway.store, gateway.settings)
    assert set(states.values()) <= {"sent"}, states
    out = []
    for path in sorted((tmp_path / "out").glob("ApplicationResponse-*.xml")):
        payload = path.read_bytes()
        root = parse(payload, max_size=1 << 26)
        assert engine.rule_sets_for(root) == ("PEPPOLBIS-T71",)
        assert not [x for x in engine.check(payload, root) if x.flag == "fatal"]
        out.append(root)
    return out


def _texts(root: etree._Element, path: str) -> list[str]:
    ns = {"cbc": CBC, "cac": CAC}
    return [str(x) for x in root.xpath(path, namespaces=ns)]


def test_a_refused_order_is_answered_with_an_mlr_listing_the_rules(
    store: Store, tmp_path: Path, rules_dir: Path, engine: RuleEngine
) -> None:
    gateway = _mlr_gateway(store, tmp_path, rules_dir, "on_failure")
    receive(gateway, _broken_order(same_line_ids=False))
    [mlr] = _sent_mlrs(gateway, tmp_path, engine)
    assert _texts(mlr, AR_CODE) == ["RE"]
    assert _texts(mlr, "cac:DocumentResponse/cac:DocumentReference/cbc:ID/text()") == ["PO-R1"]
    assert _texts(mlr, "cac:ReceiverParty/cbc:EndpointID/text()") == [f.BUYER_GLN]
    assert _texts(mlr, "cac:SenderParty/cbc:EndpointID/text()") == [f.SELLER_GLN]
    assert set(_texts(mlr, AR_REASONS)) == {"BV"}
    lines = _texts(mlr, f"{AR_LINES}/cac:LineReference/cbc:LineID/text()")
    assert "/ubl:Order/cbc:DocumentCurrencyCode[1]" in lines


def test_an_xsd_invalid_order_is_answered_with_syntax_lines(
    store: Store, tmp_path: Path, rules_dir: Path, engine: RuleEngine
) -> None:
    gateway = _mlr_gateway(store, tmp_path, rules_dir, "on_failure")
    bad = f.order("PO-X", f.items(2)).replace(b"IssueDate>", b"IsueDate>")
    shown = _message(gateway, receive(gateway, bad))
    assert (shown["error_code"], shown["partner"]) == ("XSD_INVALID", "buyer")
    assert {(x["rule_id"], x["flag"]) for x in shown["findings"]} == {("XSD", "fatal")}
    assert shown["findings"][0]["location"] and shown["findings"][0]["line"]
    [mlr] = _sent_mlrs(gateway, tmp_path, engine)
    assert _texts(mlr, AR_CODE) == ["RE"] and set(_texts(mlr, AR_REASONS)) == {"SV"}
    assert _texts(mlr, "cac:SenderParty/cbc:EndpointID/text()") == [f.SELLER_GLN]


def test_always_also_acknowledges_what_was_taken(
    store: Store, tmp_path: Path, rules_dir: Path, engine: RuleEngine
) -> None:
    order = f.order("PO-A", f.items(2))
    found = engine.check(order, parse(order, max_size=1 << 20))
    lowered = {x.rule_id: "warning" for x in found if x.flag == "fatal"}
    gateway = _mlr_gateway(store, tmp_path, rules_dir, "always", lowered)
    assert _message(gateway, receive(gateway, order))["state"] == "processed"
    [mlr] = _sent_mlrs(gateway, tmp_path, engine)
    assert _texts(mlr, AR_CODE) == ["AP"] and _texts(mlr, AR_LINES) == []


def test_mlr_needs_an_outbound_connector(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="needs outbound"):
        Settings.model_validate(
            {"path": tmp_path / "g.yaml", "partners": [f.buyer_partner(mlr="always")]},
            context={"base_dir": tmp_path},
        )


def test_the_rules_commands(
    artefacts: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from edi_gateway.cli import main

    config = tmp_path / "gateway.yaml"
    config.write_text("store: {url: 'sqlite:///g.db'}\n", encoding="utf-8")
    assert main(["--config", str(config), "rules", "list"]) == 0
    assert "no rule release installed" in capsys.readouterr().out
    assert main(["--config", str(config), "rules", "install", str(artefacts)]) == 0
    assert "installed Peppol rule release 2026.5" in capsys.readouterr().out
    assert main(["--config", str(config), "rules", "list", "--json"]) == 0
    [listed] = json.loads(capsys.readouterr().out)["releases"]
    assert (
        listed["active"]
        and listed["verified"]
        and listed["path"] == str(tmp_path / "rules" / RELEASE)
    )
    (tmp_path / "empty").mkdir()
    assert main(["--config", str(config), "rules", "install", str(tmp_path / "empty")]) == 1
    assert "RULES_UNAVAILABLE" in capsys.readouterr().err


# --- what the review broke, kept broken no more -------------------------------------------------


def _order_with_comment_in_a_code() -> bytes:
    """XSD-valid; the official rules raise on it (normalize-space of two text nodes)."""
    return f.order("PO-C", f.items(2)).replace(b">EUR<", b">EU<!-- sic -->R<", 1)


def test_a_document_the_rules_cannot_evaluate_is_a_coded_failure_not_a_bug(
    store: Store, tmp_path: Path, rules_dir: Path
) -> None:
    gateway = _gateway(store, tmp_path, rules_dir, validation="peppol")
    shown = _message(gateway, receive(gateway, _order_with_comment_in_a_code()))
    assert shown["error_code"] == "RULES_FAILED"
    assert "cannot evaluate" in shown["error_detail"]


def test_one_row_the_rules_cannot_evaluate_never_holds_up_the_others(
    store: Store, tmp_path: Path, rules_dir: Path, artefacts: Path
) -> None:
    from edi_gateway.outbound.outbox import flush

    gateway = _sender(store, tmp_path, rules_dir)
    stuck = _queue(gateway, _order_with_comment_in_a_code())
    good = _queue(gateway, (artefacts / "examples" / "OrderResponse_Example.xml").read_bytes())
    states = flush(gateway.store, gateway.settings)
    assert (states[stuck], states[good]) == ("failed", "sent")
    with gateway.store.session() as session:
        from edi_gateway.store.queries import findings_of

        [held] = findings_of(session, outbox_id=stuck)
    assert held["rule_id"] == "EVALUATION" and held["flag"] == "fatal"


def test_utf16_without_a_byte_order_mark_is_read_as_xml_says(
    engine: RuleEngine, artefacts: Path
) -> None:
    text = (
        _broken_order(same_line_ids=False).decode().replace('encoding="UTF-8"', 'encoding="UTF-16"')
    )
    payload = text.encode("utf-16-be")  # no BOM: the declaration in UTF-16 tells the parser
    assert _compare(engine, artefacts, payload) > 0


@pytest.mark.parametrize("label", ["mlr:3", "punch_out:3", "catalogue_response:3"])
def test_a_customization_id_of_another_document_type_is_refused(
    engine: RuleEngine, label: str
) -> None:
    payload = _broken_order(same_line_ids=False).replace(
        b"order:3</cbc:Cust", label.encode() + b"</cbc:Cust"
    )
    [finding] = check_document(engine, payload, max_size=1 << 26, required=False)
    assert (finding.rule_id, finding.flag) == ("CUSTOMIZATION", "fatal")
    assert "not for a Order" in finding.text or "not for an Order" in finding.text


def test_an_mlr_is_never_answered_with_an_mlr(
    store: Store, tmp_path: Path, rules_dir: Path, engine: RuleEngine, artefacts: Path
) -> None:
    gateway = _mlr_gateway(store, tmp_path, rules_dir, "always")
    mlr = (artefacts / "examples" / "MessageLevelResponse_Example.xml").read_bytes()
    mlr = mlr.replace(b"7315458756328", f.BUYER_GLN.encode()).replace(
        b"7300010000001", f.SELLER_GLN.encode()
    )
    receive(gateway, mlr)
    receive(gateway, mlr.replace(b"<cbc:ResponseCode>RE", b"<cbc:ResponseCode>XX"))
    assert _sent_mlrs(gateway, tmp_path, engine) == []


def test_a_supplier_layout_in_xml_is_not_taken_for_ubl(
    store: Store, tmp_path: Path, rules_dir: Path
) -> None:
    from edi_gateway.outbound.outbox import flush

    gateway = _sender(store, tmp_path, rules_dir)
    layout = b'<?xml version="1.0"?>\n<!DOCTYPE bestelling SYSTEM "b.dtd">\n<bestelling/>\n'
    row = _queue(gateway, layout)
    assert flush(gateway.store, gateway.settings)[row] == "sent"


def test_a_release_this_version_does_not_know_is_never_taken(
    artefacts: Path, tmp_path: Path
) -> None:
    from edi_gateway.rules.install import active_name

    install(artefacts, tmp_path)
    shutil.copytree(tmp_path / RELEASE, tmp_path / "2099.1")
    assert active_name(tmp_path, None) == RELEASE


def test_a_corrupt_archive_is_a_coded_error(tmp_path: Path) -> None:
    archive = tmp_path / "release.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("a/PEPPOLBIS-T01.sch", b"<schema/>" * 1000)
    data = bytearray(archive.read_bytes())
    data[60:70] = b"\xff" * 10  # inside the member's compressed bytes: a bad CRC
    archive.write_bytes(bytes(data))
    with pytest.raises(GatewayError) as err:
        identify(archive)
    assert err.value.code is ErrorCode.RULES_UNAVAILABLE


def test_a_flood_of_findings_is_kept_bounded(store: Store, tmp_path: Path, rules_dir: Path) -> None:
    from edi_gateway.domain.findings import MAX_FINDINGS

    gateway = _gateway(store, tmp_path, rules_dir, validation="peppol")
    payload = f.order("PO-F", f.items(600)).replace(b'unitCode="C62"', b'unitCode="Q"')
    payload = payload.replace(b'currencyID="EUR"', b'currencyID="ZZZ"')
    shown = _message(gateway, receive(gateway, payload))
    assert len(shown["findings"]) == MAX_FINDINGS + 1
    assert shown["findings"][-1]["rule_id"] == "MORE"
    assert "more findings not kept" in shown["findings"][-1]["text"]


def test_verify_with_validation_peppol_is_refused(tmp_path: Path) -> None:
    from tests.keys import identity, write_identity

    _, cert = write_identity(identity("them"), tmp_path, "them")
    buyer = f.buyer_partner(
        validation="peppol", signature={"verify": "required", "partner_certificate": str(cert)}
    )
    with pytest.raises(ValueError, match="verify: required cannot be used with validation: peppol"):
        Settings.model_validate(
            {"path": tmp_path / "g.yaml", "partners": [buyer]}, context={"base_dir": tmp_path}
        )


def test_what_we_sign_is_judged_as_the_document_the_signature_covers(
    store: Store, tmp_path: Path, rules_dir: Path, artefacts: Path
) -> None:
    from edi_gateway.outbound.outbox import flush
    from tests.keys import identity, write_identity

    key, cert = write_identity(identity("us"), tmp_path, "us")
    signature = {"sign": True, "key": str(key), "certificate": str(cert)}
    gateway = _sender(store, tmp_path, rules_dir, signature=signature)
    row = _queue(gateway, (artefacts / "examples" / "OrderResponse_Example.xml").read_bytes())
    assert flush(gateway.store, gateway.settings)[row] == "sent"
    [sent] = (tmp_path / "out").iterdir()
    assert b"UBLDocumentSignatures" in sent.read_bytes()


def test_a_severity_for_a_rule_the_release_does_not_have_is_reported(
    store: Store, tmp_path: Path, rules_dir: Path
) -> None:
    levels = {"PEPPOL-T01-R002": "ignore", "PEPPOL-T01-R0002": "ignore", "EVALUATION": "warning"}
    gateway = _gateway(store, tmp_path, rules_dir, validation="peppol", severity=levels)
    status = gateway.rules_status()
    assert status["checks"] == "on" and status["release"] == RELEASE
    assert status["unknown_severity_rules"] == ["buyer: PEPPOL-T01-R0002"]


# --- the promises, attacked ---------------------------------------------------------------------


def test_a_message_the_rules_refuse_fails_alone_in_its_batch(
    store: Store, tmp_path: Path, rules_dir: Path
) -> None:
    from edi_gateway.envelope import Envelope
    from edi_gateway.pipeline.intake import intake
    from edi_gateway.pipeline.process import process_messages

    order = f.order("PO-OK", f.items(2))
    found = RuleEngine(load(rules_dir, RELEASE)).check(order, parse(order, max_size=1 << 20))
    lowered = {x.rule_id: "warning" for x in found if x.flag == "fatal"}
    gateway = _gateway(store, tmp_path, rules_dir, validation="peppol", severity=lowered)
    payloads = [_broken_order(same_line_ids=False), _order_with_comment_in_a_code(), order]
    envelopes = [Envelope(p, "t", f"b{n}", f"b{n}.xml") for n, p in enumerate(payloads)]
    ids = intake(gateway.store, envelopes)
    states = process_messages(gateway.store, gateway.policy, ids, react=gateway.react)
    assert [states[i] for i in ids] == ["failed", "failed", "processed"]
    codes = [_message(gateway, i)["error_code"] for i in ids]
    assert codes == ["RULES_FAILED", "RULES_FAILED", None]


def test_an_mlr_commits_with_its_outcome_never_alone_never_twice(
    store: Store, tmp_path: Path, rules_dir: Path
) -> None:
    """The store goes away after the MLR was queued: nothing of the batch is kept, the message
    is processed again, and exactly one MLR is queued."""
    from dataclasses import replace as with_

    from sqlalchemy import func, select
    from sqlalchemy.exc import OperationalError

    from edi_gateway.envelope import Envelope
    from edi_gateway.pipeline.intake import intake
    from edi_gateway.pipeline.process import process_messages
    from edi_gateway.store.schema import outbox

    gateway = _mlr_gateway(store, tmp_path, rules_dir, "on_failure")
    [mid] = intake(gateway.store, [Envelope(_broken_order(same_line_ids=False), "t", "m", "m.xml")])
    answer = gateway.policy.answer
    assert answer is not None

    def answer_then_lose_the_store(joined: Store, works: Any) -> None:
        answer(joined, works)
        raise OperationalError("COMMIT", {}, Exception("server closed the connection"))

    broken = with_(gateway.policy, answer=answer_then_lose_the_store)
    with pytest.raises(OperationalError):
        process_messages(gateway.store, broken, [mid])

    def queued() -> int:
        with gateway.store.connect() as conn:
            return int(conn.scalar(select(func.count()).select_from(outbox)) or 0)

    assert _message(gateway, mid)["state"] == "received" and queued() == 0
    assert process_messages(gateway.store, gateway.policy, [mid]) == {mid: "failed"}
    assert queued() == 1
