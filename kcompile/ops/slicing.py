"""``keras.ops``'s core functions that read or write parts of tensors: ``slice``,
``slice_update``, ``scatter``, ``scatter_update``, the segment reductions, and the
casts and distances of Keras's ``ops/core.py`` and ``ops/math.py`` (``saturate_cast``,
``dtype``, ``cdist``, ``extract_sequences``).
"""

from __future__ import annotations

import math

import numpy as np

from kcompile.backend.keras_tensor import KerasTensor, ir_dtype
from kcompile.backend.symbolic import TracedTensor
from kcompile.ir import BATCH, DType, Value
from kcompile.ir import build as B
from kcompile.ops import numpy as N
from kcompile.ops.core import fval, op, unsupported, val
from kcompile.ops.numpy import _dtype_name, _numel

_INT_RANGES = {"int8": (-128, 127), "uint8": (0, 255), "int16": (-32768, 32767)}
_INT32 = (-2147483648.0, 2147483520.0)  # the float32 values that fit in int32


def _static_starts(start_indices, name: str) -> list[int] | None:
    """The start indices as ints, or None when they are traced."""
    if isinstance(start_indices, TracedTensor) or any(
        isinstance(s, TracedTensor) for s in np.atleast_1d(np.asarray(start_indices, object))
    ):
        return None
    return [int(s) for s in np.asarray(start_indices).ravel()]


@op
def slice(inputs, start_indices, shape):
    """The block of ``shape`` at ``start_indices`` (jax's ``dynamic_slice``: a start
    that would run past the end is moved back so the block fits). Traced starts gather
    along each axis at start + 0..size-1."""
    v = val(inputs)
    sizes = [v.shape[i] if d in (None, -1) else int(d) for i, d in enumerate(shape)]
    starts = _static_starts(start_indices, "slice")
    if starts is not None:
        begin, end = [], []
        for i, (s, size) in enumerate(zip(starts, sizes)):
            if size == BATCH or v.shape[i] == BATCH:
                if s != 0 or size != v.shape[i]:
                    raise unsupported("slice", "a part of the batch dimension")
                begin.append(0)
                end.append(BATCH)
                continue
            s = min(max(s, 0), v.shape[i] - size)
            begin.append(s)
            end.append(s + size)
        return B.slice_(v, begin, end)
    starts_v = val(start_indices, DType.i32)
    for axis, size in enumerate(sizes):
        if v.shape[axis] == BATCH:
            raise unsupported("slice", "with traced start indices on the batch dimension")
        start = B.reshape(N._slice_axis(starts_v, 0, axis, axis + 1), ())
        start = B.minimum(B.maximum(start, 0), v.shape[axis] - size)
        offsets = B.const_array(v.graph, list(range(size)), DType.i32, (size,))
        v = N.take.__kcompile_op__(v, start + offsets, axis)
    return v


@op
def slice_update(inputs, start_indices, updates):
    """``inputs`` with the block at ``start_indices`` replaced by ``updates`` (static
    starts: the updates padded to the full shape, chosen by a constant mask)."""
    v = val(inputs)
    u = val(updates, v.dtype)
    starts = _static_starts(start_indices, "slice_update")
    if starts is None:
        raise unsupported("slice_update", "with traced start indices")
    if BATCH in u.shape and u.shape != v.shape:
        raise unsupported("slice_update", "of a part of the batch dimension")
    low = [0 if d == BATCH else min(max(s, 0), d - e) for s, d, e in zip(starts, v.shape, u.shape)]
    high = [0 if d == BATCH else d - lo - e for lo, d, e in zip(low, v.shape, u.shape)]
    inside = np.zeros([1 if d == BATCH else d for d in v.shape], bool)
    inside[tuple(np.s_[lo : lo + e] if d != BATCH else np.s_[:] for lo, d, e in zip(
        low, v.shape, u.shape))] = True  # fmt: skip
    mask = B.const_array(v.graph, inside.ravel().tolist(), DType.bool, inside.shape)
    fill = 0.0 if v.dtype is DType.f32 else 0
    padded = B.pad(u, low, high, fill) if any(low) or any(high) else u
    return B.select(mask, padded, v)


def _row_ids(indices: Value, shape: tuple) -> tuple[Value, int, tuple]:
    """Indices [n, k] into the first k axes of ``shape`` as flat row ids [n], the number
    of rows, and the shape of one row."""
    k = indices.shape[-1]
    lead, rest = shape[:k], tuple(shape[k:])
    strides = [int(np.prod(lead[i + 1 :], dtype=np.int64)) for i in range(k)]
    ids = B.reduce_sum(indices * B.const_array(indices.graph, strides, DType.i32, (k,)), (1,))
    return ids, _numel(lead), rest


def _scattered(indices, values, shape: tuple) -> tuple[Value, Value]:
    """The values summed into a zero tensor of ``shape`` at ``indices``, and a mask of
    the rows any index wrote."""
    idx = val(indices, DType.i32)
    if idx.rank == 1:
        idx = B.reshape(idx, (idx.shape[0], 1))
    idx = B.reshape(idx, (_numel(idx.shape[:-1]), idx.shape[-1]))
    ids, rows, rest = _row_ids(idx, shape)
    u = fval(values)
    u = B.reshape(u, (ids.shape[0], *rest))
    total = B.scatter_add(ids, u, rows)
    hits = B.scatter_add(ids, B.const(u.graph, 1.0, DType.f32, (ids.shape[0],)), rows)
    return B.reshape(total, shape), B.reshape(hits, (*[d for d in shape[: idx.shape[-1]]],))


