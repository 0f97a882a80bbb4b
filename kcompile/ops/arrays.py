"""More of ``keras.ops``'s numpy functions that build, split and combine arrays: each a
composition of ``kcompile.ops.numpy``'s ops (so each has its gradient from the
primitives' VJPs), or, for the functions of numbers alone (windows, ``geomspace``), an
array made at once as numpy makes it (float32, as Keras's default float).
"""

from __future__ import annotations

import builtins
import itertools

import numpy as np

from kcompile.backend.symbolic import TracedTensor
from kcompile.ir import BATCH, DType, Value
from kcompile.ir import build as B
from kcompile.ir.types import normalize_axes
from kcompile.ops import composite as C
from kcompile.ops import numpy as N
from kcompile.ops.core import fval, fvals, op, unsupported, val, vals
from kcompile.ops.numpy import _np_dtype, _numel

# --- joining and splitting ----------------------------------------------------------------


@op
def append(x1, x2, axis=None):
    a, b = vals(x1, x2)
    if axis is None:
        return B.concat([C.ravel.__kcompile_op__(a), C.ravel.__kcompile_op__(b)], 0)
    return B.concat([a, b], normalize_axes(axis, a.rank)[0])


@op
def array_split(x, indices_or_sections, axis=0):
    """numpy's: ``n`` sections need not divide the axis (the first ones get one more)."""
    v = val(x)
    axis = normalize_axes(axis, v.rank)[0]
    if not isinstance(indices_or_sections, int):
        return N.split.__kcompile_op__(v, indices_or_sections, axis)
    size = v.shape[axis]
    if size == BATCH:
        raise unsupported("array_split", "along the batch dimension")
    base, extra = divmod(size, indices_or_sections)
    sizes = [base + (i < extra) for i in range(indices_or_sections)]
    bounds = [0, *itertools.accumulate(sizes)]
    return [N._slice_axis(v, axis, lo, hi) for lo, hi in itertools.pairwise(bounds)]


def _split_on(name: str, axis_for_rank):
    def fn(x, indices_or_sections):
        v = val(x)
        return N.split.__kcompile_op__(v, indices_or_sections, axis_for_rank(v.rank))

    return N._named(name, fn)


hsplit = _split_on("hsplit", lambda rank: 0 if rank == 1 else 1)
vsplit = _split_on("vsplit", lambda rank: 0)
dsplit = _split_on("dsplit", lambda rank: 2)


@op
def dstack(xs):
    def three(v: Value) -> Value:
        if v.rank == 0:
            return B.reshape(v, (1, 1, 1))
        if v.rank == 1:
            return B.reshape(v, (1, v.shape[0], 1))
        return B.reshape(v, (*v.shape, 1)) if v.rank == 2 else v

    return B.concat([three(v) for v in vals(*xs)], 2)


# --- differences, products, sums --------------------------------------------------------


@op
def diff(a, n=1, axis=-1):
    v = val(a)
    axis = normalize_axes(axis, v.rank)[0]
    for _ in range(n):
        size = v.shape[axis]
        v = N._slice_axis(v, axis, 1, size) - N._slice_axis(v, axis, 0, size - 1)
    return v


@op
def cumprod(x, axis=None, dtype=None):
    """Running products along ``axis``: element i is the product of a row masked to
    positions up to i (L² work and memory for an axis of length L; exact with zeros and
    negative numbers, which a sum of logarithms is not)."""
    v = val(x)
    if axis is None:
        v, axis = B.reshape(v, (_numel(v.shape),)), 0
    axis = normalize_axes(axis, v.rank)[0]
    length = v.shape[axis]
    if length == BATCH:
        raise unsupported("cumprod", "along the batch dimension")
    moved = C._to_last(v, axis)
    upto = np.tril(np.ones((length, length), bool))  # [i, j]: j <= i
    mask = B.const_array(v.graph, upto.ravel().tolist(), DType.bool, upto.shape)
    rows = B.reshape(moved, (*moved.shape[:-1], 1, length))
    one = B.const(v.graph, 1, v.dtype)
    out = B.reduce_prod(B.select(mask, rows, one), (moved.rank,))
    return C._from_last(out, axis)


