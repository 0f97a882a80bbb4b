"""More of ``keras.ops``'s numpy-like functions, each a composition of the ops in
``kcompile.ops.numpy`` (so each has its gradient from the primitives' VJPs): logarithms
in other bases, flips and rolls (gathers at constant indices), triangles and diagonals
(products with constant masks), ``cumsum`` (a product with a triangle of ones),
stacking, outer and inner products, and numpy-only creation functions.
"""

from __future__ import annotations

import math

import numpy as np

from kcompile.ir import BATCH, DType, Value
from kcompile.ir import build as B
from kcompile.ir.types import normalize_axes
from kcompile.ops import numpy as N
from kcompile.ops.core import fval, fvals, op, unsupported, val, vals
from kcompile.ops.numpy import _axes, _named, _np_dtype, _numel, _unary

log2 = _unary("log2", lambda v: B.log(v) * (1.0 / math.log(2.0)))
log10 = _unary("log10", lambda v: B.log(v) * (1.0 / math.log(10.0)))
exp2 = _unary("exp2", lambda v: B.exp(v * math.log(2.0)))
fabs = _unary("fabs", B.abs)
deg2rad = _unary("deg2rad", lambda v: v * (math.pi / 180.0))
rad2deg = _unary("rad2deg", lambda v: v * (180.0 / math.pi))
copy = _unary("copy", lambda v: v, None)


@op
def cbrt(x):
    v = fval(x)
    return B.sign(v) * B.power(B.abs(v), 1.0 / 3.0)


@op
def trunc(x):
    v = val(x)
    return v if v.dtype is not DType.f32 else B.sign(v) * B.floor(B.abs(v))


@op
def hypot(x1, x2):
    a, b = fvals(x1, x2)
    return B.sqrt(B.square(a) + B.square(b))


@op
def logaddexp(x1, x2):
    a, b = fvals(x1, x2)
    top = B.maximum(a, b)
    return top + B.log1p(B.exp(-B.abs(a - b)))


@op
def divide_no_nan(x1, x2):
    """``x1 / x2``, and 0 where ``x2`` is 0 (with a zero gradient there, not NaN)."""
    a, b = fvals(x1, x2)
    zero = B.eq(b, 0.0)
    return B.select(zero, B.const(a.graph, 0.0), a / B.select(zero, B.const(b.graph, 1.0), b))


@op
def heaviside(x1, x2):
    a, b = fvals(x1, x2)
    step = B.cast(B.gt(a, 0.0), DType.f32)
    return B.select(B.eq(a, 0.0), b, step)


logical_xor = _named("logical_xor", lambda x1, x2: B.ne(*vals(x1, x2, dtype=DType.bool)))


# --- reductions ---------------------------------------------------------------------------


@op
def count_nonzero(x, axis=None):
    v = val(x)
    nonzero = B.cast(B.ne(v, B.const(v.graph, 0, v.dtype)), DType.i32)
    return B.reduce_sum(nonzero, _axes(v, axis))


@op
def ptp(x, axis=None, keepdims=False):
    return N.max.__kcompile_op__(x, axis, keepdims) - N.min.__kcompile_op__(x, axis, keepdims)


@op
def average(x, axis=None, weights=None):
    v = fval(x)
    if weights is None:
        return B.mean(v, _axes(v, axis))
    w = fval(weights)
    if w.rank == 1 and v.rank > 1:
        if axis is None:
            raise ValueError("average: 1-D weights need an axis")
        at = normalize_axes(axis, v.rank)[0]
        w = B.reshape(w, tuple(w.shape[0] if i == at else 1 for i in range(v.rank)))
    axes = _axes(v, axis)
    return B.reduce_sum(v * w, axes) / B.reduce_sum(B.broadcast_to(w, v.shape), axes)


@op
def cumsum(x, axis=None, dtype=None):
    """Running sums along ``axis``: a product with a triangle of ones (L*L work for an
    axis of length L, exact in its gradient)."""
    v = val(x, DType.f32 if dtype is None else None)
    if axis is None:
        v, axis = B.reshape(v, (_numel(v.shape),)), 0
    axis = normalize_axes(axis, v.rank)[0]
    length = v.shape[axis]
    if length == BATCH:
        raise unsupported("cumsum", "along the batch dimension")
    moved = _to_last(v, axis)
    ones = np.triu(np.ones((length, length), np.float32))
    summed = B.matmul(
        B.cast(moved, DType.f32),
        B.const_array(v.graph, ones.ravel().tolist(), DType.f32, ones.shape),
    )
    out = _from_last(summed, axis)
    return out if v.dtype is DType.f32 else B.cast(out, v.dtype)


