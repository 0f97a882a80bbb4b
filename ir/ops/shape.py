"""Movement ops: reshape, transpose, broadcast_to, slice, pad, concat."""

from __future__ import annotations

import numpy as np

from kcompile.ir import build as B
from kcompile.ir import traits as T
from kcompile.ir.ops.common import expect_arity, same_dtype
from kcompile.ir.registry import OpDef, register
from kcompile.ir.types import BATCH, ShapeError, TensorType, bind_shape


def _infer_reshape(types, attrs):
    expect_arity(types, 1)
    t = types[0]
    shape = tuple(attrs["shape"])
    out = t.with_shape(shape)
    if t.shape.count(BATCH) != shape.count(BATCH) or shape.count(BATCH) > 1:
        raise ShapeError(
            f"cannot reshape {t} to {list(shape)}: the batch dimension N "
            "must appear once in both or in neither"
        )
    if t.static_size() != out.static_size():
        raise ShapeError(f"cannot reshape {t} to {list(shape)}: element counts differ")
    return [out]


register(
    OpDef(
        "reshape",
        "shape",
        1,
        _infer_reshape,
        lambda ctx, a, at: [a[0].reshape(bind_shape(at["shape"], ctx.batch))],
        lambda n, g: [B.reshape(g[0], n.inputs[0].shape)],
        traits=T.Traits(
            T.Pattern.INJECTIVE,
            view=True,
            loop_bodies=frozenset({"row"}),
            row_signature=lambda node: _reshape_row_signature(node),
            carries_values=True,
        ),
    )
)


def _reshape_row_signature(node):
    """Adding or dropping a trailing 1 keeps a row scalar a row scalar."""
    a, b = node.inputs[0].shape, node.outputs[0].shape
    if a == (*b, 1) or b == (*a, 1):
        return min(a, b, key=len), None
    return None


def _infer_transpose(types, attrs):
    expect_arity(types, 1)
    t = types[0]
    perm = tuple(attrs["perm"])
    if sorted(perm) != list(range(t.rank)):
        raise ShapeError(f"perm {perm} is not a permutation of the {t.rank} axes of {t}")
    return [t.with_shape(tuple(t.shape[p] for p in perm))]


def _vjp_transpose(node, g):
    perm = node.attrs["perm"]
    inverse = tuple(int(i) for i in np.argsort(perm))
    return [B.transpose(g[0], inverse)]


register(
    OpDef(
        "transpose",
        "shape",
        1,
        _infer_transpose,
        lambda ctx, a, at: [np.ascontiguousarray(np.transpose(a[0], at["perm"]))],
        _vjp_transpose,
        traits=T.Traits(T.Pattern.INJECTIVE, carries_values=True),
    )
)


def _infer_broadcast_to(types, attrs):
    expect_arity(types, 1)
    t = types[0]
    shape = tuple(attrs["shape"])
    lead = len(shape) - t.rank
    if lead < 0:
        raise ShapeError(f"cannot broadcast {t} to lower rank {list(shape)}")
    for i, d in enumerate(t.shape):
        if d != 1 and d != shape[lead + i]:
            raise ShapeError(f"cannot broadcast {t} to {list(shape)}")
    return [t.with_shape(shape)]


def _ref_broadcast_to(ctx, args, attrs):
    shape = bind_shape(attrs["shape"], ctx.batch)
    return [np.ascontiguousarray(np.broadcast_to(args[0], shape))]


register(
    OpDef(
        "broadcast_to",
        "shape",
        1,
        _infer_broadcast_to,
        _ref_broadcast_to,
        lambda n, g: [B.sum_to(g[0], n.inputs[0].shape)],
        # Elementwise in a loop, where it costs nothing (a read with zero strides); never
        # in place: the operand is smaller than the result.
        traits=T.elementwise(0, T.Pattern.BROADCAST, in_place=None, carries_values=True),
    )
)


def _check_static_axis(t: TensorType, axis: int, what: str) -> None:
    if t.shape[axis] == BATCH:
        raise ShapeError(f"{what} along the batch dimension N of {t} is not supported")


def _infer_slice(types, attrs):
    expect_arity(types, 1)
    t = types[0]
    begin, end = tuple(attrs["begin"]), tuple(attrs["end"])
    if len(begin) != t.rank or len(end) != t.rank:
        raise ShapeError(f"slice needs one begin and end per axis of {t}")
    out = []
    for axis, (b, e, d) in enumerate(zip(begin, end, t.shape)):
        if d == BATCH:
            if (b, e) != (0, BATCH):
                _check_static_axis(t, axis, "slicing")
            out.append(BATCH)
        elif not (0 <= b <= e <= d):
            raise ShapeError(f"slice [{b}:{e}] out of range on axis {axis} of {t}")
        else:
            out.append(e - b)
    return [t.with_shape(tuple(out))]


