"""Gathers within each batch row: ``gather_rows`` and its adjoint ``scatter_rows``.

``take`` reads rows of one table whose first dimension is static, so it cannot read
pixels of the image of the same batch row when the batch is symbolic (``N``): these two
can. They are what sampling images at computed coordinates needs (rotation, shear,
perspective, elastic warps, ``map_coordinates`` of a batch): each output pixel reads its
few taps, O(H·W·C) per image, instead of a one-hot product over every input pixel.

    gather_rows(table [B, R, *rest], idx [B, *ix] i32)        -> [B, *ix, *rest]
    scatter_rows(idx [B, *ix] i32, updates [B, *ix, *rest]) {rows=R} -> [B, R, *rest]

``out[b, i..., :] = table[b, idx[b, i...], :]``; ``scatter_rows`` adds each update into
its row (zeros elsewhere). Out-of-range indices are clamped, as ``take``'s (compiled
code cannot raise mid-kernel); callers that need a fill value mask the taps themselves.
Batch row b of each result depends on row b of the operands alone.
"""

from __future__ import annotations

import numpy as np

from kcompile.ir import traits as T
from kcompile.ir.graph import Value
from kcompile.ir.ops.common import expect_arity, expect_dtype, expect_float
from kcompile.ir.registry import OpDef, register
from kcompile.ir.types import BATCH, DType, ShapeError, TensorType


def gather_rows(table: Value, indices: Value) -> Value:
    """``table[b, indices[b, ...]]`` for each batch row b."""
    return table.graph.emit1("gather_rows", [table, indices])


def scatter_rows(indices: Value, updates: Value, rows: int) -> Value:
    """zeros[B, rows, ...] with ``updates[b, i...]`` added at row ``indices[b, i...]``."""
    return updates.graph.emit1("scatter_rows", [indices, updates], rows=int(rows))


def _infer_gather(types, attrs):
    expect_arity(types, 2)
    table, idx = types
    expect_dtype(idx, DType.i32, "indices")
    if table.rank < 2 or idx.rank < 1:
        raise ShapeError(f"gather_rows needs table [B, R, ...] and indices [B, ...], got {types}")
    if table.shape[0] != idx.shape[0]:
        raise ShapeError(f"gather_rows: table {table} and indices {idx} differ in batch")
    if table.shape[1] == BATCH:
        raise ShapeError(f"gather_rows needs a static row count, got {table}")
    return [TensorType(table.dtype, (*idx.shape, *table.shape[2:]))]


def _gather(table: np.ndarray, idx: np.ndarray) -> np.ndarray:
    rows = np.clip(idx, 0, table.shape[1] - 1).reshape(idx.shape[0], -1)
    picked = np.take_along_axis(
        table.reshape(table.shape[0], table.shape[1], -1), rows[:, :, None], axis=1
    )
    return picked.reshape(*idx.shape, *table.shape[2:])


def _infer_scatter(types, attrs):
    expect_arity(types, 2)
    idx, updates = types
    expect_dtype(idx, DType.i32, "indices")
    expect_float(updates, "updates")
    if updates.shape[: idx.rank] != idx.shape:
        raise ShapeError(f"updates {updates} must start with the indices' shape {idx}")
    if attrs["rows"] < 1:
        raise ShapeError(f"scatter_rows needs rows >= 1, got {attrs['rows']}")
    return [TensorType(updates.dtype, (idx.shape[0], attrs["rows"], *updates.shape[idx.rank :]))]


def _scatter(idx: np.ndarray, updates: np.ndarray, rows: int) -> np.ndarray:
    n = idx.shape[0]
    rest = updates.shape[idx.ndim :]
    out = np.zeros((n, rows, *rest), dtype=updates.dtype)
    flat = np.clip(idx, 0, rows - 1).reshape(n, -1)
    batch = np.repeat(np.arange(n), flat.shape[1])
    np.add.at(out, (batch, flat.reshape(-1)), updates.reshape(-1, *rest))
    return out


def _per_row(node) -> bool:
    return True


register(
    OpDef(
        "gather_rows",
        "indexing",
        2,
        _infer_gather,
        lambda ctx, a, at: [_gather(a[0], a[1])],
        lambda node, g: [scatter_rows(node.inputs[1], g[0], node.inputs[0].shape[1]), None],
        doc="gather_rows(table[B,R,...], idx[B,...]): table[b, idx[b,...]] (clamped)",
        traits=T.Traits(
            T.Pattern.OPAQUE,
            rows_independent=_per_row,
            index_use=lambda node, position: (
                (node.inputs[0].shape[1], "rows gathered") if position == 1 else None
            ),
        ),
    )
)
register(
    OpDef(
        "scatter_rows",
        "indexing",
        2,
        _infer_scatter,
        lambda ctx, a, at: [_scatter(a[0], a[1], at["rows"])],
        lambda node, g: [None, gather_rows(g[0], node.inputs[0])],
        doc="scatter_rows(idx[B,...], updates) {rows}: zeros[B,rows,...], updates added at idx",
        traits=T.Traits(
            T.Pattern.OPAQUE,
            rows_independent=_per_row,
            index_use=lambda node, position: (
                (node.attrs["rows"], "rows scattered into") if position == 0 else None
            ),
        ),
    )
)
