"""The one registry of primitive ops: shape rule, numpy reference, VJP rule, traits.

Adding an op means one ``register`` call (in ``ir/ops/``), one lowering in
``codegen``, and tests. Nothing else should need to change: passes and codegen
learn what the op is from its traits (``ir.traits``).

The registry is a leaf: it imports no op. ``kcompile.ir``'s package initializer
imports ``kcompile.ir.ops``, which registers them all, so every user of the IR
finds them registered.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from kcompile.ir.traits import Traits
from kcompile.ir.types import DType, TensorType

InferFn = Callable[[list[TensorType], dict[str, Any]], list[TensorType]]
ReferenceFn = Callable[["RefContext", list[np.ndarray], dict[str, Any]], list[np.ndarray]]
# A VJP rule gets the node and one cotangent per output (a symbolic ``ir.grad.Zero``
# where no gradient flows) and returns one cotangent per input (None for no gradient).
VjpFn = Callable[[Any, list[Any]], list[Any]]


@dataclass(frozen=True)
class RefContext:
    """What the reference implementations need besides their operands."""

    batch: int | None
    float_dtype: np.dtype = field(default_factory=lambda: np.dtype(np.float32))

    def storage(self, dtype: DType) -> np.dtype:
        """The numpy dtype a value of ``dtype`` is held in: narrow floats keep their width
        in float32 runs (each op rounds its result as the native code does) and are
        widened in float64 runs (gradient checks, where rounding would swamp the
        differences)."""
        if dtype is DType.f32 or (dtype.is_float and self.float_dtype != np.float32):
            return self.float_dtype
        return dtype.numpy


@dataclass(frozen=True)
class OpDef:
    name: str
    family: str
    arity: int | None  # None: variadic
    infer: InferFn
    reference: ReferenceFn
    vjp: VjpFn | None  # None: declared not differentiable (no gradient flows through)
    doc: str = ""
    traits: Traits | None = None  # required: ``register`` refuses an op without


_REGISTRY: dict[str, OpDef] = {}


def register(opdef: OpDef) -> OpDef:
    if opdef.name in _REGISTRY:
        raise ValueError(f"op {opdef.name!r} is registered twice")
    if not isinstance(opdef.traits, Traits):
        raise ValueError(f"op {opdef.name!r} is registered without traits (ir.traits.Traits)")
    _REGISTRY[opdef.name] = opdef
    return opdef


def get_op(name: str) -> OpDef:
    try:
        return _REGISTRY[name]
    except KeyError:
        known = ", ".join(sorted(_REGISTRY))
        raise KeyError(f"unknown op {name!r}; known ops: {known}") from None


def ops_in_families(*families: str) -> set[str]:
    """Names of the ops of the given families (``unary``, ``binary``, ``compare``, ...)."""
    return {name for name, op in _REGISTRY.items() if op.family in families}


def all_ops() -> dict[str, OpDef]:
    return dict(_REGISTRY)
