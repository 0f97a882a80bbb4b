"""``keras.ops``'s numpy-like functions: Keras's names, signatures and broadcasting.

Each is written over IR values (``core.op``); compositions get their gradients from
their primitives' VJPs.
"""

from __future__ import annotations

import builtins
import itertools
from collections.abc import Sequence
from typing import Any

import numpy as np

from kcompile.backend.keras_tensor import KerasTensor, ir_dtype, keras_shape
from kcompile.backend.symbolic import BatchSize, TracedTensor, static_dims
from kcompile.ir import BATCH, DType, Value
from kcompile.ir import build as B
from kcompile.ir.types import normalize_axes
from kcompile.ops.core import fval, fvals, op, unsupported, val, vals
from kcompile.ops.refusals import refusal

# --- elementwise ------------------------------------------------------------------------


def _float(x: Any) -> Value:
    return fval(x)


def _named(name: str, fn):
    """An op named ``name`` (its functional-API nodes are named after it)."""
    fn.__name__ = fn.__qualname__ = name
    return op(fn)


# An op that computes in floats: on a float operand in its dtype (bf16 stays bf16), on
# integers and booleans in float32.
FLOAT = "float"


def _unary(name: str, fn, dtype: DType | str | None = FLOAT):
    """``fn`` on the operand as ``dtype`` (None: its own dtype; FLOAT: a float)."""
    if dtype == FLOAT:
        return _named(name, lambda x: fn(fval(x)))
    return _named(name, lambda x: fn(val(x, dtype)))


def _binary(name: str, fn, dtype: DType | str | None = None):
    """``fn`` on both operands as ``dtype`` (None: Keras's promotion; FLOAT: a float)."""
    if dtype == FLOAT:
        return _named(name, lambda x1, x2: fn(*fvals(x1, x2)))
    return _named(name, lambda x1, x2: fn(*vals(x1, x2, dtype=dtype)))


exp = _unary("exp", B.exp)
log = _unary("log", B.log)
log1p = _unary("log1p", B.log1p)
sqrt = _unary("sqrt", B.sqrt)
tanh = _unary("tanh", B.tanh)
erf = _unary("erf", B.erf)
floor = _unary("floor", B.floor)
ceil = _unary("ceil", B.ceil)
expm1 = _unary("expm1", lambda v: B.exp(v) - 1.0)
rsqrt = _unary("rsqrt", lambda v: 1.0 / B.sqrt(v))
reciprocal = _unary("reciprocal", lambda v: 1.0 / v)
square = _unary("square", B.square, None)
negative = _unary("negative", B.neg, None)
abs = _unary("abs", B.abs, None)
absolute = abs
sign = _unary("sign", B.sign, None)
logical_not = _unary("logical_not", B.logical_not, DType.bool)

add = _binary("add", B.add)
subtract = _binary("subtract", B.sub)
multiply = _binary("multiply", B.mul)
divide = _binary("divide", B.div, FLOAT)
true_divide = divide
power = _binary("power", B.power, FLOAT)
maximum = _binary("maximum", B.maximum)
minimum = _binary("minimum", B.minimum)
equal = _binary("equal", B.eq)
not_equal = _binary("not_equal", B.ne)
less = _binary("less", B.lt)
less_equal = _binary("less_equal", B.le)
greater = _binary("greater", B.gt)
greater_equal = _binary("greater_equal", B.ge)
logical_and = _binary("logical_and", B.logical_and, DType.bool)
logical_or = _binary("logical_or", B.logical_or, DType.bool)


@op
def floor_divide(x1, x2):
    a, b = vals(x1, x2)
    return B.div(a, b) if a.dtype is DType.i32 else B.floor(B.div(a, b))


@op
def mod(x1, x2):
    """The remainder with the sign of the divisor (numpy's and jax's mod), in the
    operands' dtype (int32 division floors)."""
    a, b = vals(x1, x2)
    if a.dtype is DType.bool:
        a, b = B.cast(a, DType.i32), B.cast(b, DType.i32)
    if a.dtype is DType.i32:
        return a - B.div(a, b) * b
    return a - B.floor(B.div(a, b)) * b


@op
def round(x, decimals=0):
    v = _float(x)
    if not decimals:
        return B.round_(v)
    scale = 10.0**decimals
    return B.round_(v * scale) * (1.0 / scale)