@op
def nancumprod(x, axis=None, dtype=None):
    v = val(x)
    if v.dtype is DType.f32:
        v = B.select(B.ne(v, v), 1.0, v)
    return cumprod.__kcompile_op__(v, axis, dtype)


@op
def cross(x1, x2, axisa=-1, axisb=-1, axisc=-1, axis=None):
    """The cross product of vectors of 3 (or 2: the z component) along the given axes."""
    a, b = vals(x1, x2)
    if axis is not None:
        axisa = axisb = axisc = axis
    a = C._to_last(a, normalize_axes(axisa, a.rank)[0])
    b = C._to_last(b, normalize_axes(axisb, b.rank)[0])
    if a.shape[-1] not in (2, 3) or b.shape[-1] not in (2, 3):
        raise ValueError(
            f"cross: vectors must have 2 or 3 components, got {a.shape[-1]} and {b.shape[-1]}"
        )

    def part(v: Value, i: int) -> Value:
        if i >= v.shape[-1]:
            return B.const(v.graph, 0, v.dtype, v.shape[:-1])
        return B.reshape(N._slice_axis(v, v.rank - 1, i, i + 1), v.shape[:-1])

    ax, ay, az = (part(a, i) for i in range(3))
    bx, by, bz = (part(b, i) for i in range(3))
    z = ax * by - ay * bx
    if a.shape[-1] == 2 and b.shape[-1] == 2:
        return z
    parts = [ay * bz - az * by, az * bx - ax * bz, z]
    out = B.concat([B.reshape(p, (*p.shape, 1)) for p in parts], len(parts[0].shape))
    return C._from_last(out, normalize_axes(axisc, out.rank)[0])


@op
def kron(x1, x2):
    a, b = vals(x1, x2)
    rank = builtins.max(a.rank, b.rank)
    a = B.reshape(a, (1,) * (rank - a.rank) + a.shape)
    b = B.reshape(b, (1,) * (rank - b.rank) + b.shape)
    wide_a = B.reshape(a, tuple(x for d in a.shape for x in (d, 1)))
    wide_b = B.reshape(b, tuple(x for d in b.shape for x in (1, d)))
    return B.reshape(wide_a * wide_b, tuple(_times(p, q) for p, q in zip(a.shape, b.shape)))


def _times(p, q):
    """The product of two sizes; the batch dimension times 1 stays the batch dimension."""
    if BATCH in (p, q):
        if 1 not in (p, q):
            raise unsupported("kron", "repeating along the batch dimension")
        return BATCH
    return p * q


@op
def vander(x, N=None, increasing=False):
    v = val(x)
    if v.rank != 1:
        raise ValueError(f"vander: x must be 1-D, got shape {v.shape}")
    count = v.shape[0] if N is None else int(N)
    column = B.reshape(v, (v.shape[0], 1))
    powers = [B.const(v.graph, 1, v.dtype, column.shape)]
    for _ in range(count - 1):
        powers.append(powers[-1] * column)
    return B.concat(powers if increasing else powers[::-1], 1)


@op
def trapezoid(y, x=None, dx=1.0, axis=-1):
    v = fval(y)
    axis = normalize_axes(axis, v.rank)[0]
    size = v.shape[axis]
    mids = (N._slice_axis(v, axis, 1, size) + N._slice_axis(v, axis, 0, size - 1)) * 0.5
    if x is None:
        return B.reduce_sum(mids, (axis,)) * float(dx)
    xs = fval(x)
    if xs.rank == 1:
        xs = B.reshape(xs, tuple(xs.shape[0] if i == axis else 1 for i in range(v.rank)))
    steps = diff.__kcompile_op__(xs, 1, axis if xs.rank == v.rank else -1)
    return B.reduce_sum(mids * steps, (axis,))


