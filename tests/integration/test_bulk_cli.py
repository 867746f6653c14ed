"""Bulk `respond`, `despatch` and `invoice` through the real console script (docs/adr/0038):
killed with SIGKILL in the middle of a batch, then run again, every order gets its document
exactly once; usage mistakes and bad CSVs are refused before anything is issued."""

from __future__ import annotations

import json
import signal
import subprocess
from collections import Counter
from pathlib import Path

import pytest

from tests import factory
from tests.integration.conftest import EXE, Project, cli_env

pytestmark = pytest.mark.integration

GATEWAY_YAML = f"""\
store:
  url: sqlite:///gateway.db
partners:
  - id: buyer
    name: Buyer AB
    role: buyer
    endpoint: {{scheme: "0088", value: "{factory.BUYER_GLN}"}}
    outbound: to-buyer
  - id: seller
    name: Seller BV
    role: supplier
    endpoint: {{scheme: "0088", value: "{factory.SELLER_GLN}"}}
connectors:
  - name: to-buyer
    type: folder
    direction: out
    path: out
"""
ORDERS = 8


@pytest.fixture
def project(tmp_path: Path) -> Project:
    """A store holding orders PO-1 .. PO-8 (two lines of 10 each) of a buyer with an outbound
    folder."""
    return _project(tmp_path, "sqlite:///gateway.db")


def _project(tmp_path: Path, url: str) -> Project:
    root = tmp_path / "project"
    (root / "in").mkdir(parents=True)
    (root / "out").mkdir()
    config = GATEWAY_YAML.replace("sqlite:///gateway.db", url)
    (root / "gateway.yaml").write_text(config, encoding="utf-8")
    for n in range(1, ORDERS + 1):
        (root / "in" / f"PO-{n}.xml").write_bytes(factory.order(f"PO-{n}", factory.items(2)))
    project = Project(root)
    assert project.run("ingest", root / "in").returncode == 0
    return project


def _crash(project: Project, point: str, *args: str) -> None:
    env = cli_env(EDI_GATEWAY_CRASH_AT=point)
    done = project.run(*args, env=env)
    assert done.returncode == -signal.SIGKILL, done.stdout + done.stderr


def _documents(project: Project, kind: str) -> Counter[str]:
    """How many documents of ``kind`` the gateway issued, per order number."""
    found: Counter[str] = Counter()
    for n in range(1, ORDERS + 1):
        shown = project.json("orders", "show", f"PO-{n}")
        found[f"PO-{n}"] = sum(
            1 for d in shown["documents"] if d["type"] == kind and d["direction"] == "out"
        )
    return found


def test_killed_mid_batch_then_run_again_issues_each_response_once(project: Project) -> None:
    command = ("respond", "--partner", "buyer", "--accept", "--batch-size", "3")
    _crash(project, "bulk-issued@5", *command)  # batch 1 (3 orders) committed, batch 2 lost
    assert len(project.json("outbox", "list")) == 3
    again = project.json(*command)
    assert (again["issued"], again["skipped"], again["refused"]) == (5, 3, 0)
    assert [o["state"] for o in again["orders"][:3]] == ["skipped"] * 3
    assert [o["doc_number"] for o in again["orders"][:3]] == [f"PO-{n}-OR1" for n in (1, 2, 3)]
    third = project.json(*command)
    assert (third["issued"], third["skipped"]) == (0, ORDERS)
    assert _documents(project, "OrderResponse") == Counter({f"PO-{n}": 1 for n in range(1, 9)})
    assert project.run("outbox", "flush").returncode == 0
    sent = sorted(p.name for p in (project.root / "out").iterdir())
    assert sent == sorted(f"OrderResponse-PO-{n}-OR1.xml" for n in range(1, ORDERS + 1))


def test_a_partial_despatch_killed_mid_batch_is_not_despatched_twice(project: Project) -> None:
    """Four of ten leave on each order's line 1: the ledger alone would let a re-run send four
    more; the bulk key does not."""
    rows = "".join(f"PO-{n},1,4,DHL\n" for n in range(1, ORDERS + 1))
    decisions = project.root / "despatch.csv"
    decisions.write_text("order,line,quantity,carrier\n" + rows, encoding="utf-8")
    command = ("despatch", "--csv", str(decisions), "--batch-size", "2")
    _crash(project, "bulk-issued@6", *command)  # batches 1 and 2 committed, batch 3 half done
    assert len(project.json("outbox", "list")) == 4
    again = project.json(*command)
    assert (again["issued"], again["skipped"]) == (4, 4)
    assert again["orders"][0]["where"] == "despatch.csv row 2"
    assert _documents(project, "DespatchAdvice") == Counter({f"PO-{n}": 1 for n in range(1, 9)})
    for n in (1, 8):
        line = project.json("orders", "show", f"PO-{n}")["lines"][0]
        assert (line["line_id"], line["despatched"]) == ("1", "4")