@op
def where(condition, x1=None, x2=None):
    if x1 is None or x2 is None:
        raise unsupported("where", "the one-argument form (indices of non-zeros)")
    a, b = vals(x1, x2)
    return B.select(val(condition, DType.bool), a, b)


@op
def clip(x, x_min, x_max):
    v, lo, hi = vals(x, x_min, x_max)
    return B.minimum(B.maximum(v, lo), hi)


@op
def cast(x, dtype):
    return val(x, ir_dtype(_dtype_name(dtype)))


def _dtype_name(dtype: Any) -> str:
    return getattr(dtype, "name", None) or str(dtype)


# --- reductions -------------------------------------------------------------------------


def _axes(x: Value, axis) -> tuple[int, ...]:
    if axis is None:
        return tuple(range(x.rank))
    return normalize_axes(tuple(axis) if isinstance(axis, Sequence) else axis, x.rank)


@op
def sum(x, axis=None, keepdims=False):
    v = val(x)
    return B.reduce_sum(v, _axes(v, axis), keepdims)


@op
def mean(x, axis=None, keepdims=False):
    v = _float(x)
    return B.mean(v, _axes(v, axis), keepdims)


@op
def max(x, axis=None, keepdims=False, initial=None):
    v = val(x)
    out = B.reduce_max(v, _axes(v, axis), keepdims)
    return out if initial is None else B.maximum(out, initial)


amax = max


@op
def min(x, axis=None, keepdims=False, initial=None):
    v = val(x)
    out = B.neg(B.reduce_max(B.neg(v), _axes(v, axis), keepdims))
    return out if initial is None else B.minimum(out, initial)


amin = min


@op
def var(x, axis=None, keepdims=False):
    v = _float(x)
    axes = _axes(v, axis)
    centred = v - B.mean(v, axes, keepdims=True)
    return B.mean(B.square(centred), axes, keepdims)


@op
def std(x, axis=None, keepdims=False):
    return B.sqrt(var.__kcompile_op__(x, axis, keepdims))


@op
def prod(x, axis=None, keepdims=False, dtype=None):
    v = val(x)
    return B.reduce_prod(v, _axes(v, axis), keepdims)


@op
def argmax(x, axis=None, keepdims=False):
    v = val(x)
    if axis is None:
        v, axis = B.reshape(v, (_numel(v.shape),)), 0
    out = B.argmax(v, normalize_axes(axis, v.rank)[0])
    return _keep(out, v, axis) if keepdims else out


@op
def argmin(x, axis=None, keepdims=False):
    return argmax.__kcompile_op__(negative.__kcompile_op__(x), axis, keepdims)


def _keep(out: Value, x: Value, axis: int) -> Value:
    axis = normalize_axes(axis, x.rank)[0]
    return B.reshape(out, (*x.shape[:axis], 1, *x.shape[axis + 1 :]))


def _numel(shape) -> int:
    if BATCH in shape:
        raise unsupported("a reduction to a scalar index", "over the batch dimension")
    return int(np.prod(shape, dtype=np.int64))


@op
def logsumexp(x, axis=None, keepdims=False):
    v = _float(x)
    axes = _axes(v, axis)
    top = B.stop_gradient(B.reduce_max(v, axes, keepdims=True))
    out = B.log(B.reduce_sum(B.exp(v - top), axes, keepdims=True)) + top
    return out if keepdims else B.reshape(out, _drop(v.shape, axes))


def _drop(shape, axes) -> tuple:
    return tuple(d for i, d in enumerate(shape) if i not in axes)


@op
def any(x, axis=None, keepdims=False):
    v = B.cast(val(x, DType.bool), DType.f32)
    return B.gt(B.reduce_max(v, _axes(v, axis), keepdims), 0.0)


@op
def all(x, axis=None, keepdims=False):
    v = B.cast(val(x, DType.bool), DType.f32)
    return B.gt(B.neg(B.reduce_max(B.neg(v), _axes(v, axis), keepdims)), 0.0)


# --- products ---------------------------------------------------------------------------


