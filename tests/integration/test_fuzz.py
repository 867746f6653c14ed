"""Fuzzing the promise "a bad message fails alone" through the real ``edi-gateway`` CLI.

Thousands of seeded mutants of the corpus and sample documents (``tests/mutate.py``), then good
orders, go through ``ingest`` (on SQLite and on PostgreSQL, whose column lengths bite) and
through ``run --once`` on the starter config's folder ``inbox`` (unknown partners accepted,
automatic responses, forwarding and relaying on). After
each run the store and the folders must say: every file is exactly one message in a terminal
state, no ``INTERNAL_ERROR``, every failure has a code and a detail and left nothing behind,
every good order is processed and stored, the process exited as documented without a
traceback, and (``run``) every file sits once in archive/ or error/.

A failure prints each broken promise with the input's name, operator, how it was made and the
message's detail, copies the inputs involved to ``<tmp>/failing/`` and, when a batch broke as
a whole, names the smallest set of inputs found to break it alone. Rebuild one input with
``.venv/bin/python -m tests.mutate SEED N -o FILE`` (SEED and N are in its name: fzSEED-N-...).
"""

from __future__ import annotations

import json
import shutil
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from tests import mutate
from tests.conftest import new_postgres_database, shared_dir
from tests.integration.conftest import Project

pytestmark = pytest.mark.integration

INPUTS = 2000
GOOD = 10
INGEST_SEED = 1
RUN_SEED = 2


def _inputs(seed: int) -> tuple[list[mutate.Mutant], list[mutate.GoodOrder]]:
    shared_dir()  # the corpus seeds: a failure under CI, a skip elsewhere when absent
    tag = f"s{seed}"  # what `python -m tests.mutate SEED N` assumes
    refs = mutate.good_order_ids(GOOD, tag)
    return [mutate.mutant(seed, n, refs) for n in range(INPUTS)], mutate.good_orders(GOOD, tag)


