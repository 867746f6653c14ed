"""The safe YAML loader every config, column map and reply map is read with.

libyaml's parser (``yaml.CSafeLoader``) where PyYAML has it, as its wheels do: the pure-Python
one took most of validating a config (docs/adr/0041). PyYAML installed without libyaml (built
from its source where no wheel fits) has no ``CSafeLoader``: naming it there failed every
config load with an AttributeError, so such an install reads with the pure-Python loader,
the same safe constructor and resolver (the same values), only slower.
"""

from __future__ import annotations

import yaml

__all__ = ["safe_loader"]


def safe_loader() -> type[yaml.SafeLoader] | type[yaml.CSafeLoader]:
    """libyaml's safe loader when PyYAML was built with it, else PyYAML's own."""
    return yaml.CSafeLoader if yaml.__with_libyaml__ else yaml.SafeLoader