def _batched_matmul(a: Value, b: Value) -> Value:
    """a[..., M, K] @ b[..., K, N]: the leading axes broadcast against each other, then
    one ``batch_matmul``."""
    lead = _broadcast_shapes(a.shape[:-2], b.shape[:-2])
    if a.shape[:-2] != lead:
        a = B.broadcast_to(
            B.reshape(a, (*[1] * (len(lead) - a.rank + 2), *a.shape)), (*lead, *a.shape[-2:])
        )
    if b.shape[:-2] != lead:
        b = B.broadcast_to(
            B.reshape(b, (*[1] * (len(lead) - b.rank + 2), *b.shape)), (*lead, *b.shape[-2:])
        )
    return B.batch_matmul(a, b)


def _broadcast_shapes(x: tuple, y: tuple) -> tuple:
    rank = builtins.max(len(x), len(y))
    x, y = (1,) * (rank - len(x)) + tuple(x), (1,) * (rank - len(y)) + tuple(y)
    out = []
    for p, q in zip(x, y):
        if p != q and 1 not in (p, q):
            raise ValueError(f"matmul: batch shapes {x} and {y} do not broadcast")
        out.append(q if p == 1 else p)
    return tuple(out)


@op
def matmul(x1, x2):
    a, b = fvals(x1, x2)
    if b.rank == 1:
        return B.reshape(B.matmul(a, B.reshape(b, (b.shape[0], 1))), a.shape[:-1])
    if a.rank == 1:
        return B.reshape(_matmul(B.reshape(a, (1, a.shape[0])), b), (*b.shape[:-2], b.shape[-1]))
    return _matmul(a, b)


def _matmul(a: Value, b: Value) -> Value:
    if b.rank == 2:
        return B.matmul(a, b)
    return _batched_matmul(a, b)


@op
def dot(x1, x2):
    a, b = fvals(x1, x2)
    if a.rank == 0 or b.rank == 0:
        return a * b
    return matmul.__kcompile_op__(a, b)


@op
def tensordot(x1, x2, axes=2):
    a, b = fvals(x1, x2)
    if isinstance(axes, int):
        ax_a, ax_b = list(range(a.rank - axes, a.rank)), list(range(axes))
    else:
        ax_a, ax_b = (
            ([axes[0]] if isinstance(axes[0], int) else list(axes[0])),
            ([axes[1]] if isinstance(axes[1], int) else list(axes[1])),
        )
    ax_a = [normalize_axes(i, a.rank)[0] for i in ax_a]
    ax_b = [normalize_axes(i, b.rank)[0] for i in ax_b]
    if BATCH in b.shape:  # not a matrix product: an einsum over the named axes
        letters = iter("abcdefghijklmnopqrstuvwxyz")
        ta = [next(letters) for _ in range(a.rank)]
        tb = [next(letters) for _ in range(b.rank)]
        for i, j in zip(ax_a, ax_b):
            tb[j] = ta[i]
        out = [c for i, c in enumerate(ta) if i not in ax_a]
        out += [c for j, c in enumerate(tb) if j not in ax_b]
        if [a.shape[i] for i, c in enumerate(ta) if c in out].count(BATCH) + [
            b.shape[j] for j, c in enumerate(tb) if c in out and c not in ta
        ].count(BATCH) > 1:
            raise unsupported("tensordot", "keeping the batch dimension of both operands")
        return _einsum2("".join(ta), "".join(tb), "".join(out), a, b)
    keep_a = [i for i in range(a.rank) if i not in ax_a]
    keep_b = [i for i in range(b.rank) if i not in ax_b]
    at = B.transpose(a, (*keep_a, *ax_a)) if keep_a + ax_a != list(range(a.rank)) else a
    k = _numel([a.shape[i] for i in ax_a])
    rows = [a.shape[i] for i in keep_a]
    bt = B.transpose(b, (*ax_b, *keep_b)) if ax_b + keep_b != list(range(b.rank)) else b
    b2 = B.reshape(bt, (k, _numel([b.shape[i] for i in keep_b])))
    a2 = B.reshape(at, (*rows, k)) if rows else B.reshape(at, (1, k))
    out = B.matmul(a2, b2)
    return B.reshape(out, (*rows, *[b.shape[i] for i in keep_b]))


