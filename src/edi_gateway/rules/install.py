"""Install an official rule release from a folder or its archive, and load what is installed.

``install`` finds the release's ``.sch`` files by their sha256 (so any folder layout or archive
of the release will do), refuses anything that is not exactly a known release, compiles each
rule set (``rules/compile.py``) and checks that Saxon accepts it, then moves the finished folder
into place in one rename: a half-installed release is never visible.

Layout: ``<rules dir>/<release>/sch/<set>.sch`` (the verified originals),
``compiled/<set>.xslt`` and ``compiled/<set>.json`` (the assertions), ``release.json``.
``load`` verifies the originals' hashes again and the compiled files' own hashes, and compiles
afresh when this version of the product compiles differently (``COMPILER``).
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import shutil
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from edi_gateway.errors import ErrorCode, GatewayError
from edi_gateway.rules.assertion import Assertion
from edi_gateway.rules.catalog import RELEASES, newest

if TYPE_CHECKING:
    from edi_gateway.rules.evaluate import RuleEngine

COMPILER = "2"
"""Bumped whenever ``compile.py`` writes different stylesheets for the same ``.sch``."""
MAX_SCH = 32 << 20
"""No official ``.sch`` comes near this; bigger archive members are not read."""


@dataclass(frozen=True, slots=True)
class RuleSet:
    """One compiled rule set: the stylesheet text and its assertions."""

    name: str
    title: str
    xslt: str
    assertions: tuple[Assertion, ...]


@dataclass(frozen=True, slots=True)
class Release:
    """An installed, verified release."""

    name: str
    path: Path
    installed_at: str
    sets: dict[str, RuleSet]

    def rule_ids(self) -> set[str]:
        """Every rule ID the release's rule sets can report."""
        return {a.rule_id for rule_set in self.sets.values() for a in rule_set.assertions}


@dataclass(frozen=True, slots=True)
class Listed:
    """What ``rules list`` shows of one installed release."""

    name: str
    path: str
    installed_at: str
    rule_sets: int
    active: bool
    verified: bool
    problem: str | None = None


def _fail(message: str) -> GatewayError:
    return GatewayError(ErrorCode.RULES_UNAVAILABLE, message)


def _sch_files(source: Path) -> Iterator[tuple[str, bytes]]:
    """(name, bytes) of every ``.sch`` in a folder or a zip / tar archive (read in memory,
    member by member: no member is ever written under its own name)."""
    if source.is_dir():
        for path in sorted(source.rglob("*.sch")):
            if path.is_file() and not path.is_symlink() and path.stat().st_size <= MAX_SCH:
                yield path.name, path.read_bytes()
        return
    import tarfile  # only to install a release (~3 ms of every daemon's start otherwise)

    try:
        if zipfile.is_zipfile(source):
            with zipfile.ZipFile(source) as archive:
                for info in archive.infolist():
                    if info.filename.endswith(".sch") and 0 < info.file_size <= MAX_SCH:
                        yield Path(info.filename).name, archive.read(info)
            return
        if tarfile.is_tarfile(source):
            with tarfile.open(source) as archive:
                for member in archive:
                    if member.isfile() and member.name.endswith(".sch") and member.size <= MAX_SCH:
                        handle = archive.extractfile(member)
                        if handle is not None:
                            yield Path(member.name).name, handle.read(MAX_SCH + 1)
            return
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, OSError, zlib.error) as exc:
        raise _fail(f"{source}: the archive cannot be read ({exc}); download it again") from exc
    raise _fail(f"{source}: not a folder, a zip or a tar archive of a rule release")


def identify(source: Path) -> tuple[str, dict[str, bytes]]:
    """The known release ``source`` holds, and its files by rule set name; or a clear error.

    Only files whose sha256 belongs to a known release are kept in memory."""
    if not source.exists():
        raise _fail(f"{source} does not exist")
    known = {digest for files in RELEASES.values() for digest in files.values()}
    by_hash: dict[str, bytes] = {}
    names: dict[str, str] = {}
    seen = 0
    for name, data in _sch_files(source):
        seen += 1
        digest = hashlib.sha256(data).hexdigest()
        if digest in known:
            by_hash[digest] = data
        names[name] = digest
    if not seen:
        raise _fail(f"{source}: no .sch file found (expected an official Peppol rule release)")
    for release, files in RELEASES.items():
        if all(digest in by_hash for digest in files.values()):
            return release, {name: by_hash[digest] for name, digest in files.items()}
    problems = []
    for release, files in RELEASES.items():
        for name, digest in files.items():
            found = names.get(f"{name}.sch")
            if found is None:
                problems.append(f"{release}: {name}.sch is missing")
            elif found != digest:
                problems.append(
                    f"{release}: {name}.sch has sha256 {found[:16]}..., not the "
                    f"published {digest[:16]}... (changed or from another release)"
                )
    raise _fail(
        f"{source} is not a known official release ({', '.join(RELEASES)}): "
        + "; ".join(problems[:6])
        + (f"; and {len(problems) - 6} more" if len(problems) > 6 else "")
    )


