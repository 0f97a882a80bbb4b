"""Lowering ``batch_rows``: the body's kernels called on one batch row after the other.

Each body node gets its kernel as it would in a step (its emitter, over pointers to its
values); the ``batch_rows`` kernel cuts the batch into one chunk per thread (at most
``SLOTS``), and a chunk calls every body kernel with ``n = 1`` on its first row, then on
the next: the pointers of batch values move by a row's bytes, values without a batch
axis are read whole by every row, and the values that never leave the body live in the
chunk's slot of the node's workspace (its last result, in the arena: nothing is
allocated while a step runs; a fresh allocation per chunk cost page faults and, freed,
a TLB shootdown of the other thread). The body kernels run inside the parallel region,
so whatever parallel loops they hold run serially on the chunk's thread.
"""

from __future__ import annotations

from llvmlite import ir

from kcompile.codegen.library.parallel import declare_parallel_for
from kcompile.codegen.loops import I8, I64, abi_function, chunk_range, for_range, i64
from kcompile.codegen.lowering.emitters import EMITTERS, emits
from kcompile.codegen.lowering.kernel import Kernel, Operand
from kcompile.codegen.lowering.mathfn import MathLib
from kcompile.ir import BATCH, Graph, Node, Value, abi
from kcompile.ir.memory import nbytes, numel
from kcompile.ir.ops.batch_rows import SLOTS, scratch_layout


def _row_step(v: Value) -> int:
    """Bytes a pointer to ``v`` moves per batch row: 0 for a value without a batch axis."""
    if BATCH not in v.shape:
        return 0
    size = nbytes(v.type)
    if v.shape[0] != BATCH or size.power != 1:
        raise NotImplementedError(
            f"codegen: batch_rows over a value of shape {v.shape} (batch not leading)"
        )
    return size.coef


def _body_kernels(k: Kernel, m: MathLib, body: Graph) -> list[tuple[ir.Function, list[Value]]]:
    """Each body node's kernel, and the body values its arguments hold, in order."""
    kernels = []
    for j, node in enumerate(body.nodes):
        emit = EMITTERS.get(node.op)
        if emit is None:
            raise NotImplementedError(f"codegen: batch_rows cannot run {node.op!r} per row")
        values = list(dict.fromkeys([*node.outputs, *node.inputs]))
        sub = Kernel(k.module, f"{k.fn.name}_r{j}_{node.op}", len(values), inline=False)
        arg_of = dict(zip(values, sub.args))
        ops = [Operand(arg_of[v], v.dtype, []) for v in [*node.outputs, *node.inputs]]
        emit(sub, m, node, ops[: len(node.outputs)], ops[len(node.outputs) :])
        sub.finish()
        kernels.append((sub.fn, values))
    return kernels


@emits("batch_rows")
def batch_rows(k: Kernel, m: MathLib, node: Node, outs, ins) -> None:
    """The body's kernels on rows ``0 .. n`` one row at a time, in chunks of rows for the
    threads; the body's own values in the chunk's slot of the workspace (the last
    result)."""
    body: Graph = node.attrs["body"]
    kernels = _body_kernels(k, m, body)
    module = k.module
    offset, _ = scratch_layout(body)
    slot_bytes = numel(node.outputs[-1].shape).coef // SLOTS
    chunk = Kernel.callback(module, f"{k.fn.name}_chain", len(k.args), 1, extra=1)
    moved = chunk.operands_from(k, outs)
    outer = {
        **dict(zip(body.inputs, chunk.operands_from(k, ins))),
        **{v: op for (_, v), op in zip(body.outputs, moved)},
    }
    b = chunk.b
    index = chunk.params[0]
    first, rows = chunk_range(b, chunk.n, index, chunk.extra[0])
    scratch = b.gep(moved[-1].ptr, [b.mul(index, i64(slot_bytes))], source_etype=I8)
    with b.if_then(b.icmp_signed(">", rows, i64(0))), for_range(b, rows, "row") as r:
        row = b.add(first, r)

        def pointer(v: Value) -> ir.Value:
            if v in offset:
                return b.gep(scratch, [i64(offset[v])], inbounds=True, source_etype=I8)
            step = _row_step(v)
            base = outer[v].ptr
            if not step:
                return base
            return b.gep(base, [b.mul(row, i64(step))], inbounds=True, source_etype=I8)

        for fn, values in kernels:
            b.call(fn, [*(pointer(v) for v in values), i64(1)])
    chunk.finish()

    b = k.b
    # One chunk a thread: each thread's slot of scratch stays in its core's cache from
    # row to row (a slot per chunk of 8 left a cold slot to every chunk: the backward
    # chain took 1.4x the time).
    get_threads = module.globals.get(abi.GET_THREADS.symbol) or abi_function(
        module, abi.GET_THREADS
    )
    chunks = b.zext(b.call(get_threads, []), I64)
    for most in (k.n, i64(SLOTS)):
        chunks = b.select(b.icmp_signed("<", most, chunks), most, chunks)
    with b.if_else(b.icmp_signed(">", chunks, i64(1))) as (split, whole):
        with split:
            b.call(declare_parallel_for(module), [chunk.entry, k.context([chunks]), chunks])
        with whole:
            # One chunk: called here, so that the body kernels' own loops may still
            # use the threads.
            b.call(chunk.fn, [*k.args, k.n, i64(0), i64(1)])
