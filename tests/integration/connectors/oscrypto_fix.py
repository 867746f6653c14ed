"""Make ``oscrypto`` 1.3.0 (pyas2lib's dependency) import on OpenSSL 3.0.10 and later. Tests only.

oscrypto 1.3.0, the newest release on PyPI, finds libcrypto's version with the regex
``\\b(\\d\\.\\d\\.\\d[a-z]*)\\b``, which cannot match ``3.0.19`` (two-digit patch level), so
``import oscrypto.asymmetric`` raises ``LibraryNotFoundError: Error detecting the version of
libcrypto`` (wbond/oscrypto issues 75 and 78). Upstream fixed it on master by allowing more digits
(pull request 76, merged 2023-08-17; issue 78 names commit d5f3437 as the one to install); no
release carries it. ``oscrypto.use_openssl()`` does not help: it only chooses the library files,
the same regex still runs on their version string.

:func:`install` applies that same one-regex fix while the two modules that contain it
(``_libcrypto_cffi`` and ``_libcrypto_ctypes``) are imported: their source is read from
site-packages, the regex replaced, and the result executed as the module. If the expected regex
is not in the source (another oscrypto version), it fails loudly instead of guessing; with a
fixed oscrypto release the patch is a no-op to delete.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import sys
from collections.abc import Sequence
from types import ModuleType

PATCHED = ("oscrypto._openssl._libcrypto_cffi", "oscrypto._openssl._libcrypto_ctypes")
BROKEN = r"re.search('\\b(\\d\\.\\d\\.\\d[a-z]*)\\b', version_string)"
FIXED = r"re.search('\\b(\\d+\\.\\d+\\.\\d+[a-z]*)\\b', version_string)"


class _Loader(importlib.abc.Loader):
    """Executes one oscrypto module from its source with the version regex fixed."""

    def __init__(self, origin: str) -> None:
        self.origin = origin

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return None  # the default module object

    def exec_module(self, module: ModuleType) -> None:
        with open(self.origin, encoding="utf-8") as handle:
            source = handle.read()
        if BROKEN not in source:
            if FIXED in source:  # a fixed oscrypto: nothing to do
                patched = source
            else:
                raise ImportError(
                    f"{self.origin}: the libcrypto version regex this fix replaces is not there; "
                    "check tests/integration/connectors/oscrypto_fix.py against this oscrypto"
                )
        else:
            patched = source.replace(BROKEN, FIXED, 1)
        exec(compile(patched, self.origin, "exec"), module.__dict__)


class _Finder(importlib.abc.MetaPathFinder):
    """Routes the two oscrypto modules with the version regex to :class:`_Loader`."""

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname not in PATCHED:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is None or spec.origin is None:
            return None
        return importlib.util.spec_from_file_location(
            fullname, spec.origin, loader=_Loader(spec.origin)
        )


def install() -> None:
    """Apply the fix to every later import of oscrypto (idempotent). Call before pyas2lib is
    imported; raises ImportError when oscrypto was already imported without it."""
    if any(isinstance(finder, _Finder) for finder in sys.meta_path):
        return
    loaded = [name for name in PATCHED if name in sys.modules]
    if loaded:
        raise ImportError(f"{loaded[0]} was imported before the OpenSSL 3 version fix")
    sys.meta_path.insert(0, _Finder())
