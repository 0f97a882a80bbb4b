"""Indexing ops: one_hot, take (row gather) and its adjoint scatter_add.

Out-of-range indices are clamped into range by ``take`` and ``scatter_add``
(as XLA's gather does) and give an all-zero row in ``one_hot`` (as
``tf.one_hot`` does); compiled code cannot raise mid-kernel.
"""

from __future__ import annotations

import numpy as np

from kcompile.ir import build as B
from kcompile.ir import traits as T
from kcompile.ir.ops.common import expect_arity, expect_dtype, expect_float
from kcompile.ir.registry import OpDef, register
from kcompile.ir.types import BATCH, DType, ShapeError, TensorType


def _infer_one_hot(types, attrs):
    expect_arity(types, 1)
    expect_dtype(types[0], DType.i32, "indices")
    if attrs["depth"] < 1:
        raise ShapeError(f"one_hot depth must be positive, got {attrs['depth']}")
    return [TensorType(DType.f32, (*types[0].shape, attrs["depth"]))]


def _ref_one_hot(ctx, args, attrs):
    idx = args[0]
    depth = attrs["depth"]
    return [(idx[..., None] == np.arange(depth, dtype=np.int32)).astype(ctx.float_dtype)]


register(
    OpDef(
        "one_hot",
        "indexing",
        1,
        _infer_one_hot,
        _ref_one_hot,
        None,
        traits=T.Traits(
            T.Pattern.ROW,
            loop_bodies=frozenset({"row"}),
            row_signature=lambda node: (node.inputs[0].shape, node.attrs["depth"]),
            index_use=lambda node, position: (node.attrs["depth"], "class ids"),
        ),
    )
)


def _infer_take(types, attrs):
    expect_arity(types, 2)
    table, idx = types
    expect_dtype(idx, DType.i32, "indices")
    if table.rank < 1 or table.shape[0] == BATCH:
        raise ShapeError(f"take needs a table with a static first dimension, got {table}")
    return [TensorType(table.dtype, (*idx.shape, *table.shape[1:]))]


def _clamp(idx, rows):
    return np.clip(idx, 0, rows - 1)


def _vjp_take(node, g):
    table, idx = node.inputs
    return [B.scatter_add(idx, g[0], table.shape[0]), None]


register(
    OpDef(
        "take",
        "indexing",
        2,
        _infer_take,
        lambda ctx, a, at: [a[0][_clamp(a[1], a[0].shape[0])]],
        _vjp_take,
        doc="take(table, idx): table rows at idx (clamped)",
        traits=T.Traits(
            T.Pattern.OPAQUE,
            index_use=lambda node, position: (
                (node.inputs[0].shape[0], "ids looked up") if position == 1 else None
            ),
        ),
    )
)


def _infer_scatter_add(types, attrs):
    expect_arity(types, 2)
    idx, updates = types
    expect_dtype(idx, DType.i32, "indices")
    expect_float(updates, "updates")
    if updates.shape[: idx.rank] != idx.shape:
        raise ShapeError(f"updates {updates} must start with the indices' shape {idx}")
    return [TensorType(updates.dtype, (attrs["rows"], *updates.shape[idx.rank :]))]


def _ref_scatter_add(ctx, args, attrs):
    idx, updates = args
    rows = attrs["rows"]
    out = np.zeros((rows, *updates.shape[idx.ndim :]), dtype=updates.dtype)
    np.add.at(out, _clamp(idx, rows).reshape(-1), updates.reshape(-1, *out.shape[1:]))
    return [out]


register(
    OpDef(
        "scatter_add",
        "indexing",
        2,
        _infer_scatter_add,
        _ref_scatter_add,
        lambda node, g: [None, B.take(g[0], node.inputs[0])],
        doc="scatter_add(idx, updates) {rows}: zeros[rows, ...] with updates added at idx",
        traits=T.Traits(T.Pattern.OPAQUE),
    )
)