def _ref_slice(ctx, args, attrs):
    index = tuple(slice(b, None if e == BATCH else e) for b, e in zip(attrs["begin"], attrs["end"]))
    return [np.ascontiguousarray(args[0][index])]


def _vjp_slice(node, g):
    x = node.inputs[0]
    begin, end = node.attrs["begin"], node.attrs["end"]
    high = [0 if d == BATCH else d - e for d, e in zip(x.shape, end)]
    return [B.pad(g[0], begin, high, 0.0)]


register(
    OpDef(
        "slice",
        "shape",
        1,
        _infer_slice,
        _ref_slice,
        _vjp_slice,
        # An elementwise loop holds it as a strided read of its operand.
        # Not ``carries_values``: a slice keeps some of its operand's values, so a bound
        # check of the whole operand would refuse ids the step never looks up.
        traits=T.Traits(T.Pattern.INJECTIVE, loop_bodies=frozenset({"elementwise"})),
    )
)


def _infer_pad(types, attrs):
    expect_arity(types, 1)
    t = types[0]
    low, high = tuple(attrs["low"]), tuple(attrs["high"])
    if len(low) != t.rank or len(high) != t.rank:
        raise ShapeError(f"pad needs one low and high amount per axis of {t}")
    out = []
    for axis, (lo, hi, d) in enumerate(zip(low, high, t.shape)):
        if lo < 0 or hi < 0:
            raise ShapeError(f"negative padding on axis {axis}")
        if d == BATCH:
            if lo or hi:
                _check_static_axis(t, axis, "padding")
            out.append(BATCH)
        else:
            out.append(d + lo + hi)
    return [t.with_shape(tuple(out))]


def _ref_pad(ctx, args, attrs):
    width = list(zip(attrs["low"], attrs["high"]))
    return [np.pad(args[0], width, constant_values=attrs["value"])]


def _vjp_pad(node, g):
    x = node.inputs[0]
    low = node.attrs["low"]
    end = [BATCH if d == BATCH else lo + d for lo, d in zip(low, x.shape)]
    return [B.slice_(g[0], low, end)]


register(
    OpDef("pad", "shape", 1, _infer_pad, _ref_pad, _vjp_pad, traits=T.Traits(T.Pattern.INJECTIVE))
)


def _infer_concat(types, attrs):
    if not types:
        raise ShapeError("concat needs at least one operand")
    dtype = same_dtype(types)
    axis = attrs["axis"]
    first = types[0]
    if not 0 <= axis < first.rank:
        raise ShapeError(f"concat axis {axis} out of range for {first}")
    total = 0
    for t in types:
        if t.rank != first.rank or any(
            a != b for i, (a, b) in enumerate(zip(t.shape, first.shape)) if i != axis
        ):
            shown = ", ".join(str(x) for x in types)
            raise ShapeError(f"concat along axis {axis} needs equal other dims, got {shown}")
        _check_static_axis(t, axis, "concatenation")
        total += t.shape[axis]
    shape = list(first.shape)
    shape[axis] = total
    return [TensorType(dtype, tuple(shape))]


def _vjp_concat(node, g):
    axis = node.attrs["axis"]
    out, offset = [], 0
    for x in node.inputs:
        begin = [0] * x.rank
        end = [d for d in x.shape]
        begin[axis] = offset
        end[axis] = offset + x.shape[axis]
        out.append(B.slice_(g[0], begin, end))
        offset += x.shape[axis]
    return out


register(
    OpDef(
        "concat",
        "shape",
        None,
        _infer_concat,
        lambda ctx, a, at: [np.concatenate(a, axis=at["axis"])],
        _vjp_concat,
        traits=T.Traits(T.Pattern.INJECTIVE),
    )
)


def _infer_reverse(types, attrs):
    expect_arity(types, 1)
    t = types[0]
    axis = attrs["axis"]
    if not 0 <= axis < t.rank:
        raise ShapeError(f"reverse axis {axis} is out of range for {t}")
    _check_static_axis(t, axis, "reversing")
    return [t]


def _ref_reverse(ctx, args, attrs):
    return [np.ascontiguousarray(np.flip(args[0], attrs["axis"]))]


def _vjp_reverse(node, g):
    return [B.reverse(g[0], node.attrs["axis"])]


register(
    OpDef(
        "reverse",
        "shape",
        1,
        _infer_reverse,
        _ref_reverse,
        _vjp_reverse,
        traits=T.Traits(T.Pattern.INJECTIVE, carries_values=True),
    )
)
