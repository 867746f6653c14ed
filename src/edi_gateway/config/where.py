"""Where the store is, read from gateway.yaml before the config is validated.

A read-only command (``orders list``, ``messages show``...) needs only where the store is:
``store.url`` and ``daemon.lease_seconds``. When the config cache does not know them (the first
command after the config changed, a cache folder it cannot write), :func:`store_location`
reads them from the YAML by the same rules the models apply (:func:`store_url` is the
``store.url`` validator's own, the lease's bounds are its field's), without pydantic or the
models. The command still refuses a config that does not validate, as every command does:
it validates it in a forked child (config/validating.py, ~0.15 s: pydantic, the models, the
files the config names) while it imports the store (~0.13 s: SQLAlchemy), and opens the store
only once the child has said the config is good (docs/adr/0041, amendment). Anything
:func:`store_location` is not sure of (a password reference, a key it does not know under
``store``, a value the models would refuse) gives None: the command then validates first and
opens after, as before.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edi_gateway.config.cache import StoreAt
from edi_gateway.errors import ConfigError

__all__ = ["LEASE_SECONDS", "STORE_URL", "store_location", "store_url"]

STORE_URL = "sqlite:///gateway.db"
"""``store.url`` when none is given: a SQLite file beside the config."""
LEASE_SECONDS = (5, 30, 600)
"""``daemon.lease_seconds``: its least, default and greatest value."""
_SQLITE = "sqlite:///"
_STORE_SCHEMES = ("sqlite://", "postgresql://", "postgresql+psycopg://")


def store_url(value: str, base_dir: Path) -> str:
    """``store.url`` as the gateway opens it: a relative SQLite file resolved against
    ``base_dir`` (the config's folder); ValueError for another scheme, or a password written
    into the URL."""
    if not value.startswith(_STORE_SCHEMES):
        raise ValueError(
            f"found {value!r}, expected sqlite:///FILE or postgresql+psycopg://USER@HOST/DB"
        )
    if not value.startswith(_SQLITE):
        _no_password(value)
        return value
    file, sep, query = value[len(_SQLITE) :].partition("?")
    if not file or file == ":memory:" or file.startswith("/"):
        return value
    from edi_gateway.config.cache import resolved

    return f"{_SQLITE}{resolved(base_dir / file)}{sep}{query}"


def _no_password(url: str) -> None:
    """Refuse a password written into store.url, without repeating it."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    if parts.password is None:
        return
    shown = url.replace(f":{parts.password}@", ":***@", 1)
    raise ValueError(
        f"found a password written in the URL ({shown}): secrets are never written in "
        "gateway.yaml itself; write the URL without it and add password: {env: VARIABLE} or "
        "password: {file: PATH} under store"
    )


def store_location(path: Path, raw: bytes) -> StoreAt | None:
    """Where the store of the config ``path`` (an absolute path; ``raw``: its bytes) is, read
    from its YAML alone; None when the config must be validated whole to know (see the module
    docstring)."""
    from edi_gateway.config.yamlsafe import read_yaml

    try:
        url, lease = _store_keys(read_yaml(path, raw))
        return StoreAt(store_url(url, path.parent), lease)
    except (ConfigError, ValueError):
        return None


def _store_keys(data: Any) -> tuple[str, float]:
    """``store.url`` and ``daemon.lease_seconds`` (or their defaults) from the parsed YAML;
    ValueError when only validating the whole config can say what they are."""
    if not isinstance(data, dict) or "path" in data:
        raise ValueError("not a config's mapping")
    store, daemon = data.get("store", {}), data.get("daemon", {})
    if not isinstance(store, dict) or not isinstance(daemon, dict) or store.keys() - {"url"}:
        raise ValueError("a password reference (read when used), or a problem")
    url = store.get("url", STORE_URL)
    least, default, greatest = LEASE_SECONDS
    lease = daemon.get("lease_seconds", default)
    # exactly an int or a float (a bool is refused, as the strict model refuses it)
    if not isinstance(url, str) or type(lease) not in (int, float):
        raise ValueError("a value the models refuse")
    if not least <= lease <= greatest:
        raise ValueError("a lease out of bounds")
    return url, float(lease)
