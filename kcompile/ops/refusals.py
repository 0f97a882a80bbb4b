"""The ``keras.ops`` names kcompile does not offer, each with why: asking for one raises
``NotImplementedError`` naming it and the reason (``__getattr__`` of ``kcompile.ops``
and of its ``numpy``, ``nn`` and ``linalg`` namespaces). Private and dunder names, and
names of kcompile's own submodules, stay ordinary attribute lookups.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from types import ModuleType

from kcompile.ops.core import unsupported

_COMPLEX = "kcompile's tensors are real (float32, int32, bool): it has no complex dtype"

REASONS: dict[str, str] = {
    **dict.fromkeys(["polar", "view_as_complex", "view_as_real"], _COMPLEX),
    "jvp": "it is forward-mode differentiation; kcompile's autodiff is reverse mode",
    "vectorize": (
        "it calls a Python function once per element, which a traced kcompile step cannot; "
        "write the function with keras.ops's element-wise functions, which broadcast"
    ),
}  # fmt: skip


def refusal(namespace: str) -> Callable[[str], object]:
    """A module ``__getattr__`` for ``namespace`` (``kcompile.ops``, ``kcompile.ops.nn``,
    ...): submodules import as usual; a public name raises ``NotImplementedError`` naming
    it (with why, when known)."""

    def __getattr__(name: str) -> ModuleType:
        if name.startswith("_"):
            raise AttributeError(f"module {namespace!r} has no attribute {name!r}")
        if _is_submodule(f"{namespace}.{name}"):
            return importlib.import_module(f"{namespace}.{name}")
        shown = namespace.replace("kcompile.ops", "").lstrip(".")
        raise unsupported(f"{shown}.{name}" if shown else name, REASONS.get(name, ""))

    return __getattr__


def _is_submodule(dotted: str) -> bool:
    try:
        return importlib.util.find_spec(dotted) is not None
    except ModuleNotFoundError:  # the namespace is a module, not a package
        return False