@op
def correlate(x1, x2, mode="valid"):
    """numpy's 1-D cross-correlation, c[k] = Σₙ a[n + k]·v[n], in the modes "valid",
    "same" and "full": the windows of the padded ``a`` gathered at constant indices, then
    one matrix-vector product."""
    a, v = fvals(x1, x2)
    if a.rank != 1 or v.rank != 1:
        raise ValueError(f"correlate takes 1-D inputs, got shapes {a.shape} and {v.shape}")
    n, m = a.shape[0], v.shape[0]
    if n < m:  # numpy swaps the operands and reverses the result
        return C.flip.__kcompile_op__(correlate.__kcompile_op__(v, a, mode), 0)
    if mode == "valid":
        low, high = 0, 0
    elif mode == "same":
        low, high = m // 2, m - 1 - m // 2
    elif mode == "full":
        low, high = m - 1, m - 1
    else:
        raise ValueError(f"correlate: mode must be 'valid', 'same' or 'full', got {mode!r}")
    padded = B.pad(a, [low], [high], 0.0)
    count = n + low + high - m + 1
    windows = (np.arange(count)[:, None] + np.arange(m)[None, :]).astype(np.int32)
    taken = B.take(padded, B.const_array(a.graph, windows.ravel().tolist(), DType.i32, (count, m)))
    return B.reshape(B.matmul(taken, B.reshape(v, (m, 1))), (count,))


@op
def corrcoef(x):
    """Pearson correlation of the rows (the variables) of ``x``."""
    v = fval(x)
    if v.rank == 1:
        v = B.reshape(v, (1, v.shape[0]))
    centred = v - B.mean(v, (1,), keepdims=True)
    cov = B.matmul(centred, centred, transpose_b=True)
    scale = B.sqrt(C.diagonal.__kcompile_op__(cov))
    out = cov / (B.reshape(scale, (scale.shape[0], 1)) * B.reshape(scale, (1, scale.shape[0])))
    out = B.minimum(B.maximum(out, -1.0), 1.0)  # numpy clips rounding beyond ±1
    return B.reshape(out, ()) if out.shape == (1, 1) else out


# --- membership, selection, counting --------------------------------------------------------


@op
def isin(x1, x2, assume_unique=False, invert=False):
    a, b = vals(x1, x2)
    flat = B.reshape(b, (*[1] * a.rank, _numel(b.shape)))
    hit = B.reduce_max(B.cast(B.eq(B.reshape(a, (*a.shape, 1)), flat), DType.f32), (a.rank,))
    found = B.gt(hit, 0.0)
    return B.logical_not(found) if invert else found


@op
def select(condlist, choicelist, default=0):
    """The choice of the first true condition at each position, else ``default``."""
    choices = vals(*choicelist)
    out = val(default, choices[0].dtype) if choices else val(default)
    for cond, choice in zip(reversed(list(condlist)), reversed(choices)):
        out = B.select(val(cond, DType.bool), choice, out)
    return out


@op
def histogram(x, bins=10, range=None):
    """Counts of the values of 1-D ``x`` in ``bins`` equal bins over ``range`` (default:
    the data's min to max), and the bin edges; the last bin holds its right edge."""
    v = fval(x)
    if v.rank != 1:
        raise ValueError(f"histogram: x must be 1-D, got shape {v.shape}")
    if range is None:
        lo = B.reduce_max(B.neg(v), (0,))
        lo, hi = B.neg(lo), B.reduce_max(v, (0,))
    else:
        lo = B.const(v.graph, float(range[0]), DType.f32)
        hi = B.const(v.graph, float(range[1]), DType.f32)
    width = B.maximum(hi - lo, 1e-30)
    slot = B.floor((v - lo) / width * float(bins))
    slot = B.select(B.eq(v, hi), float(bins - 1), slot)
    inside = B.logical_and(B.ge(v, lo), B.le(v, hi))
    slot = B.select(inside, slot, -1.0)  # one_hot of -1 is all zeros
    counts = B.reduce_sum(B.one_hot(B.cast(slot, DType.i32), bins), (0,))
    steps = B.const_array(v.graph, np.linspace(0, 1, bins + 1).tolist(), DType.f32, (bins + 1,))
    return counts, lo + (hi - lo) * steps  # float32 counts, as Keras's


