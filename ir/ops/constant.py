"""The constant op: a splat of one number (any shape, ``N`` allowed) or explicit data."""

from __future__ import annotations

import numpy as np

from kcompile.ir import traits as T
from kcompile.ir.ops.common import expect_arity
from kcompile.ir.registry import OpDef, RefContext, register
from kcompile.ir.types import DType, ShapeError, TensorType, bind_shape


def _infer(types, attrs):
    expect_arity(types, 0)
    t = TensorType(DType.parse(attrs["dtype"]), tuple(attrs["shape"]))
    value = attrs["value"]
    if isinstance(value, tuple):
        if not t.is_static:
            raise ShapeError(f"a constant with explicit data needs a static shape, got {t}")
        if len(value) != t.static_size():
            raise ShapeError(
                f"constant data has {len(value)} elements, type {t} needs {t.static_size()}"
            )
    return [t]


def _reference(ctx: RefContext, args, attrs):
    dtype = DType.parse(attrs["dtype"])
    np_dtype = ctx.storage(dtype)
    shape = bind_shape(attrs["shape"], ctx.batch)
    value = attrs["value"]
    if isinstance(value, tuple):
        return [np.asarray(value, dtype=np_dtype).reshape(shape)]
    return [np.full(shape, value, dtype=np_dtype)]


# Every loop body holds a copy of a one-value constant (a splat).
register(
    OpDef(
        "constant",
        "constant",
        0,
        _infer,
        _reference,
        None,
        traits=T.Traits(T.Pattern.OPAQUE, loop_bodies=T.ALL_LOOPS),
    )
)


def constant_value(v) -> float | int | bool | tuple | None:
    """What a constant value holds (one number for a splat, a tuple of all its elements
    otherwise), or None when ``v`` is not made by a constant."""
    if v.node is not None and v.node.op == "constant":
        return v.node.attrs["value"]
    return None


def splat_value(v) -> float | int | bool | None:
    """The number a splat constant holds, else None."""
    value = constant_value(v)
    return None if isinstance(value, tuple) else value