@op
def scatter(indices, values, shape):
    """A zero tensor of ``shape`` with ``values`` added at ``indices`` (repeated indices
    add up, as Keras's)."""
    shape = tuple(int(d) for d in shape)
    dtype = val(values).dtype
    total, _ = _scattered(indices, values, shape)
    return total if dtype is DType.f32 else B.cast(total, dtype)


@op
def scatter_update(inputs, indices, updates, reduction=None):
    """``inputs`` with the entries (or rows) at ``indices`` set to ``updates``
    (``reduction="add"``: added to them). A position named twice receives the sum of its
    updates (jax keeps one of them: name each position once)."""
    v = val(inputs)
    if BATCH in v.shape:
        raise unsupported("scatter_update", "into a tensor with the batch dimension")
    if reduction not in (None, "add"):
        raise unsupported("scatter_update", f"reduction={reduction!r} (None and 'add' are)")
    total, hits = _scattered(indices, updates, v.shape)
    if v.dtype is not DType.f32:
        total = B.cast(total, v.dtype)
    if reduction == "add":
        return v + total
    k = hits.rank
    written = B.reshape(B.gt(hits, 0.0), (*hits.shape, *[1] * (v.rank - k)))
    return B.select(written, total, v)


# --- segment reductions -----------------------------------------------------------------


def _segments(data, segment_ids, num_segments, name: str) -> tuple[Value, Value, int]:
    if num_segments is None:
        if isinstance(segment_ids, TracedTensor | KerasTensor):
            raise unsupported(
                name, "on traced tensors without num_segments (the output size would "
                "depend on the values)"
            )  # fmt: skip
        ids_array = np.asarray(segment_ids)
        num_segments = int(ids_array.max()) + 1 if ids_array.size else 0
    return val(data), val(segment_ids, DType.i32), int(num_segments)


def _segment_reduce(name: str, combine: str):
    def fn(data, segment_ids, num_segments=None, sorted=False):
        v, ids, count = _segments(data, segment_ids, num_segments, f"segment_{name}")
        if combine == "sum":
            out = B.scatter_add(ids, B.cast(v, DType.f32), count)
            return out if v.dtype is DType.f32 else B.cast(out, v.dtype)
        # [segments, n, ...]: each segment's rows, the others replaced by the identity
        hot = B.gt(B.one_hot(ids, count), 0.0)  # [n, segments]
        member = B.reshape(B.transpose(hot, (1, 0)), (count, ids.shape[0], *[1] * (v.rank - 1)))
        spread = B.reshape(v, (1, *v.shape))
        if combine == "prod":
            return B.reduce_prod(B.select(member, spread, B.const(v.graph, 1, v.dtype)), (1,))
        sign = 1.0 if combine == "max" else -1.0
        empty = -math.inf if v.dtype is DType.f32 else -(2**31)
        picked = B.select(member, spread * sign if sign < 0 else spread, empty)
        out = B.reduce_max(picked, (1,))
        return out if sign > 0 else B.neg(out)

    return N._named(f"segment_{name}", fn)


segment_sum = _segment_reduce("sum", "sum")
segment_max = _segment_reduce("max", "max")
segment_min = _segment_reduce("min", "min")
segment_prod = _segment_reduce("prod", "prod")


# --- casts, dtypes, distances, frames -------------------------------------------------------


@op
def saturate_cast(x, dtype):
    """A cast that clips to the target's range first (``uint8``: 0..255), so that values
    out of range saturate instead of wrapping."""
    name = _dtype_name(dtype)
    v = val(x)
    target = ir_dtype(name)
    if target is not DType.i32 or v.dtype is not DType.f32:
        return B.cast(v, target)
    lo, hi = _INT_RANGES.get(name, _INT32)
    return B.cast(B.minimum(B.maximum(v, float(lo)), float(hi)), target)


def dtype(x) -> str:
    """The dtype of a tensor as Keras names it ("float32", "int32", "bool")."""
    if isinstance(x, TracedTensor):
        return {DType.f32: "float32", DType.i32: "int32", DType.bool: "bool"}.get(
            x.value.dtype, x.value.dtype.value
        )
    if isinstance(x, KerasTensor):
        return x.dtype
    return str(N.convert_to_tensor(x).dtype)


@op
def cdist(x, y):
    """Euclidean distances between the rows of ``x`` [..., P, M] and ``y`` [..., R, M]."""
    a, b = fval(x), fval(y)
    rows = B.reshape(a, (*a.shape[:-1], 1, a.shape[-1]))
    cols = B.reshape(b, (*b.shape[:-2], 1, *b.shape[-2:]))
    return B.sqrt(B.reduce_sum(B.square(rows - cols), (max(rows.rank, cols.rank) - 1,)))


@op
def extract_sequences(x, sequence_length, sequence_stride):
    """Frames of ``sequence_length`` every ``sequence_stride`` along the last axis:
    [..., frames, sequence_length]."""
    v = val(x)
    size = v.shape[-1]
    frames = 1 + (size - sequence_length) // sequence_stride
    at = (
        np.arange(frames)[:, None] * sequence_stride + np.arange(sequence_length)[None, :]
    ).astype(np.int32)
    index = B.const_array(v.graph, at.ravel().tolist(), DType.i32, at.shape)
    return N.take.__kcompile_op__(v, index, v.rank - 1)


__all__ = [
    "cdist",
    "dtype",
    "extract_sequences",
    "saturate_cast",
    "scatter",
    "scatter_update",
    "segment_max",
    "segment_min",
    "segment_prod",
    "segment_sum",
    "slice",
    "slice_update",
]
