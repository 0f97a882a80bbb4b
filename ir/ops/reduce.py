"""Reductions: sum, max, argmax, and numel (an element count read at run time)."""

from __future__ import annotations

import math

import numpy as np

from kcompile.ir import build as B
from kcompile.ir import traits as T
from kcompile.ir.ops.common import expect_arity, expect_float
from kcompile.ir.registry import OpDef, register
from kcompile.ir.types import BATCH, DType, ShapeError, TensorType, normalize_axes


def reduced_shape(shape, axes, keepdims):
    if keepdims:
        return tuple(1 if i in axes else d for i, d in enumerate(shape))
    return tuple(d for i, d in enumerate(shape) if i not in axes)


def _axes(t: TensorType, attrs) -> tuple[int, ...]:
    axes = tuple(attrs["axes"])
    if normalize_axes(axes, t.rank) != axes:
        raise ShapeError(f"axes {axes} must be sorted, unique and in range for {t}")
    return axes


def _infer_reduce(types, attrs):
    expect_arity(types, 1)
    t = types[0]
    if t.dtype is DType.bool:
        raise ShapeError(f"cannot reduce a bool tensor {t}")
    return [t.with_shape(reduced_shape(t.shape, _axes(t, attrs), attrs["keepdims"]))]


def _expand_back(node, value):
    """Broadcast a reduced value back to the operand's shape."""
    x = node.inputs[0]
    axes, keepdims = node.attrs["axes"], node.attrs["keepdims"]
    if not keepdims:
        value = B.reshape(value, reduced_shape(x.shape, axes, True))
    return B.broadcast_to(value, x.shape)


def _vjp_sum(node, g):
    return [_expand_back(node, g[0])]


def _vjp_max(node, g):
    # Ties share the gradient equally, as TensorFlow's reduce_max does.
    x = node.inputs[0]
    hit = B.cast(B.eq(x, _expand_back(node, node.outputs[0])), x.dtype)
    count = B.reduce_sum(hit, node.attrs["axes"], keepdims=True)
    share = hit / B.broadcast_to(count, x.shape)
    return [share * _expand_back(node, g[0])]


def _vjp_prod(node, g):
    # d prod / d x_i is the product of the others, exact with zeros: with none it is
    # prod / x_i; with one, it is the product of the non-zeros at the zero and 0 elsewhere;
    # with more, 0 (jax's rule gives the same).
    x = node.inputs[0]
    axes = node.attrs["axes"]
    zero = B.eq(x, 0.0)
    zeros = _expand_back_kept(node, B.reduce_sum(B.cast(zero, x.dtype), axes, keepdims=True))
    nonzero = B.reduce_prod(B.select(zero, 1.0, x), axes, keepdims=True)
    others = B.select(
        B.eq(zeros, 0.0),
        _expand_back(node, node.outputs[0]) / B.select(zero, 1.0, x),
        B.select(B.logical_and(B.eq(zeros, 1.0), zero), _expand_back_kept(node, nonzero), 0.0),
    )
    return [others * _expand_back(node, g[0])]


def _expand_back_kept(node, value):
    """Broadcast a value reduced with keepdims back to the operand's shape."""
    return B.broadcast_to(value, node.inputs[0].shape)


def _ref_reduce(fn):
    def ref(ctx, args, attrs):
        x = args[0]
        axes = tuple(attrs["axes"])
        if x.size == 0 and fn is np.max:
            raise ValueError("reduce_max of an empty tensor")
        return [np.asarray(fn(x, axis=axes, keepdims=attrs["keepdims"])).astype(x.dtype)]

    return ref