def bincount(x, weights=None, minlength=0, sparse=False):
    """Counts (or summed weights) of each value of the non-negative integers ``x``, per
    row for 2-D ``x``. Its length is max(max(x) + 1, minlength): it depends on the
    values, so, as with Keras's jax backend, only concrete tensors can be counted."""
    if sparse:
        raise unsupported("bincount", "sparse output (kcompile has no sparse tensors)")
    if isinstance(x, TracedTensor) or isinstance(weights, TracedTensor):
        raise unsupported(
            "bincount", "on traced tensors: its output length depends on the values of x"
        )
    ids = np.asarray(x)
    length = builtins.max(int(ids.max()) + 1 if ids.size else 0, int(minlength))
    return _bincount(ids, weights, length)


@op
def _bincount(x, weights, length):
    ids = val(x, DType.i32)
    hot = B.one_hot(ids, length)  # [..., n, length]
    if weights is not None:
        w = val(weights)
        hot = B.cast(hot, w.dtype) * B.reshape(w, (*w.shape, 1))
    else:
        hot = B.cast(hot, DType.i32)
    return B.reduce_sum(hot, (ids.rank - 1,))


@op
def unravel_index(indices, shape):
    idx = val(indices, DType.i32)
    out, stride = [], 1
    for d in reversed(tuple(shape)):
        q = B.div(idx, B.const(idx.graph, stride, DType.i32))
        out.append(q - B.div(q, B.const(idx.graph, d, DType.i32)) * d)
        stride *= d
    return tuple(reversed(out))


@op
def rot90(array, k=1, axes=(0, 1)):
    v = val(array)
    a, b = (normalize_axes(ax, v.rank)[0] for ax in axes)
    if a == b:
        raise ValueError(f"rot90: axes must differ, got {tuple(axes)}")
    k %= 4
    if k == 0:
        return v
    if k == 2:
        return C.flip.__kcompile_op__(C.flip.__kcompile_op__(v, a), b)
    perm = list(builtins.range(v.rank))
    perm[a], perm[b] = perm[b], perm[a]
    if k == 1:
        return N.transpose.__kcompile_op__(C.flip.__kcompile_op__(v, b), perm)
    return C.flip.__kcompile_op__(N.transpose.__kcompile_op__(v, perm), b)


@op
def diagflat(x, k=0):
    return C.diag.__kcompile_op__(C.ravel.__kcompile_op__(x), k)


get_item = N._named("get_item", lambda x, key: N.getitem.__kcompile_op__(x, key))


# --- arrays from numbers ------------------------------------------------------------------


def array(x, dtype=None):
    """A tensor from ``x`` (Keras's ``convert_to_tensor``)."""
    return N.convert_to_tensor(x, dtype)


def geomspace(start, stop, num=50, endpoint=True, dtype=None, axis=0) -> np.ndarray:
    return np.geomspace(start, stop, num, endpoint, axis=axis).astype(_np_dtype(dtype))


def _window(fn):
    def window(x) -> np.ndarray:
        return fn(int(np.asarray(x))).astype(np.float32)

    window.__name__ = fn.__name__
    window.__doc__ = f"numpy's ``{fn.__name__}`` window of ``x`` points, as float32."
    return window


bartlett = _window(np.bartlett)
blackman = _window(np.blackman)
hamming = _window(np.hamming)
hanning = _window(np.hanning)


def kaiser(x, beta) -> np.ndarray:
    return np.kaiser(int(np.asarray(x)), float(beta)).astype(np.float32)


__all__ = [
    "append",
    "array",
    "array_split",
    "bartlett",
    "bincount",
    "blackman",
    "corrcoef",
    "correlate",
    "cross",
    "cumprod",
    "diagflat",
    "diff",
    "dsplit",
    "dstack",
    "geomspace",
    "get_item",
    "hamming",
    "hanning",
    "histogram",
    "hsplit",
    "isin",
    "kaiser",
    "kron",
    "nancumprod",
    "rot90",
    "select",
    "trapezoid",
    "unravel_index",
    "vander",
    "vsplit",
]