@op
def einsum(subscripts, *operands):
    """The forms that are (batched) matrix products, transposes or reductions."""
    spec = subscripts.replace(" ", "")
    inputs, _, output = spec.partition("->")
    terms = inputs.split(",")
    if "->" not in spec or "." in spec or len(terms) != len(operands):
        raise unsupported("einsum", f"the form {subscripts!r}")
    values = fvals(*operands)
    if len(values) == 1:
        (t,), (x,) = terms, values
        summed = tuple(i for i, c in enumerate(t) if c not in output)
        x = B.reduce_sum(x, summed) if summed else x
        kept = [c for c in t if c in output]
        perm = [kept.index(c) for c in output]
        return B.transpose(x, perm) if perm != list(range(len(perm))) else x
    if len(values) != 2:
        raise unsupported("einsum", "with more than two operands")
    return _einsum2(terms[0], terms[1], output, *values)


def _einsum2(ta: str, tb: str, out: str, a: Value, b: Value) -> Value:
    product = _einsum_as_batch_matmul(ta, tb, out, a, b)
    return product if product is not None else _einsum_broadcast(ta, tb, out, a, b)


def _einsum_as_batch_matmul(ta: str, tb: str, out: str, a: Value, b: Value) -> Value | None:
    """The two-operand einsums that are batched matrix products ("bqhd,bkhd->bhqk"):
    letters shared and kept are the stack, shared and summed the contraction, each
    operand's own kept letters its rows or columns. None for any other form, or where
    the batch dimension would have to merge with other axes."""
    dims = {**dict(zip(ta, a.shape)), **dict(zip(tb, b.shape))}
    if len(set(ta)) != len(ta) or len(set(tb)) != len(tb) or len(set(out)) != len(out):
        return None
    stack = [c for c in out if c in ta and c in tb]
    summed = [c for c in ta if c in tb and c not in out]
    rows = [c for c in ta if c not in tb]
    cols = [c for c in tb if c not in ta]
    if not (summed or rows or cols) or builtins.any(c not in out for c in rows + cols):
        return None

    def arranged(t: str, v: Value, order: list[str]) -> Value:
        perm = [t.index(c) for c in order]
        return B.transpose(v, perm) if perm != list(range(len(t))) else v

    def size(letters: list[str]) -> int:
        return _numel([dims[c] for c in letters]) if letters else 1

    def placed(product: Value, kept: list[str]) -> Value:
        product = B.reshape(product, tuple(dims[c] for c in kept))
        perm = [kept.index(c) for c in out]
        return B.transpose(product, perm) if perm != list(range(len(perm))) else product

    if builtins.any(dims[c] == BATCH for c in summed + cols):
        return None
    if builtins.any(dims[c] == BATCH for c in rows):
        if stack or not summed:
            return None
        # A projection of every position ("abc,cde->abde"): the rows keep their axes
        # (batch among them) and meet a kernel in one matrix product, as Dense does.
        a2 = B.reshape(arranged(ta, a, rows + summed), (*[dims[c] for c in rows], size(summed)))
        b2 = B.reshape(arranged(tb, b, summed + cols), (size(summed), size(cols)))
        return placed(B.matmul(a2, b2), rows + cols)

    lead = tuple(dims[c] for c in stack)
    a3 = B.reshape(arranged(ta, a, stack + rows + summed), (*lead, size(rows), size(summed)))
    b3 = B.reshape(arranged(tb, b, stack + summed + cols), (*lead, size(summed), size(cols)))
    if not stack:  # a plain product: one matrix each
        a3, b3 = B.reshape(a3, (1, *a3.shape)), B.reshape(b3, (1, *b3.shape))
    return placed(B.batch_matmul(a3, b3), stack + rows + cols)


def _einsum_broadcast(ta: str, tb: str, out: str, a: Value, b: Value) -> Value:
    letters = list(dict.fromkeys(ta + tb))
    shape = {}
    for t, v in ((ta, a), (tb, b)):
        for c, d in zip(t, v.shape):
            shape[c] = d

    # Align both operands to one axis order (all letters), broadcast-multiply, reduce.
    def aligned(t: str, v: Value) -> Value:
        perm = sorted(range(len(t)), key=lambda i: letters.index(t[i]))
        v = B.transpose(v, perm) if perm != list(range(len(t))) else v
        present = [t[i] for i in perm]
        return B.reshape(v, tuple(shape[c] if c in present else 1 for c in letters))

    product = aligned(ta, a) * aligned(tb, b)
    summed = tuple(i for i, c in enumerate(letters) if c not in out)
    reduced = B.reduce_sum(product, summed) if summed else product
    kept = [c for c in letters if c in out]
    perm = [kept.index(c) for c in out]
    return B.transpose(reduced, perm) if perm != list(range(len(perm))) else reduced


