"""Lowerings of ``gather_rows`` and ``scatter_rows`` (``ir/ops/row_gather.py``): a loop
over the batch rows, then over the indices of the row, copying (or adding) ``width``
contiguous elements per index. The rows may be the batch (``N``): then indices are
clamped to the batch size of the call, and the node, which reads across the batch, is
one call on every row (never split by rows)."""

from __future__ import annotations

from llvmlite import ir

from kcompile.codegen.loops import F32, I32, I64, for_range
from kcompile.codegen.lowering.emitters import emits
from kcompile.ir import BATCH
from kcompile.ir.memory import numel


def _last_row(k, rows: int | str) -> ir.Value:
    """The last valid row index, i32: ``rows - 1``, or ``n - 1`` for the batch's rows."""
    if rows == BATCH:
        return k.b.sub(k.b.trunc(k.n, I32), ir.Constant(I32, 1))
    return ir.Constant(I32, rows - 1)


def _clamp(b: ir.IRBuilder, idx: ir.Value, top: ir.Value) -> ir.Value:
    """An i32 index clamped into [0, top], as i64."""
    low = b.select(b.icmp_signed("<", idx, ir.Constant(I32, 0)), ir.Constant(I32, 0), idx)
    return b.sext(b.select(b.icmp_signed(">", low, top), top, low), I64)


@emits("gather_rows")
def gather_rows(k, m, node, outs, ins) -> None:
    b = k.b
    table, idx = node.inputs
    top = _last_row(k, table.shape[1])
    width = k.value(numel(table.shape[2:]))
    per_row = k.value(numel(idx.shape[1:]))
    stride = k.value(numel(table.shape[1:]))
    with for_range(b, k.value(numel(idx.shape[:1])), "b") as n:
        base = b.mul(n, stride)
        first = b.mul(n, per_row)
        with for_range(b, per_row, "r") as r:
            at = b.add(first, r)
            row = _clamp(b, k.load(ins[1], at), top)
            src = b.add(base, b.mul(row, width))
            dst = b.mul(at, width)
            with for_range(b, width, "j") as j:
                k.store(outs[0], b.add(dst, j), k.load(ins[0], b.add(src, j)))


@emits("scatter_rows")
def scatter_rows(k, m, node, outs, ins) -> None:
    b = k.b
    idx, updates = node.inputs
    rows = node.attrs["rows"]
    top = _last_row(k, rows)
    width = k.value(numel(updates.shape[idx.rank :]))
    per_row = k.value(numel(idx.shape[1:]))
    stride = k.value(numel((rows, *updates.shape[idx.rank :])))
    k.fill(outs[0], numel(node.outputs[0].shape), ir.Constant(F32, 0.0))
    with for_range(b, k.value(numel(idx.shape[:1])), "b") as n:
        base = b.mul(n, stride)
        first = b.mul(n, per_row)
        with for_range(b, per_row, "r") as r:
            at = b.add(first, r)
            row = _clamp(b, k.load(ins[0], at), top)
            dst = b.add(base, b.mul(row, width))
            src = b.mul(at, width)
            with for_range(b, width, "j") as j:
                offset = b.add(dst, j)
                value = b.fadd(k.load(outs[0], offset), k.load(ins[1], b.add(src, j)))
                k.store(outs[0], offset, value)
