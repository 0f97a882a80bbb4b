"""Running a kernel on slices of the batch, in parallel.

A kernel whose every operand and result has the batch as its leading axis, and
that computes each batch row from that row alone (image patches and their
adjoint, pooling and other reductions over non-batch axes), gives the same
result when called on a slice of rows: pointers advanced by the rows before the
slice, and ``n`` the slice's length. Such a kernel is called through a wrapper
that hands the slices to the thread pool when the batch is large enough; the
kernel itself is emitted as usual.
"""

from __future__ import annotations

from llvmlite import ir

from kcompile.codegen.library.parallel import chunk_count, declare_parallel_for
from kcompile.codegen.loops import I8, chunk_range, i64
from kcompile.codegen.lowering.kernel import Kernel
from kcompile.ir import BATCH, Node, Value
from kcompile.ir.memory import nbytes, numel


def splits_by_rows(node: Node) -> bool:
    """Whether ``node``'s kernel computes each batch row from that row alone."""
    values = [*node.outputs, *node.inputs]
    if not all(v.shape and v.shape[0] == BATCH for v in values):
        return False
    if any(nbytes(v.type).power != 1 for v in values):
        return False
    rows_independent = node.traits.rows_independent
    return rows_independent is not None and rows_independent(node)


def batch_split(
    module: ir.Module, kernel: ir.Function, node: Node, argument: dict[Value, int]
) -> ir.Function:
    """A function with ``kernel``'s signature that runs it on slices of the batch;
    ``argument[v]`` is the kernel argument that holds each of the node's values."""
    count = len(kernel.args) - 1
    row_bytes = [0] * count
    for v in [*node.outputs, *node.inputs]:
        row_bytes[argument[v]] = nbytes(v.type).coef
    elements = max(numel(v.shape).coef for v in [*node.outputs, *node.inputs])

    chunk = Kernel.callback(module, f"{kernel.name}_rows", count, 1, extra=1)
    b = chunk.b
    first, rows = chunk_range(b, chunk.n, chunk.params[0], chunk.extra[0])
    with b.if_then(b.icmp_signed(">", rows, i64(0))):
        moved = [
            b.gep(p, [b.mul(first, i64(row))], inbounds=True, source_etype=I8)
            for p, row in zip(chunk.args, row_bytes)
        ]
        b.call(kernel, [*moved, rows])
    chunk.finish()

    wrapper = Kernel(module, f"{kernel.name}_split", count, inline=False)
    b = wrapper.b
    # The work of a call: the elements of its largest value.
    chunks = chunk_count(b, b.mul(wrapper.n, i64(elements)), most=wrapper.n)
    with b.if_else(b.icmp_signed(">", chunks, i64(1))) as (split, whole):
        with split:
            ctx = wrapper.context([chunks])
            b.call(declare_parallel_for(module), [chunk.entry, ctx, chunks])
        with whole:
            b.call(kernel, [*wrapper.args, wrapper.n])
    wrapper.finish()
    return wrapper.fn
