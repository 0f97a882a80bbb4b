"""``keras.ops``'s sorting functions: ``sort``, ``argsort``, ``top_k``, ``median``,
``quantile`` and their kin, ``searchsorted`` and ``digitize``.

kcompile has no sort primitive: a sort along an axis of static length L ranks each
element by comparing it with every other (L² comparisons, held in memory at once), then
places each element at its rank with a select. That is exact, stable (ties keep their
order, as jax's sorts do), puts NaN last (as numpy), and differentiable: the gradient of
a sorted value flows back to the element that was placed there. It suits the short axes
models sort (classes, a window, a row of features); a long axis costs L² memory.
"""

from __future__ import annotations

import math

import numpy as np

from kcompile.ir import BATCH, DType, Value
from kcompile.ir import build as B
from kcompile.ir.types import normalize_axes
from kcompile.ops import composite as C
from kcompile.ops import numpy as N
from kcompile.ops.core import fval, op, unsupported, val
from kcompile.ops.numpy import _numel


def _iota(v: Value, length: int, shape: tuple, dtype: DType = DType.i32) -> Value:
    values = np.arange(length).reshape(shape)
    return B.const_array(v.graph, values.ravel().tolist(), dtype, values.shape)


def _ranks(v: Value, descending: bool = False) -> Value:
    """Each element's place in the stable sort of the last axis (i32, v's shape)."""
    length = v.shape[-1]
    if length == BATCH:
        raise unsupported("sort", "along the batch dimension")
    if descending:
        v = B.neg(v) if v.dtype is not DType.bool else B.logical_not(v)
    if v.dtype is DType.bool:
        v = B.cast(v, DType.i32)
    mine = B.reshape(v, (*v.shape, 1))  # [..., i, 1]
    other = B.reshape(v, (*v.shape[:-1], 1, length))  # [..., 1, j]
    if v.dtype is DType.f32:
        nan_i, nan_j = B.ne(mine, mine), B.ne(other, other)
        before = B.logical_and(B.logical_not(nan_j), B.logical_or(nan_i, B.lt(other, mine)))
        tie = B.logical_or(B.logical_and(nan_i, nan_j), B.eq(other, mine))
    else:
        before, tie = B.lt(other, mine), B.eq(other, mine)
    earlier = B.lt(_iota(v, length, (1, length)), _iota(v, length, (length, 1)))  # j < i
    counted = B.logical_or(before, B.logical_and(tie, earlier))
    return B.reduce_sum(B.cast(counted, DType.i32), (v.rank,))


def _place(v: Value, ranks: Value, source: Value) -> Value:
    """``source`` rearranged along the last axis so that element i lands at ranks[i]."""
    length = v.shape[-1]
    at = B.eq(B.reshape(ranks, (*ranks.shape, 1)), _iota(v, length, (1, length)))  # [..., i, k]
    spread = B.reshape(source, (*source.shape, 1))
    zero = B.const(v.graph, 0, source.dtype)
    return B.reduce_sum(B.select(at, spread, zero), (v.rank - 1,))


def _sorted_last(v: Value, descending: bool = False) -> tuple[Value, Value]:
    """The last axis sorted, and the indices of the sort (i32)."""
    ranks = _ranks(v, descending)
    length = v.shape[-1]
    index = B.broadcast_to(_iota(v, length, (length,)), v.shape)
    return _place(v, ranks, v), _place(v, ranks, index)


def _along(v: Value, axis: int, fn):
    """``fn`` applied along ``axis`` (moved last and back)."""
    moved = C._to_last(v, axis)
    outs = fn(moved)
    return tuple(C._from_last(o, axis) for o in outs)


def _axis(v: Value, axis) -> tuple[Value, int]:
    if axis is None:
        return B.reshape(v, (_numel(v.shape),)), 0
    return v, normalize_axes(axis, v.rank)[0]


