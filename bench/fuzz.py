"""Fuzz soak: 20,000+ seeded mutants through ``edi-gateway ingest`` and ``run --once``.

    python bench/fuzz.py [--inputs 20000] [--seed 1000] [--batch 2000] [--good 10] [--keep]
                         [--postgres] [--no-isolate]

The long version of ``tests/integration/test_fuzz.py``, with the same engine and oracle
(``tests/mutate.py``). The inputs are split into runs of ``--batch`` mutants; run ``i`` uses
seed ``--seed + i`` and a fresh gateway made by ``edi-gateway init`` (unknown partners
accepted, automatic responses, forwarding and relaying on), its mutants followed by ``--good``
valid orders. Even runs go through ``ingest FOLDER``, odd ones through ``run --once`` over the
folder connector ``inbox``; ``--postgres`` keeps each run's store in a new database of a
private PostgreSQL server (``tests/servers.py``) instead of SQLite. After each run the store
and folders are audited: one message per file, terminal states only, no ``INTERNAL_ERROR``,
failures with a code and a detail and nothing half-written, good orders processed, no
traceback, files settled (``run``), reactions failing in words.

Prints inputs, counts per operator, outcomes per state and error code, INTERNAL_ERROR count,
tracebacks, good orders lost, reaction failures and wall time. Exit 0 when every promise held;
exit 1 otherwise, listing each broken promise with the command that rebuilds its input
(``python -m tests.mutate SEED N --good K -o FILE``); when a breach names no input to blame (a
run broke as a whole, a good order failed), the smallest set of the run's inputs found to break
that promise again in a fresh gateway.
"""

from __future__ import annotations

import argparse
import contextlib
import re
import shutil
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests import mutate  # noqa: E402
from tests.integration.conftest import Project, cli  # noqa: E402

NAME = re.compile(r"^fz(\d+)-(\d+)-")


@dataclass
class Totals:
    """Everything the soak counts, over all runs."""

    inputs: int = 0
    good: int = 0
    operators: Counter[str] = field(default_factory=Counter)
    per_operator: dict[str, Counter[str]] = field(default_factory=dict)
    outcomes: Counter[tuple[str, str]] = field(default_factory=Counter)
    tracebacks: Counter[str] = field(default_factory=Counter)
    outbox: Counter[str] = field(default_factory=Counter)
    breaches: list[tuple[int, str, mutate.Breach]] = field(default_factory=list)
    culprits: list[tuple[int, list[str]]] = field(default_factory=list)
    seconds: Counter[str] = field(default_factory=Counter)
    runs: Counter[str] = field(default_factory=Counter)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inputs", type=int, default=20_000, help="mutants in all")
    parser.add_argument("--seed", type=int, default=1000, help="seed of the first run")
    parser.add_argument("--batch", type=int, default=2000, help="mutants per gateway run")
    parser.add_argument("--good", type=int, default=10, help="good orders after each run's")
    parser.add_argument("--keep", action="store_true", help="keep the gateways' folders")
    parser.add_argument(
        "--postgres",
        action="store_true",
        help="store every run in a new database of a private PostgreSQL server (not SQLite)",
    )
    parser.add_argument(
        "--no-isolate", action="store_true", help="do not search for the inputs that broke a run"
    )
    return parser.parse_args(argv)


@dataclass
class Stores:
    """Where each gateway keeps its store: its own SQLite file, or a new PostgreSQL database
    on one private server (``--postgres``)."""

    server: str | None = None

    def new(self) -> str | None:
        if self.server is None:
            return None
        from tests.conftest import new_postgres_database

        return new_postgres_database(self.server)


STORES = Stores()


def new_gateway(root: Path) -> tuple[Project, Path | str]:
    """``edi-gateway init`` a gateway that takes any partner's documents, reactions on; with
    the store to audit (its SQLite file or PostgreSQL URL)."""
    done = cli("init", root)
    if done.returncode != 0:
        raise SystemExit(f"edi-gateway init failed: {done.stderr}")
    project = Project(root)
    project.edit_config(unknown_partner="accept")
    url = STORES.new()
    mutate.fuzz_config(project.config, url)
    return project, url or project.db


@dataclass
class Run:
    """One audited gateway run: the audit, file name -> operator, file name -> final state,
    good order file name -> order ID, and the folder holding the run's inputs."""

    audit: mutate.Audit
    inputs: dict[str, str]
    states: dict[str, str]
    good: dict[str, str]
    kept: Path