# --- shapes -----------------------------------------------------------------------------


def _ir_shape(x: Value, shape: Sequence) -> tuple:
    """A Keras target shape (with ``-1`` and ``None``) as an IR shape: the batch
    dimension is the first ``None`` (else the first ``-1``), one other ``-1`` takes what
    is left."""
    dims: list = [None if d is None else int(d) for d in static_dims(shape)]
    if BATCH in x.shape:
        at = next((i for i, d in enumerate(dims) if d is None), None)
        if at is None:
            at = next((i for i, d in enumerate(dims) if d == -1), None)
        if at is None:
            raise ValueError(
                f"reshape of {keras_shape(x.shape)} to {tuple(shape)}: kcompile keeps the "
                "batch dimension as one axis; give it as None or -1"
            )
        dims[at] = BATCH
    unknown = [i for i, d in enumerate(dims) if d is None or d == -1]
    if len(unknown) > 1:
        raise ValueError(f"cannot reshape {keras_shape(x.shape)} to {tuple(shape)}")
    if unknown:
        have = _numel([d for d in x.shape if d != BATCH])
        known = _numel([d for d in dims if d not in (None, -1, BATCH)])
        if known == 0 or have % known:
            raise ValueError(f"cannot reshape {keras_shape(x.shape)} to {tuple(shape)}")
        dims[unknown[0]] = have // known
    return tuple(dims)


@op
def reshape(x, newshape):
    v = val(x)
    return B.reshape(v, _ir_shape(v, newshape))


@op
def transpose(x, axes=None):
    v = val(x)
    if axes is None:
        perm = tuple(reversed(range(v.rank)))
    else:
        perm = tuple(a % v.rank for a in axes)
        if sorted(perm) != list(range(v.rank)):
            raise ValueError(f"transpose axes {tuple(axes)} are not a permutation of {v.rank}")
    return B.transpose(v, perm) if perm != tuple(range(v.rank)) else v


@op
def expand_dims(x, axis):
    v = val(x)
    axes = sorted(normalize_axes(axis if isinstance(axis, int) else tuple(axis), v.rank + 1))
    shape = list(v.shape)
    for a in axes if not isinstance(axes, int) else [axes]:
        shape.insert(a, 1)
    return B.reshape(v, tuple(shape))


@op
def squeeze(x, axis=None):
    v = val(x)
    if axis is None:
        axes = [i for i, d in enumerate(v.shape) if d == 1]
    else:
        axes = list(normalize_axes(axis if isinstance(axis, int) else tuple(axis), v.rank))
        for a in axes:
            if v.shape[a] != 1:
                raise ValueError(f"cannot squeeze axis {a} of shape {keras_shape(v.shape)}")
    return B.reshape(v, tuple(d for i, d in enumerate(v.shape) if i not in axes))


@op
def concatenate(xs, axis=0):
    values = vals(*xs)
    return B.concat(values, axis)


@op
def stack(x, axis=0):
    values = vals(*x)
    axis = normalize_axes(axis, values[0].rank + 1)[0]
    expanded = [B.reshape(v, (*v.shape[:axis], 1, *v.shape[axis:])) for v in values]
    return B.concat(expanded, axis)


@op
def split(x, indices_or_sections, axis=0):
    v = val(x)
    axis = normalize_axes(axis, v.rank)[0]
    size = v.shape[axis]
    if isinstance(indices_or_sections, int):
        if size % indices_or_sections:
            raise ValueError(f"cannot split an axis of {size} into {indices_or_sections} parts")
        step = size // indices_or_sections
        cuts = list(range(step, size, step))
    else:
        cuts = list(indices_or_sections)
    bounds = [0, *cuts, size]
    return [_slice_axis(v, axis, lo, hi) for lo, hi in itertools.pairwise(bounds)]