def _to_last(v: Value, axis: int) -> Value:
    if axis == v.rank - 1:
        return v
    return B.transpose(v, (*(i for i in range(v.rank) if i != axis), axis))


def _from_last(v: Value, axis: int) -> Value:
    if axis == v.rank - 1:
        return v
    perm = [*range(axis), v.rank - 1, *range(axis, v.rank - 1)]
    return B.transpose(v, perm)


# --- rearranging ------------------------------------------------------------------------


def _gather(v: Value, axis: int, indices: np.ndarray, name: str) -> Value:
    if v.shape[axis] == BATCH:
        raise unsupported(name, "along the batch dimension")
    return N.take.__kcompile_op__(v, indices.astype(np.int32), axis)


@op
def flip(x, axis=None):
    v = val(x)
    for a in _axes(v, axis):
        v = _gather(v, a, np.arange(v.shape[a])[::-1].copy(), "flip")
    return v


fliplr = _named("fliplr", lambda x: flip.__kcompile_op__(x, 1))
flipud = _named("flipud", lambda x: flip.__kcompile_op__(x, 0))


@op
def roll(x, shift, axis=None):
    v = val(x)
    if axis is None:
        flat = B.reshape(v, (_numel(v.shape),))
        return B.reshape(roll.__kcompile_op__(flat, shift, 0), v.shape)
    shifts = [shift] if isinstance(shift, int) else list(shift)
    axes = [axis] if isinstance(axis, int) else list(axis)
    for s, a in zip(shifts, axes):
        a = normalize_axes(a, v.rank)[0]
        v = _gather(v, a, (np.arange(v.shape[a]) - s) % v.shape[a], "roll")
    return v


@op
def swapaxes(x, axis1, axis2):
    v = val(x)
    perm = list(range(v.rank))
    a, b = normalize_axes(axis1, v.rank)[0], normalize_axes(axis2, v.rank)[0]
    perm[a], perm[b] = perm[b], perm[a]
    return N.transpose.__kcompile_op__(v, perm)


@op
def moveaxis(x, source, destination):
    v = val(x)
    sources = [source] if isinstance(source, int) else list(source)
    targets = [destination] if isinstance(destination, int) else list(destination)
    sources = [normalize_axes(s, v.rank)[0] for s in sources]
    targets = [normalize_axes(t, v.rank)[0] for t in targets]
    rest = [i for i in range(v.rank) if i not in sources]
    perm = [0] * v.rank
    for s, t in zip(sources, targets):
        perm[t] = s
    free = iter(rest)
    for i in range(v.rank):
        if i not in targets:
            perm[i] = next(free)
    return N.transpose.__kcompile_op__(v, perm)


@op
def ravel(x):
    v = val(x)
    return B.reshape(v, (_numel(v.shape),))


@op
def hstack(xs):
    values = vals(*xs)
    return B.concat(values, 0 if values[0].rank == 1 else 1)


@op
def vstack(xs):
    values = [B.reshape(v, (1, v.shape[0])) if v.rank == 1 else v for v in vals(*xs)]
    return B.concat(values, 0)


# --- triangles, diagonals, products ----------------------------------------------------


def _mask_last_two(v: Value, mask: np.ndarray) -> Value:
    m = B.const_array(v.graph, mask.astype(np.float32).ravel().tolist(), DType.f32, mask.shape)
    out = B.cast(v, DType.f32) * m
    return out if v.dtype is DType.f32 else B.cast(out, v.dtype)


@op
def tril(x, k=0):
    v = val(x)
    return _mask_last_two(v, np.tril(np.ones(v.shape[-2:]), k))


@op
def triu(x, k=0):
    v = val(x)
    return _mask_last_two(v, np.triu(np.ones(v.shape[-2:]), k))


@op
def diagonal(x, offset=0, axis1=0, axis2=1):
    """The diagonal of the (axis1, axis2) planes, as the last axis (numpy's layout)."""
    v = val(x)
    a, b = normalize_axes(axis1, v.rank)[0], normalize_axes(axis2, v.rank)[0]
    if BATCH in (v.shape[a], v.shape[b]):
        raise unsupported("diagonal", "of planes that hold the batch dimension")
    rest = [i for i in range(v.rank) if i not in (a, b)]
    moved = N.transpose.__kcompile_op__(v, [*rest, a, b])
    n, m = v.shape[a], v.shape[b]
    picked = B.reduce_sum(_mask_last_two(moved, np.eye(n, m, offset)), (moved.rank - 1,))
    first = max(0, -offset)
    length = max(0, min(n - first, m - max(0, offset)))
    return N._slice_axis(picked, picked.rank - 1, first, first + length)


