"""The CLI contract, through the real `edi-gateway` console script and a real SQLite store."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests import factory
from tests.integration.conftest import (
    BUYER,
    BUYER2,
    EXE,
    SAMPLES,
    Project,
    cli,
    cli_env,
    cli_json,
)

pytestmark = pytest.mark.integration

MESSAGE_KEYS = {
    "id",
    "received_at",
    "source",
    "filename",
    "size",
    "sha256",
    "state",
    "error_code",
    "document_type",
    "document_id",
    "partner",
    "order_id",
}
SAMPLE_FAILURES = {
    "bad-not-well-formed.xml": "NOT_WELL_FORMED",
    "bad-xsd-invalid.xml": "XSD_INVALID",
    "bad-unknown-partner.xml": "UNKNOWN_PARTNER",
}


@pytest.fixture(scope="module")
def samples_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Project, Any]]:
    """`init --samples samples/` then `run --once`: the project and the finished process."""
    root = tmp_path_factory.mktemp("cli") / "deploy"
    done = cli("init", root, "--samples", SAMPLES, cwd=root.parent)
    assert done.returncode == 0, done.stderr
    assert "gateway.yaml" in done.stdout
    project = Project(root)
    run = project.run("run", "--once")
    yield project, run


def _failed(project: Project) -> list[dict[str, Any]]:
    return project.messages("--state", "failed")


def test_run_once_over_the_samples_names_failures_and_codes(samples_run: Any) -> None:
    _project, run = samples_run
    assert run.returncode == 0, run.stderr
    assert "Traceback" not in run.stderr
    for name, code in SAMPLE_FAILURES.items():
        line = next((x for x in run.stdout.splitlines() if name in x), "")
        assert code in line, f"{name} / {code} missing from the summary:\n{run.stdout}"
    assert "XSD_INVALID line 8" in run.stdout  # the line number is named
    assert "8 processed" in run.stdout and "3 failed" in run.stdout


def test_messages_list_failed_json_schema(samples_run: Any) -> None:
    project, _ = samples_run
    rows = _failed(project)
    assert {r["filename"]: r["error_code"] for r in rows} == SAMPLE_FAILURES
    for row in rows:
        assert set(row) >= MESSAGE_KEYS, MESSAGE_KEYS - set(row)
        assert row["state"] == "failed"
    everything = project.messages()
    assert len(everything) == 11
    assert [r["id"] for r in everything] == sorted((r["id"] for r in everything), reverse=True)


def test_messages_show_json_has_error_line_and_history(samples_run: Any) -> None:
    project, _ = samples_run
    failed = {r["filename"]: r for r in _failed(project)}
    shown = project.json("messages", "show", str(failed["bad-xsd-invalid.xml"]["id"]))
    assert set(shown) >= MESSAGE_KEYS | {"error_code", "error_line", "error_detail", "history"}
    assert (shown["error_code"], shown["error_line"]) == ("XSD_INVALID", 8)
    assert shown["partner"] == "vastra"  # the sender is read even though the XSD failed
    assert failed["bad-xsd-invalid.xml"]["partner"] == "vastra"
    assert "{urn:" not in shown["error_detail"] and "/Order/" in shown["error_detail"]
    events = [h["event"] for h in shown["history"]]
    assert events[0] == "message.received" and "message.failed" in events
    assert all({"at", "event", "detail", "actor"} <= set(h) for h in shown["history"])
    text = project.run("messages", "show", str(shown["id"]))
    assert text.returncode == 0 and "XSD_INVALID at line 8" in text.stdout
    listed = project.run("messages", "list", "--state", "failed")
    row = next(x for x in listed.stdout.splitlines() if "bad-xsd-invalid.xml" in x)
    assert "vastra" in row and "XSD_INVALID" in row


def test_redrive_dry_run_lists_ids_and_changes_nothing(samples_run: Any) -> None:
    project, _ = samples_run
    before = {r["id"]: r for r in _failed(project)}
    one = min(before)
    shown_before = project.json("messages", "show", str(one))
    planned = project.json("messages", "redrive", "--state", "failed", "--dry-run")
    assert sorted(planned["would_redrive"]) == sorted(before)
    text = project.run("messages", "redrive", "--state", "failed", "--dry-run")
    assert text.returncode == 0 and "would redrive 3 messages" in text.stdout
    assert {r["id"]: r for r in _failed(project)} == before
    assert project.json("messages", "show", str(one)) == shown_before  # no history event
    usage = project.run("messages", "redrive")
    assert usage.returncode == 2 and "--state" in usage.stderr


def test_orders_list_filters(samples_run: Any) -> None:
    project, _ = samples_run
    orders = project.json("orders", "list")
    assert len(orders) == 5
    assert {"id", "ref", "order_number", "buyer", "seller", "status"} <= set(orders[0])
    vastra = project.json("orders", "list", "--partner", "vastra")
    assert {o["order_number"] for o in vastra} == {"VS-2026-1001", "VS-2026-1002"}
    by_key = project.json("orders", "list", "--partner", "0088:8712345000004")
    assert len(by_key) == 3 and {o["buyer"] for o in by_key} == {"rijnoever"}
    found = project.json("orders", "list", "--search", "4500012873")
    assert [o["order_number"] for o in found] == ["4500012873"]
    status = next(o["status"] for o in orders if o["order_number"] == "VS-2026-1001")
    same = project.json("orders", "list", "--status", status)
    assert same and all(o["status"] == status for o in same)
    assert "VS-2026-1001" in {o["order_number"] for o in same}


def test_orders_show_accepts_every_reference_form(samples_run: Any) -> None:
    project, _ = samples_run
    order = next(o for o in project.json("orders", "list") if o["order_number"] == "VS-2026-1001")
    for ref in (
        str(order["id"]),
        "vastra:VS-2026-1001",
        "0088:7350051600005:VS-2026-1001",
        "VS-2026-1001",
    ):
        shown = project.json("orders", "show", ref)
        assert (shown["id"], shown["order_number"]) == (order["id"], "VS-2026-1001"), ref
        assert {"lines", "documents", "history"} <= set(shown)
    assert len(shown["lines"]) == 8
    assert {d["type"] for d in shown["documents"]} >= {"OrderResponse", "DespatchAdvice"}


def test_unknown_ids_exit_1_with_a_clear_message(samples_run: Any) -> None:
    project, _ = samples_run
    missing = project.run("orders", "show", "NO-SUCH-ORDER")
    assert missing.returncode == 1
    assert "no order matches 'NO-SUCH-ORDER'" in missing.stderr
    no_message = project.run("messages", "show", "99999")
    assert no_message.returncode == 1 and "no message 99999" in no_message.stderr


def test_outbox_retry_names_what_it_cannot_retry(samples_run: Any) -> None:
    project, _ = samples_run
    usage = project.run("outbox", "retry")
    assert usage.returncode == 2 and "needs outbox IDs, --state failed|pending, or --now" in (
        usage.stderr
    )
    missing = project.run("outbox", "retry", "99999")
    assert missing.returncode == 1 and "no pending or failed outbox row #99999" in missing.stderr
    assert project.json("outbox", "retry", "--state", "failed") == {"retried": []}


def test_ambiguous_bare_order_id_names_the_matches(
    make_project: Callable[..., Project], tmp_path: Path
) -> None:
    project = make_project()
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.xml").write_bytes(factory.order("AMB-7", buyer=BUYER))
    (docs / "b.xml").write_bytes(factory.order("AMB-7", buyer=BUYER2))
    assert project.run("ingest", docs).returncode == 0
    ambiguous = project.run("orders", "show", "AMB-7")
    assert ambiguous.returncode != 0
    assert "buyer:AMB-7" in ambiguous.stderr and "buyer2:AMB-7" in ambiguous.stderr
    assert "AMBIGUOUS" in ambiguous.stderr
    for ref, buyer in (("buyer2:AMB-7", "buyer2"), (f"0088:{BUYER}:AMB-7", "buyer")):
        assert project.json("orders", "show", ref)["buyer"] == buyer


@pytest.mark.parametrize(
    ("yaml_text", "named"),
    [
        ("intake:\n  max_size_mb: lots\n", "intake.max_size_mb"),
        ("intake:\n  batchsize: 5\n", "intake.batchsize"),
        ("store:\n  url: mysql://x\n", "store.url"),
        (
            "connectors:\n  - name: in\n    type: folder\n    direction: in\n",
            "connectors[0].path",
        ),
    ],
)
def test_bad_config_exits_2_naming_the_key(tmp_path: Path, yaml_text: str, named: str) -> None:
    config = tmp_path / "gateway.yaml"
    config.write_text(yaml_text, encoding="utf-8")
    done = cli("--config", config, "messages", "list", cwd=tmp_path)
    assert done.returncode == 2
    assert named in done.stderr, done.stderr
    assert "Traceback" not in done.stderr


def _committed(db: Path) -> int:
    """How many messages the store at ``db`` holds, committed (0 before it exists)."""
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
            return int(conn.execute("SELECT count(*) FROM messages").fetchone()[0])
    except sqlite3.Error:
        return 0


def test_ctrl_c_stops_a_command_with_one_coded_line_and_loses_nothing(
    make_project: Callable[..., Project], tmp_path: Path
) -> None:
    """Ctrl-C (SIGINT) in the middle of an ``ingest``, once its first batch committed: one
    coded line (INTERRUPTED), exit 130, no traceback; what it committed stays, the rest was
    rolled back; the same folder ingested again gives every order once."""
    project = make_project()
    many = tmp_path / "many"
    many.mkdir()
    count = 3000
    for n in range(count):
        (many / f"PO-{n:05d}.xml").write_bytes(factory.order(f"PO-{n:05d}", factory.items(1)))
    args = [str(EXE), "--config", str(project.config), "ingest", str(many)]
    with subprocess.Popen(
        args, cwd=project.root, env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE
    ) as proc:
        try:
            deadline = time.monotonic() + 120
            while not _committed(project.db):  # mid-run: its first batch is in the store
                assert proc.poll() is None, "ended before it could be interrupted"
                assert time.monotonic() < deadline, "no batch committed"
                time.sleep(0.005)
            proc.send_signal(signal.SIGINT)
            _, err = proc.communicate(timeout=120)
        finally:
            if proc.poll() is None:
                proc.kill()
    said = err.decode("utf-8", "replace")
    assert proc.returncode == 130, said
    assert "error: INTERRUPTED" in said, said
    assert "Traceback" not in said, said
    assert _committed(project.db) < count  # it was stopped before the end
    with sqlite3.connect(project.db) as conn:
        [(left,)] = conn.execute("SELECT count(*) FROM messages WHERE state = 'received'")
    done = project.run("ingest", many)  # the files again: the rest is taken
    assert done.returncode == 0, done.stdout + done.stderr
    # what the stopped run committed and did not process waits for `run` or a redrive; its
    # copies were processed meanwhile, so it ends their duplicate (never a conflict)
    done = project.run("messages", "redrive", "--state", "received")
    assert done.returncode == 0, done.stdout + done.stderr
    with sqlite3.connect(project.db) as conn:
        orders = conn.execute("SELECT count(*), count(DISTINCT order_number) FROM orders")
        assert orders.fetchone() == (count, count)
        states = dict(conn.execute("SELECT state, count(*) FROM messages GROUP BY state"))
    expected = {"processed": count, "duplicate": left} if left else {"processed": count}
    assert states == expected


def test_missing_config_exits_2(tmp_path: Path) -> None:
    done = cli("messages", "list", cwd=tmp_path)
    assert done.returncode == 2
    assert "no config file" in done.stderr and "EDI_GATEWAY_CONFIG" in done.stderr


def test_config_from_environment_variable(samples_run: Any, tmp_path: Path) -> None:
    project, _ = samples_run
    env = cli_env(EDI_GATEWAY_CONFIG=str(project.config))
    rows = cli_json("messages", "list", cwd=tmp_path, env=env)
    assert len(rows) == 11
    wrong = cli("messages", "list", cwd=tmp_path, env=cli_env(EDI_GATEWAY_CONFIG="nope.yaml"))
    assert wrong.returncode == 2 and "$EDI_GATEWAY_CONFIG" in wrong.stderr


def test_ingest_exit_code_says_whether_any_document_failed(
    make_project: Callable[..., Project], tmp_path: Path
) -> None:
    project = make_project()
    good = tmp_path / "good"
    good.mkdir()
    (good / "o1.xml").write_bytes(factory.order("ING-1"))
    (good / "o2.xml").write_bytes(factory.order("ING-2"))
    ok = project.run("ingest", good, "--json")
    assert ok.returncode == 0, ok.stdout
    assert json.loads(ok.stdout)["by_state"] == {"processed": 2}
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "o3.xml").write_bytes(factory.order("ING-3"))
    (bad / "broken.xml").write_bytes(factory.order("ING-4")[:300])
    failed = project.run("ingest", bad, "--json")
    assert failed.returncode == 1
    summary = json.loads(failed.stdout)
    assert summary["by_state"] == {"processed": 1, "failed": 1}
    assert [f["error_code"] for f in summary["failures"]] == ["NOT_WELL_FORMED"]
    single = project.run("ingest", good / "o1.xml")  # a byte-identical re-send: not a failure
    assert single.returncode == 0, single.stdout


def test_validate_needs_no_config_or_store(tmp_path: Path) -> None:
    good, bad = tmp_path / "good.xml", tmp_path / "bad.xml"
    good.write_bytes(factory.order("VAL-1"))
    bad.write_bytes(factory.order("VAL-2").replace(b"IssueDate", b"IsueDate"))
    env = cli_env()
    ok = cli("validate", good, cwd=tmp_path, env=env)
    assert ok.returncode == 0 and "OK" in ok.stdout, ok.stderr
    result = cli_json("validate", good, bad, cwd=tmp_path, env=env, ok_codes=(1,))
    assert (result["valid"], result["invalid"]) == (1, 1)
    verdict = {Path(f["file"]).name: (f["valid"], f["error_code"]) for f in result["files"]}
    assert verdict == {"good.xml": (True, None), "bad.xml": (False, "XSD_INVALID")}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.xml", "good.xml"]  # no store


def test_resend_of_refused_bytes_is_refused_alike_whatever_the_batch(
    make_project: Callable[..., Project], tmp_path: Path
) -> None:
    """A byte-identical copy of an ID-conflict message is refused too, never a `duplicate`.

    The outcome must not depend on whether both copies land in one intake batch.
    """
    outcomes = []
    for batch_size in (200, 1):
        project = make_project(batch_size=batch_size, unknown_partner="accept")
        docs = tmp_path / f"docs{batch_size}"
        docs.mkdir()
        other = factory.order("DUP-1", factory.items(2))
        (docs / "a.xml").write_bytes(factory.order("DUP-1"))
        (docs / "b.xml").write_bytes(other)  # same ID, other content: DUPLICATE_ID_CONFLICT
        (docs / "c.xml").write_bytes(other)  # byte-identical to the refused b.xml
        project.run("ingest", docs)
        outcomes.append({m["filename"]: (m["state"], m["error_code"]) for m in project.messages()})
    conflict = ("failed", "DUPLICATE_ID_CONFLICT")
    expected = {"a.xml": ("processed", None), "b.xml": conflict, "c.xml": conflict}
    assert outcomes == [expected, expected]
