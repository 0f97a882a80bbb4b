"""Package attributes imported on first use.

``import kcompile`` then costs numpy and little else, so a process that only loads
an ahead-of-time artifact never imports the compiler (passes, networkx, llvmlite).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any


def lazy_attributes(package: str, table: dict[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` for ``package``: ``table`` maps each attribute to
    ``"module"`` (the attribute is that module) or ``"module:name"``."""

    def __getattr__(name: str) -> Any:
        target = table.get(name)
        if target is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        module_name, _, attribute = target.partition(":")
        module = importlib.import_module(module_name)
        value = getattr(module, attribute) if attribute else module
        setattr(importlib.import_module(package), name, value)
        return value

    return __getattr__