def test_three_operators_at_once_issue_each_document_once(
    tmp_path: Path, database_url: str
) -> None:
    """Three processes run the same bulk commands at the same moment (three operators, or a
    script started twice), on SQLite and on PostgreSQL: every order gets each document exactly
    once, and what one process issued the others report skipped, never refused."""
    project = _project(tmp_path, database_url)
    for command in (
        ("respond", "--partner", "buyer", "--accept", "--batch-size", "2"),
        ("despatch", "--partner", "buyer", "--carrier", "DHL", "--batch-size", "3"),
    ):
        runs = [
            subprocess.Popen(
                [str(EXE), "--config", str(project.config), *command, "--json"],
                cwd=project.root,
                env=cli_env(),
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(3)
        ]
        said = [run.communicate(timeout=120) for run in runs]
        for run, (out, err) in zip(runs, said, strict=True):
            assert run.returncode == 0, out[-2000:] + err[-2000:]
        reports = [json.loads(out) for out, _ in said]
        assert sum(r["issued"] for r in reports) == ORDERS, reports
        assert {r["refused"] for r in reports} == {0}
        assert [r["issued"] + r["skipped"] for r in reports] == [ORDERS] * 3
    assert _documents(project, "OrderResponse") == Counter({f"PO-{n}": 1 for n in range(1, 9)})
    assert _documents(project, "DespatchAdvice") == Counter({f"PO-{n}": 1 for n in range(1, 9)})
    assert len(project.json("outbox", "list")) == 2 * ORDERS


def test_refusals_exit_1_and_usage_mistakes_change_nothing(project: Project) -> None:
    tried = project.run("respond", "--status", "received", "--accept", "--dry-run")
    assert tried.returncode == 0, tried.stderr
    assert "dry run, nothing was issued; respond: 8 would be issued" in tried.stdout
    assert project.json("outbox", "list") == []
    assert project.json("respond", "PO-1", "--reject", "--reason", "no stock")["number"]
    done = project.run("despatch", "--partner", "buyer", "--json")
    assert done.returncode == 1, done.stderr
    assert '"refused": 1' in done.stdout and '"code": "NOT_ALLOWED"' in done.stdout
    for args, said in [
        (("respond", "--accept"), "give an ORDER, --csv FILE or filters"),
        (("respond", "PO-2", "--status", "received", "--accept"), "not an ORDER with them"),
        (("respond", "--status", "received"), "give one of --ack"),
        (("respond", "--csv", "x.csv", "--partner", "buyer"), "--csv names its orders"),
        (("respond", "--csv", "x.csv", "--accept"), "drop --accept"),
        (("despatch", "--partner", "buyer", "--slip", "s.pdf"), "--slip prints one despatch"),
        (("invoice", "--partner", "buyer", "--rebill-credited", "--credit", "X"), "NOT_ALLOWED"),
        (("respond", "PO-2", "--accept", "--dry-run"), "--dry-run and --batch-size go with"),
        (("respond", "PO-2", "--accept", "--batch-size", "5"), "--dry-run and --batch-size"),
    ]:
        refused = project.run(*args)
        assert refused.returncode in (1, 2) and said in refused.stderr, (args, refused.stderr)
    bad = project.root / "bad.csv"
    bad.write_text("order,decision\nPO-2,accept\nPO-3,yes\n", encoding="utf-8")
    refused = project.run("respond", "--csv", bad)
    assert refused.returncode == 1
    assert f"BAD_CSV: {bad}: 1 problem(s), nothing was issued: row 3 column decision" in (
        refused.stderr
    )
    assert project.run("respond", "--batch-size", "0", "--partner", "buyer").returncode == 2
    assert len(project.json("outbox", "list")) == 8  # PO-1's RE, the despatches of PO-2 .. PO-8