def run_once(work: Path, seed: int, count: int, good_count: int, mode: str, totals: Totals) -> Run:
    """One gateway run over ``count`` mutants of ``seed`` and the good orders; audited."""
    started = time.perf_counter()
    tag = f"s{seed}"
    made = [mutate.mutant(seed, n, mutate.good_order_ids(good_count, tag)) for n in range(count)]
    good = mutate.good_orders(good_count, tag)
    kept = work / f"inputs-{seed}"
    kept.mkdir(parents=True)
    for item in [*made, *good]:
        (kept / item.name).write_bytes(item.data)
    project, store = new_gateway(work / f"gateway-{seed}")
    totals.seconds["generate"] += time.perf_counter() - started

    started = time.perf_counter()
    audit = mutate.Audit()
    if mode == "ingest":
        done = project.run("ingest", kept, "--json", timeout=3600)
        finished = mutate.summary_printed(done.stdout)
        mutate.audit_process(audit, "ingest", done.returncode, (0, 1), done.stderr, finished)
    else:
        for item in [*made, *good]:
            project.drop(item.name, item.data)
        done = project.run("run", "--once", "--json", timeout=3600)
        finished = mutate.summary_printed(done.stdout)
        mutate.audit_process(audit, "run --once", done.returncode, (0,), done.stderr, finished)
    totals.seconds[mode] += time.perf_counter() - started
    totals.runs[mode] += 1

    inputs = {m.name: m.operator for m in made} | {g.name: "good" for g in good}
    good_ids = {g.name: g.order_id for g in good}
    states = mutate.audit_store(audit, store, inputs, good_ids)
    if mode == "run":
        mutate.audit_folders(audit, project.root, states, "inbox")
    totals.inputs += count
    totals.good += good_count
    for item in made:
        totals.operators[item.operator] += 1
        counter = totals.per_operator.setdefault(item.operator, Counter())
        counter[states.get(item.name, "missing")] += 1
    totals.outcomes.update(audit.outcomes)
    totals.tracebacks.update(audit.tracebacks)
    totals.outbox.update(mutate.outbox_states(store))
    return Run(audit, inputs, states, good_ids, kept)


def ingest_breaks(
    work: Path, source: Path, good: dict[str, str], promises: set[str]
) -> Callable[[list[str]], bool]:
    """Whether ingesting just these files, then the good orders, into a fresh gateway breaks
    one of ``promises`` again."""
    tries = iter(range(10_000))

    def breaks(names: list[str]) -> bool:
        project, store = new_gateway(work / f"isolate-{next(tries)}")
        try:
            return mutate.ingest_breaks_again(
                project, store, source, names, good, promises, timeout=3600
            )
        finally:
            shutil.rmtree(project.root, ignore_errors=True)

    return breaks


def soak(args: argparse.Namespace, work: Path) -> Totals:
    totals = Totals()
    runs = (args.inputs + args.batch - 1) // args.batch
    for i in range(runs):
        seed = args.seed + i
        count = min(args.batch, args.inputs - i * args.batch)
        mode = "ingest" if i % 2 == 0 else "run"
        run = run_once(work, seed, count, args.good, mode, totals)
        audit = run.audit
        totals.breaches += [(seed, mode, b) for b in audit.breaches]
        print(
            f"run {i + 1}/{runs} seed {seed} {mode:6} {count} inputs: "
            f"{len(audit.breaches)} broken promises",
            file=sys.stderr,
        )
        candidates, promises = mutate.suspects(audit, run.states, run.inputs)
        if candidates and not args.no_isolate:
            breaks = ingest_breaks(work, run.kept, run.good, promises)
            totals.culprits.append((seed, mutate.isolate(candidates, breaks)))
        if not args.keep:
            shutil.rmtree(work / f"gateway-{seed}", ignore_errors=True)
            if not audit.breaches:
                shutil.rmtree(run.kept, ignore_errors=True)
    return totals