# A matrix product's kernel sums its epilogue over rows (a bias gradient) as it goes.
_SUM = T.reduction(0.0, "add", frozenset({"matmul", "reduce", "row"}))
_MAX = T.reduction(-math.inf, "max", frozenset({"reduce", "row"}))
register(
    OpDef("reduce_sum", "reduce", 1, _infer_reduce, _ref_reduce(np.sum), _vjp_sum, traits=_SUM)
)
register(
    OpDef(
        "reduce_prod",
        "reduce",
        1,
        _infer_reduce,
        _ref_reduce(np.prod),
        _vjp_prod,
        traits=T.reduction(1.0, "mul", frozenset({"reduce", "row"})),
    )
)
register(
    OpDef("reduce_max", "reduce", 1, _infer_reduce, _ref_reduce(np.max), _vjp_max, traits=_MAX)
)


def _infer_argmax(types, attrs):
    expect_arity(types, 1)
    t = types[0]
    axis = attrs["axis"]
    if not 0 <= axis < t.rank:
        raise ShapeError(f"argmax axis {axis} out of range for {t}")
    return [TensorType(DType.i32, reduced_shape(t.shape, (axis,), False))]


register(
    OpDef(
        "argmax",
        "reduce",
        1,
        _infer_argmax,
        lambda ctx, a, at: [np.argmax(a[0], axis=at["axis"]).astype(np.int32)],
        None,
        doc="index of the first maximum along axis",
        traits=T.Traits(
            T.Pattern.REDUCTION,
            loop_bodies=frozenset({"row"}),
            row_signature=lambda node: _argmax_row_signature(node),
        ),
    )
)


def _argmax_row_signature(node):
    x = node.inputs[0]
    return (x.shape[:-1], x.shape[-1]) if node.attrs["axis"] == x.rank - 1 else None


def _infer_numel(types, attrs):
    expect_arity(types, 1)
    _axes(types[0], attrs)
    return [TensorType(DType.f32, ())]


def _ref_numel(ctx, args, attrs):
    count = 1
    for a in attrs["axes"]:
        count *= args[0].shape[a]
    return [np.asarray(count, dtype=ctx.float_dtype)]


register(
    OpDef(
        "numel",
        "reduce",
        1,
        _infer_numel,
        _ref_numel,
        None,
        doc="the number of elements over axes, as f32; reads N at run time",
        traits=T.Traits(T.Pattern.OPAQUE),
    )
)


# --- row normalization ------------------------------------------------------------------


def _infer_layer_norm(types, attrs):
    expect_arity(types, 1)
    t = types[0]
    expect_float(t)
    if t.rank < 1 or t.shape[-1] == BATCH:
        raise ShapeError(f"layer_norm normalizes a static last axis, got {t}")
    if not attrs["epsilon"] >= 0:
        raise ShapeError(f"layer_norm epsilon must be >= 0, got {attrs['epsilon']}")
    return [t]


def _ref_layer_norm(ctx, args, attrs):
    x = args[0]
    centred = x - x.mean(axis=-1, keepdims=True)
    variance = np.square(centred).mean(axis=-1, keepdims=True)
    return [(centred / np.sqrt(variance + attrs["epsilon"])).astype(x.dtype)]


def _vjp_layer_norm(node, g):
    # y = (x - mean) r with r = (variance + epsilon)^-1/2, over the last axis:
    # dx = r (g - mean(g) - y mean(g y)).
    x, y = node.inputs[0], node.outputs[0]
    centred = x - B.mean(x, -1, keepdims=True)
    r = 1.0 / B.sqrt(B.mean(B.square(centred), -1, keepdims=True) + node.attrs["epsilon"])
    along = B.mean(g[0], -1, keepdims=True) + y * B.mean(g[0] * y, -1, keepdims=True)
    return [r * (g[0] - along)]


register(
    OpDef(
        "layer_norm",
        "normalize",
        1,
        _infer_layer_norm,
        _ref_layer_norm,
        _vjp_layer_norm,
        doc="(x - mean) / sqrt(variance + epsilon) over the last axis",
        # A kernel of its own, a loop over rows; each row alone, so batch-split.
        traits=T.Traits(T.Pattern.ROW, cost=3, rows_independent=lambda node: True),
    )
)
