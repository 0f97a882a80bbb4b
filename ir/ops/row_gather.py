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

The rows ``R`` may be the batch itself (``N``) when ``B`` is static: a table
[1, N, *rest] and indices [1, N] read each batch row from another row of the same batch
(``gather_batch``: ``out[i] = x[perm[i]]``, a batch in a computed order, as MixUp and
CutMix need), and ``scatter_rows`` with ``rows=N`` is its adjoint. Such a node reads
across the batch, so it is never split by batch rows; its indices are clamped to the
batch size the step runs at.
"""

from __future__ import annotations

import numpy as np

from kcompile.ir import build as B
from kcompile.ir import traits as T
from kcompile.ir.graph import Value
from kcompile.ir.ops.common import expect_arity, expect_dtype, expect_float
from kcompile.ir.registry import OpDef, register
from kcompile.ir.types import BATCH, DType, ShapeError, TensorType


def gather_rows(table: Value, indices: Value) -> Value:
    """``table[b, indices[b, ...]]`` for each batch row b."""
    return table.graph.emit1("gather_rows", [table, indices])


def scatter_rows(indices: Value, updates: Value, rows: int | str) -> Value:
    """zeros[B, rows, ...] with ``updates[b, i...]`` added at row ``indices[b, i...]``
    (``rows`` a count, or ``N``: the batch's rows)."""
    rows = rows if rows == BATCH else int(rows)
    return updates.graph.emit1("scatter_rows", [indices, updates], rows=rows)


def gather_batch(x: Value, order: Value) -> Value:
    """``x[order[i]]`` for each row i of ``x`` ([n, ...], n static or ``N``), ``order``
    an i32 [n] (clamped into the batch): the batch's rows in a computed order. Its
    gradient adds each row's gradient into the row it was read from."""
    n = x.shape[0]
    if order.dtype is not DType.i32 or order.shape != (n,):
        raise ShapeError(f"gather_batch needs an i32 order [{n}] for {x.type}, got {order.type}")
    rest = tuple(x.shape[1:])
    table = B.reshape(x, (1, n, *rest))
    picked = gather_rows(table, B.reshape(order, (1, n)))
    return B.reshape(picked, (n, *rest))


def _infer_gather(types, attrs):
    expect_arity(types, 2)
    table, idx = types
    expect_dtype(idx, DType.i32, "indices")
    if table.rank < 2 or idx.rank < 1:
        raise ShapeError(f"gather_rows needs table [B, R, ...] and indices [B, ...], got {types}")
    if table.shape[0] != idx.shape[0]:
        raise ShapeError(f"gather_rows: table {table} and indices {idx} differ in batch")
    _check_rows(table.shape[1], table.shape[0], "gather_rows", table)
    if BATCH in table.shape[2:]:
        raise ShapeError(f"gather_rows: only the rows of the table may be {BATCH}, got {table}")
    return [TensorType(table.dtype, (*idx.shape, *table.shape[2:]))]


def _check_rows(rows, batch, op: str, shown) -> None:
    """Rows are a positive count, or the batch (``N``) in a table of static ``B``."""
    if rows == BATCH:
        if batch == BATCH:
            raise ShapeError(f"{op}: rows {BATCH} need a static first dimension, got {shown}")
    elif not isinstance(rows, int) or isinstance(rows, bool) or rows < 1:
        raise ShapeError(f"{op} needs rows >= 1 or {BATCH}, got {rows!r}")


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
    _check_rows(attrs["rows"], idx.shape[0], "scatter_rows", idx)
    if BATCH in updates.shape[idx.rank :]:
        raise ShapeError(f"scatter_rows: updates {updates} may hold {BATCH} in its indices only")
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
    """Batch row b of the result from row b alone, unless the rows are the batch."""
    return _rows(node) != BATCH


def _rows(node) -> int | str:
    return node.inputs[0].shape[1] if node.op == "gather_rows" else node.attrs["rows"]


def _reference_rows(ctx, rows: int | str) -> int:
    return ctx.batch if rows == BATCH else rows


def _index_use(node, position: int, operand: int, use: str):
    """Indices fed as data are checked against a static row count; indices into the
    batch are computed by the step (and clamped)."""
    rows = _rows(node)
    return (rows, use) if position == operand and rows != BATCH else None


register(
    OpDef(
        "gather_rows",
        "indexing",
        2,
        _infer_gather,
        lambda ctx, a, at: [_gather(a[0], a[1])],
        lambda node, g: [scatter_rows(node.inputs[1], g[0], node.inputs[0].shape[1]), None],
        doc="gather_rows(table[B,R,...], idx[B,...]): table[b, idx[b,...]] (clamped; R may be N)",
        traits=T.Traits(
            T.Pattern.OPAQUE,
            rows_independent=_per_row,
            index_use=lambda node, position: _index_use(node, position, 1, "rows gathered"),
        ),
    )
)
register(
    OpDef(
        "scatter_rows",
        "indexing",
        2,
        _infer_scatter,
        lambda ctx, a, at: [_scatter(a[0], a[1], _reference_rows(ctx, at["rows"]))],
        lambda node, g: [None, gather_rows(g[0], node.inputs[0])],
        doc="scatter_rows(idx[B,...], updates) {rows}: zeros[B,rows,...], updates added at idx",
        traits=T.Traits(
            T.Pattern.OPAQUE,
            rows_independent=_per_row,
            index_use=lambda node, position: _index_use(node, position, 0, "rows scattered into"),
        ),
    )
)
