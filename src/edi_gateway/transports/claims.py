"""Claimed file names that carry their claimant, for the folder and SFTP transports.

A file is claimed by renaming it to ``<stamp>-<random>@<claimant>--<original name>`` (SFTP puts
its ``claim_tag--`` in front). The claimant is the instance id of the gateway that took it
(``store/instance.py``): when several gateways share a store, one offers again (``recover``)
only its own claims and those of gateways that are no longer alive; a name without a claimant
(an older release, a transport used outside the daemon) is anybody's.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterable
from functools import lru_cache
from typing import Protocol

SEPARATOR = "--"  # between the claim and the original name
_CLAIM = re.compile(
    r"^(?P<stamp>\d{8}T\d{12}Z-[0-9a-f]{8})(?:@(?P<by>[A-Za-z0-9.-]+?))?--(?P<name>.+)$"
)


class Claimants(Protocol):
    """Who this gateway is among those sharing the store, and which others are alive."""

    me: str

    def alive(self, claimants: set[str]) -> set[str]:
        """Those of ``claimants`` whose gateway is running."""
        ...


def claim_prefix(claimants: Claimants | None) -> str:
    """A new claim's prefix: ``<stamp>-<random>[@<claimant>]--``, the stamp the UTC time to
    the microsecond (``20261205T141233123456Z``), the random part 8 hex digits (32 bits)."""
    seconds, micros = divmod(time.time_ns() // 1000, 1_000_000)
    by = f"@{claimants.me}" if claimants is not None else ""
    return f"{_utc_second(seconds)}{micros:06d}Z-{os.urandom(4).hex()}{by}{SEPARATOR}"


@lru_cache(maxsize=4)
def _utc_second(seconds: int) -> str:
    """``YYYYMMDDTHHMMSS`` of a Unix second, once per second (a poll claims many per second)."""
    return time.strftime("%Y%m%dT%H%M%S", time.gmtime(seconds))


def original_name(claimed: str) -> str | None:
    """The original file name inside a claimed name, or None for a name that is no claim."""
    found = _CLAIM.match(claimed)
    return found["name"] if found else None


def to_recover(claimed: Iterable[str], claimants: Claimants | None) -> list[str]:
    """The claimed names (claims only, in the order given) that this gateway offers again: its
    own, those without a claimant and those whose claimant is no longer alive."""
    parsed = [(name, found) for name in claimed if (found := _CLAIM.match(name))]
    if claimants is None:
        return [name for name, _ in parsed]
    others = {by for _, found in parsed if (by := found["by"]) and by != claimants.me}
    running = claimants.alive(others) if others else set()
    return [name for name, found in parsed if found["by"] not in running]
