"""A counter-based random op: uniform floats in [0, 1) from (seed, counter, element index).

Stateless and reproducible: the same seed and counter give the same numbers on
the reference interpreter and in compiled code, for any batch size, so
dropout masks are part of what tests compare. The hash is the murmur3
finalizer applied twice (32-bit integer arithmetic only).
"""

from __future__ import annotations

import numpy as np

from kcompile.ir import traits as T
from kcompile.ir.ops.common import expect_arity, expect_dtype
from kcompile.ir.registry import OpDef, register
from kcompile.ir.types import DType, ShapeError, TensorType, bind_shape

GOLDEN = 0x9E3779B9


def mix32(x: np.ndarray) -> np.ndarray:
    """murmur3's fmix32 on uint32 arrays."""
    x = x.astype(np.uint32, copy=True)
    x ^= x >> np.uint32(16)
    x *= np.uint32(0x85EBCA6B)
    x ^= x >> np.uint32(13)
    x *= np.uint32(0xC2B2AE35)
    x ^= x >> np.uint32(16)
    return x


def stream_key(seed: int, counter: int) -> np.uint32:
    with np.errstate(over="ignore"):
        c = mix32(np.asarray([counter], dtype=np.int64).astype(np.uint32) + np.uint32(GOLDEN))
        return mix32(np.asarray([seed & 0xFFFFFFFF], dtype=np.uint32) ^ c)[0]


def uniform_bits(key: np.uint32, count: int) -> np.ndarray:
    """24 random bits per element, as float in [0, 1)."""
    with np.errstate(over="ignore"):
        i = np.arange(count, dtype=np.uint32)
        h = mix32(mix32(i ^ key) + key)
    return (h >> np.uint32(8)).astype(np.float64) * (1.0 / (1 << 24))


def _infer(types, attrs):
    expect_arity(types, 1)
    expect_dtype(types[0], DType.i32, "counter")
    if types[0].shape != ():
        raise ShapeError(f"the counter must be a scalar, got {types[0]}")
    return [TensorType(DType.f32, tuple(attrs["shape"]))]


def _reference(ctx, args, attrs):
    shape = bind_shape(attrs["shape"], ctx.batch)
    key = stream_key(attrs["seed"], int(args[0]))
    count = int(np.prod(shape, dtype=np.int64))
    return [uniform_bits(key, count).astype(ctx.float_dtype).reshape(shape)]


register(
    OpDef(
        "random_uniform",
        "random",
        1,
        _infer,
        _reference,
        None,
        # Drawn when the step runs, even from a constant key.
        traits=T.Traits(T.Pattern.OPAQUE, folds=False),
    )
)