def _slice_axis(v: Value, axis: int, lo: int, hi: int) -> Value:
    begin = [0] * v.rank
    end: list = list(v.shape)
    begin[axis], end[axis] = lo, hi
    return B.slice_(v, begin, end)


@op
def unstack(x, num=None, axis=0):
    v = val(x)
    axis = normalize_axes(axis, v.rank)[0]
    shape = tuple(d for i, d in enumerate(v.shape) if i != axis)
    return [B.reshape(_slice_axis(v, axis, i, i + 1), shape) for i in range(v.shape[axis])]


@op
def broadcast_to(x, shape):
    v = val(x)
    return B.broadcast_to(v, _ir_shape_like(v, shape))


def _ir_shape_like(x: Value, shape) -> tuple:
    """``shape`` with each None taken from ``x`` (aligned to the right): the batch
    dimension of a traced tensor, the size of a concrete one."""
    shape = static_dims(shape)
    lead = len(shape) - x.rank
    return tuple(
        (x.shape[i - lead] if i >= lead else 1) if d is None else int(d)
        for i, d in enumerate(shape)
    )


@op
def tile(x, repeats):
    v = val(x)
    repeats = [repeats] if isinstance(repeats, int) else list(repeats)
    repeats = [1] * (v.rank - len(repeats)) + repeats
    lead = [1] * (len(repeats) - v.rank)
    v = B.reshape(v, (*lead, *v.shape)) if lead else v
    # [.., d, ..] -> [.., r, d, ..] -> [.., r*d, ..]
    expanded = B.reshape(v, tuple(x for d in v.shape for x in (1, d)))
    target = tuple(x for r, d in zip(repeats, v.shape) for x in (r, d))
    tiled = B.broadcast_to(expanded, target)
    return B.reshape(tiled, tuple(r * d if d != BATCH else BATCH for r, d in zip(repeats, v.shape)))


@op
def repeat(x, repeats, axis=None):
    v = val(x)
    if axis is None:
        v, axis = B.reshape(v, (_numel(v.shape),)), 0
    axis = normalize_axes(axis, v.rank)[0]
    if not isinstance(repeats, int):
        raise unsupported("repeat", "with a different count per element")
    shape = (*v.shape[: axis + 1], 1, *v.shape[axis + 1 :])
    target = (*v.shape[: axis + 1], repeats, *v.shape[axis + 1 :])
    out = (*v.shape[:axis], v.shape[axis] * repeats, *v.shape[axis + 1 :])
    return B.reshape(B.broadcast_to(B.reshape(v, shape), target), out)


@op
def pad(x, pad_width, mode="constant", constant_values=None):
    if mode != "constant":
        raise unsupported("pad", f"mode {mode!r}")
    v = val(x)
    width = [tuple(p) for p in pad_width]
    value = 0.0 if constant_values is None else float(constant_values)
    return B.pad(v, [p[0] for p in width], [p[1] for p in width], value)


@op
def take(x, indices, axis=None):
    v = val(x)
    idx = val(indices, DType.i32)
    if axis is None:
        v, axis = B.reshape(v, (_numel(v.shape),)), 0
    axis = normalize_axes(axis, v.rank)[0]
    if axis == 0:
        return B.take(v, idx)
    perm = (axis, *[i for i in range(v.rank) if i != axis])
    taken = B.take(B.transpose(v, perm), idx)  # [*idx, rest...]
    rest = v.rank - 1
    lead = idx.rank
    # move the indexed axes back to where ``axis`` was
    order = (*range(lead, lead + axis), *range(lead), *range(lead + axis, lead + rest))
    return B.transpose(taken, order) if order != tuple(range(lead + rest)) else taken