@op
def sort(x, axis=-1):
    v, axis = _axis(val(x), axis)
    return _along(v, axis, lambda m: _sorted_last(m)[:1])[0]


@op
def argsort(x, axis=-1):
    v, axis = _axis(val(x), axis)
    return _along(v, axis, lambda m: _sorted_last(m)[1:])[0]


@op
def argpartition(x, kth, axis=-1):
    """Indices that partition ``x`` around its ``kth`` element: kcompile gives the full
    stable sort's indices, which is one such partition."""
    return argsort.__kcompile_op__(x, axis)


@op
def top_k(x, k, sorted=True):
    """The ``k`` largest values of the last axis and their indices (ties: lower index
    first, as jax's ``top_k``)."""
    v = val(x)
    values, indices = _sorted_last(v, descending=True)
    last = v.rank - 1
    return N._slice_axis(values, last, 0, k), N._slice_axis(indices, last, 0, k)


@op
def in_top_k(targets, predictions, k):
    """Whether each row's target class is among the ``k`` largest predictions (a tie with
    the k-th value counts as in, as Keras's)."""
    p = fval(predictions)
    t = val(targets, DType.i32)
    target_score = B.reduce_sum(
        B.one_hot(t, p.shape[-1]) * p, (p.rank - 1,), keepdims=True
    )  # [..., 1]
    above = B.reduce_sum(B.cast(B.gt(p, target_score), DType.i32), (p.rank - 1,))
    return B.lt(above, k)


# --- order statistics -------------------------------------------------------------------


def _reduced_last(v: Value, axis, keepdims: bool) -> tuple[Value, tuple]:
    """``v`` with the reduced axes moved to the end and merged into one, and the shape
    the result takes (kept axes, with ones where ``keepdims``)."""
    if axis is None:
        axes = tuple(range(v.rank))
    else:
        axes = normalize_axes(tuple(axis) if isinstance(axis, list | tuple) else axis, v.rank)
    rest = [i for i in range(v.rank) if i not in axes]
    moved = N.transpose.__kcompile_op__(v, [*rest, *axes])
    merged = B.reshape(moved, (*[v.shape[i] for i in rest], _numel([v.shape[i] for i in axes])))
    if keepdims:
        shape = tuple(1 if i in axes else d for i, d in enumerate(v.shape))
    else:
        shape = tuple(v.shape[i] for i in rest)
    return merged, shape


_METHODS = ("linear", "lower", "higher", "midpoint", "nearest")


def _pick(s: Value, position: Value) -> Value:
    """``s[..., position]`` for an f32 position per row ([..., 1], a whole number)."""
    length = s.shape[-1]
    at = B.eq(_iota(s, length, (length,), DType.f32), position)
    return B.reduce_sum(B.select(at, s, 0.0), (s.rank - 1,), keepdims=True)


def _quantile(x, q, axis, method: str, keepdims: bool, ignore_nan: bool) -> Value:
    if method not in _METHODS:
        raise ValueError(f"quantile: method must be one of {_METHODS}, got {method!r}")
    v = fval(x)
    if isinstance(q, Value) or hasattr(q, "value"):
        raise unsupported("quantile", "with traced quantiles (give numbers or an array)")
    qs = np.asarray(q, np.float64)
    merged, shape = _reduced_last(v, axis, keepdims)
    s = _sorted_last(merged)[0]  # NaN last
    length = s.shape[-1]
    if ignore_nan:
        count = B.reduce_sum(B.cast(B.eq(merged, merged), DType.f32), (s.rank - 1,), True)
    else:
        count = B.const(s.graph, float(length), DType.f32, (*s.shape[:-1], 1))
    outs = []
    for quantile in qs.ravel():
        pos = (count - 1.0) * float(quantile)
        lo, hi = B.floor(pos), B.ceil(pos)
        a, b = _pick(s, lo), _pick(s, hi)
        if method == "linear":
            out = a + (b - a) * (pos - lo)
        elif method == "lower":
            out = a
        elif method == "higher":
            out = b
        elif method == "midpoint":
            out = (a + b) * 0.5
        else:
            out = _pick(s, B.round_(pos))
        if ignore_nan:
            out = B.select(B.eq(count, 0.0), math.nan, out)
        else:  # any NaN (sorted last) makes the quantile NaN, as numpy's
            greatest = N._slice_axis(s, s.rank - 1, length - 1, length)
            out = B.select(B.ne(greatest, greatest), math.nan, out)
        outs.append(B.reshape(out, shape))
    if qs.ndim == 0:
        return outs[0]
    stacked = B.concat([B.reshape(o, (1, *shape)) for o in outs], 0)
    return B.reshape(stacked, (*qs.shape, *shape))