def _compile(name: str, sch: Path) -> tuple[RuleSet, str]:
    from edi_gateway.rules.compile import compile_schematron

    compiled = compile_schematron(sch)
    rule_set = RuleSet(name, compiled.title, compiled.xslt, tuple(compiled.assertions))
    meta = json.dumps(
        {"title": compiled.title, "assertions": [asdict(a) for a in compiled.assertions]}
    )
    return rule_set, meta


def install(source: Path, rules_dir: Path) -> Release:
    """Install the release in ``source`` under ``rules_dir``; replaces the same release."""
    from edi_gateway.rules.evaluate import saxon_check

    release, files = identify(source)
    rules_dir.mkdir(parents=True, exist_ok=True)
    staging = rules_dir / f".installing-{release}-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    (staging / "sch").mkdir(parents=True)
    (staging / "compiled").mkdir()
    hashes: dict[str, str] = {}
    for name, data in sorted(files.items()):
        sch = staging / "sch" / f"{name}.sch"
        sch.write_bytes(data)
        rule_set, meta = _compile(name, sch)
        saxon_check(rule_set)
        (staging / "compiled" / f"{name}.xslt").write_text(rule_set.xslt, encoding="utf-8")
        (staging / "compiled" / f"{name}.json").write_text(meta, encoding="utf-8")
        hashes[name] = _digest(rule_set.xslt.encode() + meta.encode())
    record = {
        "release": release,
        "installed_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "compiler": COMPILER,
        "compiled": hashes,
    }
    (staging / "release.json").write_text(json.dumps(record, indent=1), encoding="utf-8")
    target = rules_dir / release
    old = rules_dir / f".replaced-{release}-{os.getpid()}"
    if target.exists():
        target.rename(old)
    staging.rename(target)
    shutil.rmtree(old, ignore_errors=True)
    return load(rules_dir, release)


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def installed_names(rules_dir: Path) -> list[str]:
    """Releases with a ``release.json`` under ``rules_dir`` (verified or not)."""
    if not rules_dir.is_dir():
        return []
    return sorted(p.name for p in rules_dir.iterdir() if (p / "release.json").is_file())


def active_name(rules_dir: Path, pinned: str | None) -> str | None:
    """The release in use: the pinned one, else the newest installed that this version knows
    (a folder of a newer product's release beside it is not taken)."""
    if pinned:
        return pinned
    return newest([n for n in installed_names(rules_dir) if n in RELEASES])


def load(rules_dir: Path, release: str) -> Release:
    """Load and verify an installed release; ``RULES_UNAVAILABLE`` says what is wrong."""
    base = rules_dir / release
    if release not in RELEASES:
        raise _fail(f"release {release!r} is not one this version knows ({', '.join(RELEASES)})")
    try:
        record = json.loads((base / "release.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise _fail(
            f"release {release} is not installed in {rules_dir} ({exc.__class__.__name__}): "
            f"run `edi-gateway rules install PATH`"
        ) from exc
    sets: dict[str, RuleSet] = {}
    for name, digest in RELEASES[release].items():
        sch = base / "sch" / f"{name}.sch"
        try:
            if _digest(sch.read_bytes()) != digest:
                raise _fail(f"{sch} was changed since it was installed: install the release again")
            xslt = (base / "compiled" / f"{name}.xslt").read_text(encoding="utf-8")
            meta = (base / "compiled" / f"{name}.json").read_text(encoding="utf-8")
        except OSError as exc:
            raise _fail(f"{base}: {exc}; install the release again") from exc
        if record.get("compiler") != COMPILER:
            sets[name], _ = _compile(name, sch)  # an older product compiled it: afresh
            continue
        if record.get("compiled", {}).get(name) != _digest(xslt.encode() + meta.encode()):
            raise _fail(f"{base}/compiled/{name}: changed since installed; install again")
        data = json.loads(meta)
        assertions = tuple(Assertion(**a) for a in data["assertions"])
        sets[name] = RuleSet(name, data["title"], xslt, assertions)
    return Release(release, base, str(record.get("installed_at", "")), sets)


def listing(rules_dir: Path, pinned: str | None) -> list[Listed]:
    """Every installed release, verified, with the active one marked."""
    active = active_name(rules_dir, pinned)
    out = []
    for name in installed_names(rules_dir):
        try:
            release = load(rules_dir, name)
            out.append(
                Listed(
                    name,
                    str(release.path),
                    release.installed_at,
                    len(release.sets),
                    name == active,
                    True,
                )
            )
        except GatewayError as exc:
            out.append(
                Listed(name, str(rules_dir / name), "", 0, name == active, False, exc.message)
            )
    return out


@functools.cache
def engine_for(rules_dir: Path, pinned: str | None) -> RuleEngine | None:
    """The process's engine over the release in use (loaded and verified once per process),
    None when none is installed; ``RULES_UNAVAILABLE`` (not remembered) when one is installed
    but does not verify. A release installed later is used after a restart."""
    from edi_gateway.rules.evaluate import RuleEngine

    name = active_name(rules_dir, pinned)
    return RuleEngine(load(rules_dir, name)) if name else None


__all__ = [
    "Listed",
    "Release",
    "RuleSet",
    "active_name",
    "engine_for",
    "identify",
    "install",
    "listing",
    "load",
]