def table(title: str, rows: list[tuple[str, ...]], header: tuple[str, ...]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    line = "| " + " | ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)) + " |"
    rule = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    body = [
        "| " + " | ".join(_cell(c, w) for c, w in zip(r, widths, strict=True)) + " |" for r in rows
    ]
    return "\n".join([f"\n{title}", line, rule, *body])


def _cell(text: str, width: int) -> str:
    """Figures right-aligned, words left-aligned."""
    return text.rjust(width) if re.fullmatch(r"[\d,.]+( s)?", text) else text.ljust(width)


def report(args: argparse.Namespace, totals: Totals, wall: float, work: Path) -> int:
    promises = Counter(b.promise for _, _, b in totals.breaches)
    internal = sum(n for (_, code), n in totals.outcomes.items() if code == "INTERNAL_ERROR")
    lost = {(s, b.name) for s, _, b in totals.breaches if b.promise == "good-order-processed"}
    gateway_s = totals.seconds["ingest"] + totals.seconds["run"]
    summary = [
        ("inputs (mutants)", f"{totals.inputs:,}"),
        ("good orders", f"{totals.good:,}"),
        ("gateway runs", f"{totals.runs['ingest']} ingest + {totals.runs['run']} run --once"),
        ("messages stored", f"{sum(totals.outcomes.values()):,}"),
        ("INTERNAL_ERROR", str(internal)),
        ("tracebacks on stderr", str(sum(totals.tracebacks.values()))),
        ("good orders lost", str(len(lost))),
        ("broken promises", str(len(totals.breaches))),
        ("outbox rows", ", ".join(f"{k} {v}" for k, v in sorted(totals.outbox.items())) or "-"),
        ("wall time", f"{wall:.1f} s"),
        ("  generating inputs", f"{totals.seconds['generate']:.1f} s"),
        (
            "  gateway (ingest / run)",
            f"{totals.seconds['ingest']:.1f} / {totals.seconds['run']:.1f} s",
        ),
        ("  inputs per gateway second", f"{totals.inputs / gateway_s:,.0f}" if gateway_s else "-"),
    ]
    print(table("Fuzz soak", summary, ("figure", "value")))
    states = ("processed", "orphan", "duplicate", "failed", "received", "missing")
    rows = [
        (op, str(n), *(str(totals.per_operator[op][s]) for s in states))
        for op, n in sorted(totals.operators.items())
    ]
    print(table("Per operator (final message state)", rows, ("operator", "inputs", *states)))
    outcome_rows = [
        (state, code or "-", f"{n:,}") for (state, code), n in sorted(totals.outcomes.items())
    ]
    print(table("Outcomes", outcome_rows, ("state", "error_code", "messages")))
    if totals.tracebacks:
        tb_rows = [(str(n), last[:120]) for last, n in totals.tracebacks.most_common()]
        print(table("Tracebacks (last line)", tb_rows, ("count", "exception")))
    if promises:
        rows = [(p, str(n)) for p, n in sorted(promises.items())]
        print(table("Broken promises", rows, ("promise", "count")))
        print("\nReproducers (first 60):")
        for _seed, mode, breach in totals.breaches[:60]:
            print(
                f"  [{mode}] {breach.promise}: {breach.name or '(run)'} {breach.operator}: "
                f"{breach.detail[:240]}"
            )
            found = NAME.match(breach.name)
            if found:
                s, n = found.groups()
                print(
                    f"      rebuild: .venv/bin/python -m tests.mutate {s} {int(n)} "
                    f"--good {args.good} -o {breach.name}"
                )
        for seed, names in totals.culprits:
            print(f"  run seed {seed}: the smallest set of inputs found to break it again:")
            for name in names[:10]:
                found = NAME.match(name)
                again = f"(-m tests.mutate {found[1]} {int(found[2])})" if found else ""
                print(f"      {name} {again}")
        print(f"\ninputs of the broken runs kept in {work}")
    return 1 if totals.breaches else 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not mutate.CORPUS.is_dir():
        print(f"note: {mutate.CORPUS} is missing: the samples are the only seeds", file=sys.stderr)
    work = Path(tempfile.mkdtemp(prefix="edi-gateway-fuzz-"))
    started = time.perf_counter()
    with contextlib.ExitStack() as stack:
        if args.postgres:
            from tests.servers import postgresql

            # not under the work folder: the server runs as postgres, which needs its own
            base = Path(tempfile.mkdtemp(prefix="edi-gateway-fuzz-pg-"))
            stack.callback(shutil.rmtree, base, ignore_errors=True)
            STORES.server = stack.enter_context(postgresql(base))
        totals = soak(args, work)
    code = report(args, totals, time.perf_counter() - started, work)
    if code == 0 and not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    return code


if __name__ == "__main__":
    sys.exit(main())