def _write(folder: Path, made: Sequence[mutate.Mutant], good: Sequence[mutate.GoodOrder]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for item in [*made, *good]:
        (folder / item.name).write_bytes(item.data)


def _project(make_project: Callable[..., Project], store: str | None = None) -> Project:
    project = make_project(unknown_partner="accept")
    mutate.fuzz_config(project.config, store)
    return project


def _expectations(
    made: Sequence[mutate.Mutant], good: Sequence[mutate.GoodOrder]
) -> tuple[dict[str, str], dict[str, str]]:
    inputs = {m.name: m.operator for m in made} | {g.name: "good" for g in good}
    return inputs, {g.name: g.order_id for g in good}


def _fresh_database(database_url: str | None) -> str | None:
    """A new, empty database beside ``database_url`` (PostgreSQL); None: the project's SQLite."""
    if database_url is None or database_url.startswith("sqlite"):
        return None
    return new_postgres_database(database_url.rpartition("/")[0])


def _ingest_breaks(
    make_project: Callable[..., Project],
    source: Path,
    database_url: str | None,
    good: dict[str, str],
    promises: set[str],
) -> Callable[..., bool]:
    """Whether ingesting just these files, then the good orders, into a fresh gateway breaks
    one of ``promises`` again."""

    def breaks(names: Sequence[str]) -> bool:
        store = _fresh_database(database_url)
        project = _project(make_project, store)
        return mutate.ingest_breaks_again(
            project, store or project.db, source, names, good, promises, timeout=300
        )

    return breaks


def _report(
    audit: mutate.Audit,
    made: Sequence[mutate.Mutant],
    source: Path,
    failing: Path,
    culprits: Sequence[str] = (),
) -> str:
    """Every broken promise, grouped, with the inputs involved copied to ``failing``."""
    by_name = {m.name: m for m in made}
    failing.mkdir(parents=True, exist_ok=True)
    lines = [f"{len(audit.breaches)} broken promises over {audit.messages} messages"]
    per_promise = Counter(b.promise for b in audit.breaches)
    lines += [f"  {promise}: {count}" for promise, count in sorted(per_promise.items())]
    shown: Counter[str] = Counter()
    for breach in audit.breaches:
        shown[breach.promise] += 1
        if shown[breach.promise] > 15:
            continue
        item = by_name.get(breach.name)
        how = f" [{item.source}: {item.how[:160]}]" if item else ""
        lines.append(
            f"- {breach.promise}: {breach.name or '(run)'} {breach.operator}{how}: "
            f"{breach.detail[:400]}"
        )
        if breach.name and (source / breach.name).is_file():
            shutil.copy(source / breach.name, failing / breach.name)
    if culprits:
        lines.append(f"smallest set of inputs found to break it again ({len(culprits)}):")
        for name in culprits[:20]:
            item = by_name.get(name)
            how = f"{item.operator} on {item.source}: {item.how[:200]}" if item else ""
            lines.append(f"  * {name}: {how}")
            shutil.copy(source / name, failing / name)
    lines.append(f"inputs involved copied to {failing}")
    return "\n".join(lines)


def _culprits(
    audit: mutate.Audit,
    states: dict[str, str],
    inputs: dict[str, str],
    good: dict[str, str],
    make_project: Callable[..., Project],
    source: Path,
    database_url: str | None = None,
) -> list[str]:
    """When a breach names no input to blame (a batch broke, a good order failed), the
    smallest set of inputs found to break that promise again in a fresh gateway."""
    candidates, promises = mutate.suspects(audit, states, inputs)
    if not candidates:
        return []
    breaks = _ingest_breaks(make_project, source, database_url, good, promises)
    return mutate.isolate(candidates, breaks)


def test_fuzzed_inputs_fail_alone_through_ingest(
    make_project: Callable[..., Project], tmp_path: Path, database_url: str
) -> None:
    """On SQLite and on PostgreSQL (whose column lengths are enforced)."""
    made, good = _inputs(INGEST_SEED)
    project = _project(make_project, database_url)
    store: Path | str = database_url
    if database_url.startswith("sqlite:///"):
        store = Path(database_url.removeprefix("sqlite:///"))
    folder = tmp_path / "fuzz-in"
    _write(folder, made, good)
    inputs, good_ids = _expectations(made, good)

    done = project.run("ingest", folder, "--json", timeout=600)

    audit = mutate.Audit()
    # ingest exits 1 when a document failed (README "Exit codes"); never anything else
    finished = mutate.summary_printed(done.stdout)
    mutate.audit_process(audit, "ingest", done.returncode, (0, 1), done.stderr, finished)
    states = mutate.audit_store(audit, store, inputs, good_ids)
    _check_orders_listed(audit, project, good)
    if audit.breaches:
        culprits = _culprits(audit, states, inputs, good_ids, make_project, folder, database_url)
        pytest.fail(_report(audit, made, folder, tmp_path / "failing", culprits), pytrace=False)


def test_fuzzed_inputs_fail_alone_through_run_once(
    make_project: Callable[..., Project], tmp_path: Path
) -> None:
    made, good = _inputs(RUN_SEED)
    project = _project(make_project)
    kept = tmp_path / "fuzz-in"  # a copy to reproduce from: the inbox's files move on
    _write(kept, made, good)
    for item in [*made, *good]:
        project.drop(item.name, item.data)
    inputs, good_ids = _expectations(made, good)

    done = project.run("run", "--once", "--json", timeout=600)

    audit = mutate.Audit()
    finished = mutate.summary_printed(done.stdout)
    mutate.audit_process(audit, "run --once", done.returncode, (0,), done.stderr, finished)
    states = mutate.audit_store(audit, project.db, inputs, good_ids)
    mutate.audit_folders(audit, project.root, states, "inbox")
    _check_orders_listed(audit, project, good)
    if audit.breaches:
        culprits = _culprits(audit, states, inputs, good_ids, make_project, kept)
        pytest.fail(_report(audit, made, kept, tmp_path / "failing", culprits), pytrace=False)


def _check_orders_listed(
    audit: mutate.Audit, project: Project, good: Sequence[mutate.GoodOrder]
) -> None:
    """Every good order is there for an operator too: `orders show` finds it."""
    for item in good[:3]:
        done = project.run("orders", "show", f"vastra:{item.order_id}", "--json")
        if done.returncode != 0:
            said = f"orders show: {done.stderr.strip()}"
            audit.add("good-order-processed", item.name, "good", said)
    listed = project.json("orders", "list", "--search", "GOOD-", ok_codes=(0, 1))
    numbers = json.dumps(listed)
    for item in good:
        if item.order_id not in numbers:
            audit.add("good-order-processed", item.name, "good", "not in `orders list`")