@op
def trace(x, offset=0, axis1=0, axis2=1):
    d = diagonal.__kcompile_op__(x, offset, axis1, axis2)
    return B.reduce_sum(d, (d.rank - 1,))


@op
def diag(x, k=0):
    v = val(x)
    if v.rank == 2:
        return diagonal.__kcompile_op__(v, k)
    if v.rank != 1 or v.shape[0] == BATCH:
        raise ValueError(f"diag takes a vector or a matrix, got shape {v.shape}")
    n = v.shape[0] + abs(k)
    padded = B.pad(v, [0], [abs(k)], 0.0)
    # above the diagonal (k >= 0) row i holds v[i]; below it column j holds v[j]
    lined = B.reshape(padded, (n, 1) if k >= 0 else (1, n))
    return _mask_last_two(B.broadcast_to(lined, (n, n)), np.eye(n, n, k))


@op
def outer(x1, x2):
    a, b = vals(x1, x2)
    a = B.reshape(a, (_numel(a.shape), 1))
    b = B.reshape(b, (1, _numel(b.shape)))
    return a * b


@op
def inner(x1, x2):
    a, b = fvals(x1, x2)
    if a.rank == 0 or b.rank == 0:
        return a * b
    return N.tensordot.__kcompile_op__(a, b, ([a.rank - 1], [b.rank - 1]))


@op
def vdot(x1, x2):
    a, b = fvals(x1, x2)
    return B.reduce_sum(B.reshape(a, (_numel(a.shape),)) * B.reshape(b, (_numel(b.shape),)), (0,))


@op
def isclose(x1, x2, rtol=1e-5, atol=1e-8, equal_nan=False):
    """numpy's: |x1 - x2| <= atol + rtol·|x2|, equal infinities close, NaN close to NaN
    only with ``equal_nan``."""
    a, b = fvals(x1, x2)
    close = B.logical_or(B.eq(a, b), B.le(B.abs(a - b), atol + rtol * B.abs(b)))
    if equal_nan:
        close = B.logical_or(close, B.logical_and(B.ne(a, a), B.ne(b, b)))
    return close


@op
def allclose(x1, x2, rtol=1e-5, atol=1e-8, equal_nan=False):
    close = B.cast(isclose.__kcompile_op__(x1, x2, rtol, atol, equal_nan), DType.f32)
    return B.gt(B.neg(B.reduce_max(B.neg(close), tuple(range(close.rank)))), 0.0)


# --- creation (numbers in, arrays out) -----------------------------------------------------


def identity(n, dtype=None) -> np.ndarray:
    return np.identity(n, _np_dtype(dtype))


def tri(N, M=None, k=0, dtype=None) -> np.ndarray:
    return np.tri(N, M, k, _np_dtype(dtype))


def linspace(start, stop, num=50, endpoint=True, retstep=False, dtype=None, axis=0):
    out = np.linspace(start, stop, num, endpoint, retstep, axis=axis)
    if retstep:
        return out[0].astype(_np_dtype(dtype)), out[1]
    return out.astype(_np_dtype(dtype))


def logspace(start, stop, num=50, endpoint=True, base=10, dtype=None, axis=0) -> np.ndarray:
    return np.logspace(start, stop, num, endpoint, base, axis=axis).astype(_np_dtype(dtype))


def meshgrid(*x, indexing="xy") -> list[np.ndarray]:
    return [np.asarray(a) for a in np.meshgrid(*[np.asarray(a) for a in x], indexing=indexing)]


def empty(shape, dtype=None) -> np.ndarray:
    return np.zeros(shape, _np_dtype(dtype))


empty_like = _named("empty_like", lambda x, dtype=None: N.full_like.__kcompile_op__(x, 0, dtype))

__all__ = [
    "allclose",
    "average",
    "cbrt",
    "copy",
    "count_nonzero",
    "cumsum",
    "deg2rad",
    "diag",
    "diagonal",
    "divide_no_nan",
    "empty",
    "empty_like",
    "exp2",
    "fabs",
    "flip",
    "fliplr",
    "flipud",
    "heaviside",
    "hstack",
    "hypot",
    "identity",
    "inner",
    "isclose",
    "linspace",
    "log2",
    "log10",
    "logaddexp",
    "logical_xor",
    "logspace",
    "meshgrid",
    "moveaxis",
    "outer",
    "ptp",
    "rad2deg",
    "ravel",
    "roll",
    "swapaxes",
    "trace",
    "tri",
    "tril",
    "triu",
    "trunc",
    "vdot",
    "vstack",
]