@op
def take_along_axis(x, indices, axis=None):
    """``x``'s values at ``indices`` along ``axis``: a one-hot selection along that axis
    (memory: the indices' size times the axis length)."""
    v = fval(x)
    idx = val(indices, DType.i32)
    if axis is None:
        v, axis = B.reshape(v, (_numel(v.shape),)), 0
        idx = B.reshape(idx, (_numel(idx.shape),))
    axis = normalize_axes(axis, v.rank)[0]
    if idx.rank != v.rank:
        raise ValueError(f"take_along_axis: indices of rank {idx.rank} for x of rank {v.rank}")
    last = v.rank - 1
    perm = (*(i for i in range(v.rank) if i != axis), axis)
    moved = B.transpose(v, perm) if axis != last else v  # [..., L]
    picks = B.transpose(idx, perm) if axis != last else idx  # [..., K]
    selector = B.one_hot(picks, v.shape[axis])  # [..., K, L]
    rows = B.reshape(moved, (*moved.shape[:-1], 1, moved.shape[-1]))
    taken = B.reduce_sum(selector * rows, (v.rank,))  # [..., K]
    if axis == last:
        return taken
    back = tuple(perm.index(i) for i in range(v.rank))
    return B.transpose(taken, back)


@op
def one_hot(x, num_classes, axis=-1, dtype=None):
    out = B.one_hot(val(x, DType.i32), num_classes)
    if axis not in (-1, out.rank - 1):
        raise unsupported("one_hot", "with the classes on another axis than the last")
    return out


def shape(x) -> tuple:
    """Keras's shape: a tuple of sizes; the batch dimension is None on the functional
    API's tensors and, on a traced tensor, its size at run time (``BatchSize``)."""
    if isinstance(x, TracedTensor):
        return tuple(_batch_size(x.value) if d == BATCH else d for d in x.value.shape)
    if isinstance(x, KerasTensor):
        return tuple(x.shape)
    return tuple(np.shape(x))


def _batch_size(v: Value) -> BatchSize:
    return BatchSize(B.cast(B.numel(v, 0), DType.i32))


def ndim(x) -> int:
    return len(shape(x))


def size(x) -> int:
    return _numel(tuple(BATCH if d is None else d for d in static_dims(shape(x))))


# --- indexing ---------------------------------------------------------------------------


@op
def getitem(x, key):
    v = val(x)
    key = key if isinstance(key, tuple) else (key,)
    if builtins.any(k is Ellipsis for k in key):
        at = key.index(Ellipsis)
        fill = v.rank - (len([k for k in key if k is not None]) - 1)
        key = key[:at] + (slice(None),) * fill + key[at + 1 :]
    begin, end, out_shape = [], [], []
    axis = 0
    for k in key:
        if k is None:
            out_shape.append(1)
            continue
        d = v.shape[axis]
        if isinstance(k, int | np.integer):
            i = int(k) + (d if k < 0 else 0)
            if d == BATCH or not 0 <= i < d:
                raise IndexError(
                    f"index {k} out of range for axis {axis} of {keras_shape(v.shape)}"
                )
            begin.append(i)
            end.append(i + 1)
        elif isinstance(k, slice):
            if k.step not in (None, 1):
                raise unsupported("getitem", "slices with a step")
            if d == BATCH:
                if (k.start, k.stop) != (None, None):
                    raise unsupported("getitem", "slicing the batch dimension")
                begin.append(0)
                end.append(BATCH)
                out_shape.append(BATCH)
            else:
                lo, hi, _ = k.indices(d)
                hi = builtins.max(hi, lo)
                begin.append(lo)
                end.append(hi)
                out_shape.append(hi - lo)
        else:
            raise unsupported("getitem", f"indexing with {type(k).__name__}")
        axis += 1
    for d in v.shape[axis:]:
        begin.append(0)
        end.append(d)
        out_shape.append(d)
    sliced = B.slice_(v, begin, end) if (begin, end) != ([0] * v.rank, list(v.shape)) else v
    return B.reshape(sliced, tuple(out_shape)) if tuple(out_shape) != sliced.shape else sliced


# --- creation ---------------------------------------------------------------------------


def _np_dtype(dtype) -> np.dtype:
    return np.dtype(ir_dtype(None if dtype is None else _dtype_name(dtype)).numpy)


def zeros(shape, dtype=None) -> Any:
    return full(shape, 0, dtype)


def ones(shape, dtype=None) -> Any:
    return full(shape, 1, dtype)


def full(shape, fill_value, dtype=None) -> Any:
    """An array; a traced constant when ``shape`` holds a traced batch size."""
    shape = (shape,) if isinstance(shape, int | BatchSize) else tuple(shape)
    batch = next((d for d in shape if isinstance(d, BatchSize)), None)
    if batch is None:
        return np.full(shape, fill_value, _np_dtype(dtype))
    dims = tuple(BATCH if d is None else int(d) for d in static_dims(shape))
    kind = ir_dtype(None if dtype is None else _dtype_name(dtype))
    return TracedTensor(B.const(batch.value.graph, fill_value, kind, dims))