@op
def quantile(x, q, axis=None, method="linear", keepdims=False):
    return _quantile(x, q, axis, method, keepdims, ignore_nan=False)


@op
def percentile(x, q, axis=None, method="linear", keepdims=False):
    return _quantile(x, np.asarray(q, np.float64) / 100.0, axis, method, keepdims, False)


@op
def median(x, axis=None, keepdims=False):
    return _quantile(x, 0.5, axis, "linear", keepdims, ignore_nan=False)


@op
def nanquantile(x, q, axis=None, method="linear", keepdims=False):
    return _quantile(x, q, axis, method, keepdims, ignore_nan=True)


@op
def nanpercentile(x, q, axis=None, method="linear", keepdims=False):
    return _quantile(x, np.asarray(q, np.float64) / 100.0, axis, method, keepdims, True)


@op
def nanmedian(x, axis=None, keepdims=False):
    return _quantile(x, 0.5, axis, "linear", keepdims, ignore_nan=True)


# --- searching ----------------------------------------------------------------------------


def _count_below(edges: Value, v: Value, inclusive: bool) -> Value:
    """For each element of ``v``: how many of the 1-D ``edges`` are below it (or equal,
    when ``inclusive``), as i32."""
    e = B.reshape(edges, (*[1] * v.rank, edges.shape[0]))
    x = B.reshape(v, (*v.shape, 1))
    below = B.le(e, x) if inclusive else B.lt(e, x)
    return B.reduce_sum(B.cast(below, DType.i32), (v.rank,))


@op
def searchsorted(sorted_sequence, values, side="left"):
    if side not in ("left", "right"):
        raise ValueError(f"searchsorted: side must be 'left' or 'right', got {side!r}")
    seq = val(sorted_sequence)
    if seq.rank != 1:
        raise ValueError(f"searchsorted: sorted_sequence must be 1-D, got shape {seq.shape}")
    values_v = val(values, seq.dtype)
    return _count_below(seq, values_v, inclusive=side == "right")


@op
def digitize(x, bins):
    """numpy's ``digitize`` (``right=False``): for increasing bins, how many bins are at
    or below each value; for decreasing bins (known when ``bins`` is an array), how many
    are above it."""
    edges = fval(bins)
    v = fval(x)
    if edges.rank != 1:
        raise ValueError(f"digitize: bins must be 1-D, got shape {edges.shape}")
    concrete = np.asarray(bins) if isinstance(bins, list | tuple | np.ndarray) else None
    if concrete is not None and concrete.size > 1 and concrete[0] > concrete[-1]:
        e = B.reshape(edges, (*[1] * v.rank, edges.shape[0]))
        above = B.gt(e, B.reshape(v, (*v.shape, 1)))
        return B.reduce_sum(B.cast(above, DType.i32), (v.rank,))
    return _count_below(edges, v, inclusive=True)


NUMPY_NAMES = [
    "argpartition",
    "argsort",
    "digitize",
    "median",
    "nanmedian",
    "nanpercentile",
    "nanquantile",
    "percentile",
    "quantile",
    "searchsorted",
    "sort",
]
__all__ = [*NUMPY_NAMES, "in_top_k", "top_k"]
