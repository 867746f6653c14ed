"""Start-up of the read-only commands: wall time of whole processes against bare ``python``.

    python bench/startup.py [--repeat 7] [--json]

A store holding a few orders is made once (``edi-gateway ingest`` of ``tests/factory.py``
orders) under a minimal gateway.yaml, and a second one under the starter config
(``edi-gateway init``, whose layouts make validating it cost more). Then, per repetition and
interleaved (so drift on the machine hits every command alike), each command runs as a whole
child process: ``python -c pass`` (the floor: the interpreter alone), ``--help``,
``orders list``, ``orders show``, ``messages list``, ``messages show``, ``outbox list``,
``rules list``; then ``orders list`` and ``orders show`` under the starter config, with the
validated-config cache (config/cache.py, warm as after any first command) and without it
(its folder unwritable: every command validates). Reported: each command's median wall time,
the same less the bare interpreter's, its median CPU time, and the target of issue 12:
<= 0.3 s. To see where a command's time goes:
``python -X importtime -m edi_gateway.cli orders show 1 2> imports.txt``.
Exit 0 whatever the figures (a benchmark, not a test); 1 if a command failed.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TARGET = 0.3
COMMANDS = {
    "--help": ["--help"],
    "orders list": ["orders", "list"],
    "orders show": ["orders", "show", "1"],
    "messages list": ["messages", "list"],
    "messages show": ["messages", "show", "1"],
    "outbox list": ["outbox", "list"],
    "rules list": ["rules", "list"],
}
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
"""Children may write ``__pycache__`` (the warm-up run does), as an installed gateway has it."""
STARTER = {
    "orders list, starter": ["orders", "list"],
    "orders show, starter": ["orders", "show", "1"],
}
"""Run in the starter project, with the config cache and (``, no cache``) without."""
GATEWAY_YAML = """\
store:
  url: sqlite:///gateway.db
intake:
  unknown_partner: accept
"""


def timed(cmd: list[str], cwd: Path, env: dict[str, str] | None = None) -> tuple[float, float]:
    """Wall and CPU (user + system, ``os.wait4``) seconds of one child process; exits the
    benchmark if it fails."""
    start = time.perf_counter()
    proc = subprocess.Popen(
        cmd, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env or ENV
    )
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        print(f"{' '.join(cmd)} exited {status}", file=sys.stderr)
        sys.exit(1)
    return seconds, usage.ru_utime + usage.ru_stime


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(REPO))
    from tests import factory

    exe = str(Path(sys.executable).parent / "edi-gateway")
    with tempfile.TemporaryDirectory(prefix="bench-startup-") as tmp:
        root = Path(tmp)
        cached = ENV | {"XDG_CACHE_HOME": str(root / "cache")}
        (root / "blocked").write_text("a file where the cache folder would be", encoding="utf-8")
        uncached = ENV | {"XDG_CACHE_HOME": str(root / "blocked")}
        (root / "gateway.yaml").write_text(GATEWAY_YAML, encoding="utf-8")
        (root / "in").mkdir()
        for n in range(1, 4):
            (root / "in" / f"{n}.xml").write_bytes(factory.order(f"PO-{n}", factory.items(5)))
        timed([exe, "ingest", "in"], root, cached)
        starter = root / "starter"
        timed([exe, "init", str(starter)], root, cached)
        timed([exe, "ingest", str(REPO / "samples" / "order-vastra-1001.xml")], starter, cached)
        for words in COMMANDS.values():  # untimed warm-up: page cache, __pycache__, the cache
            timed([exe, *words], root, cached)
        for words in STARTER.values():
            timed([exe, *words], starter, cached)
        runs: dict[str, list[tuple[float, float]]] = {"python -c pass": []}
        runs |= {name: [] for name in [*COMMANDS, *STARTER]}
        runs |= {f"{name}, no cache": [] for name in STARTER}
        for _ in range(args.repeat):
            runs["python -c pass"].append(timed([sys.executable, "-c", "pass"], root))
            for name, words in COMMANDS.items():
                runs[name].append(timed([exe, *words], root, cached))
            for name, words in STARTER.items():
                runs[name].append(timed([exe, *words], starter, cached))
                runs[f"{name}, no cache"].append(timed([exe, *words], starter, uncached))
    walls = {name: statistics.median(w for w, _ in times) for name, times in runs.items()}
    cpus = {name: statistics.median(c for _, c in times) for name, times in runs.items()}
    bare = walls["python -c pass"]
    if args.json:
        figures = {"wall": walls, "cpu": cpus, "load": os.getloadavg()}
        print(json.dumps(figures, indent=2))
        return 0
    print(f"--repeat {args.repeat}, load {os.getloadavg()[0]:.2f}; medians in seconds")
    print(f"{'command':<32} {'wall':>6} {'- python':>9} {'cpu':>6}   wall <= {TARGET} s")
    for name, seconds in walls.items():
        verdict = "" if name == "python -c pass" else "PASS" if seconds <= TARGET else "MISS"
        print(f"{name:<32} {seconds:>6.3f} {seconds - bare:>9.3f} {cpus[name]:>6.3f}   {verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