def eye(N, M=None, k=0, dtype=None) -> np.ndarray:
    return np.eye(N, M, k, dtype=_np_dtype(dtype))


def arange(start, stop=None, step=1, dtype=None) -> np.ndarray:
    out = np.arange(start, stop, step)
    if dtype is None:
        return out.astype(np.int32 if out.dtype.kind in "iu" else np.float32)
    return out.astype(_np_dtype(dtype))


@op
def full_like(x, fill_value, dtype=None):
    v = val(x)
    target = v.dtype if dtype is None else ir_dtype(_dtype_name(dtype))
    return B.const(v.graph, fill_value, target, v.shape)


zeros_like = _named("zeros_like", lambda x, dtype=None: full_like.__kcompile_op__(x, 0, dtype))
ones_like = _named("ones_like", lambda x, dtype=None: full_like.__kcompile_op__(x, 1, dtype))


# Dtypes a tensor keeps as it is, as Keras 3.15 on JAX does: those kcompile's IR has.
# Other floats become float32 and other integers int32 (64-bit ones so in Keras too;
# int16, uint16 and uint32, which Keras keeps, because the IR has no such types).
_KEPT_DTYPES = frozenset(np.dtype(d) for d in (np.int8, np.uint8, np.float16, np.int32, np.float32))


def convert_to_tensor(x, dtype=None, sparse=None):
    if isinstance(x, TracedTensor | KerasTensor):
        return x if dtype is None else cast(x, dtype)
    array = np.asarray(x)
    if dtype is not None:
        return array.astype(_np_dtype(dtype))
    if array.dtype in _KEPT_DTYPES:
        return array
    if array.dtype.kind == "f":
        return array.astype(np.float32)
    return array.astype(np.int32) if array.dtype.kind in "iu" else array


def convert_to_numpy(x) -> np.ndarray:
    if isinstance(x, TracedTensor | KerasTensor):
        raise TypeError("convert_to_numpy needs a concrete tensor, not a traced one")
    return np.asarray(getattr(x, "value", x))


def is_tensor(x) -> bool:
    return isinstance(x, TracedTensor | KerasTensor | np.ndarray)


stop_gradient = _unary("stop_gradient", B.stop_gradient, None)


__all__ = [
    "abs",
    "absolute",
    "add",
    "all",
    "amax",
    "amin",
    "any",
    "arange",
    "argmax",
    "argmin",
    "broadcast_to",
    "cast",
    "ceil",
    "clip",
    "concatenate",
    "convert_to_numpy",
    "convert_to_tensor",
    "divide",
    "dot",
    "einsum",
    "equal",
    "erf",
    "exp",
    "expand_dims",
    "expm1",
    "eye",
    "floor",
    "floor_divide",
    "full",
    "full_like",
    "getitem",
    "greater",
    "greater_equal",
    "is_tensor",
    "less",
    "less_equal",
    "log",
    "log1p",
    "logical_and",
    "logical_not",
    "logical_or",
    "logsumexp",
    "matmul",
    "max",
    "maximum",
    "mean",
    "min",
    "minimum",
    "mod",
    "multiply",
    "ndim",
    "negative",
    "not_equal",
    "one_hot",
    "ones",
    "ones_like",
    "pad",
    "power",
    "prod",
    "reciprocal",
    "repeat",
    "reshape",
    "round",
    "rsqrt",
    "shape",
    "sign",
    "size",
    "split",
    "sqrt",
    "square",
    "squeeze",
    "stack",
    "std",
    "stop_gradient",
    "subtract",
    "sum",
    "take",
    "take_along_axis",
    "tanh",
    "tensordot",
    "tile",
    "transpose",
    "true_divide",
    "unstack",
    "var",
    "where",
    "zeros",
    "zeros_like",
]

# ``kcompile.ops.numpy`` is also Keras's ``keras.ops.numpy`` namespace: ``kcompile.ops``
# adds the numpy functions defined in its other modules here, and a name it does not
# offer is refused with why.
__getattr__ = refusal(__name__)
