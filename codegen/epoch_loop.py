"""The epoch loop in native code: many steps in one call.

    i64 kc_epoch(ptr buffers[], ptr sources[], ptr order, i64 batch, i64 total,
                 i64 first, i64 steps, ptr logs, ptr progress, ptr stop)

For each step ``s`` in ``first .. first + steps`` (while rows are left), the
loop gathers rows ``order[s*batch .. s*batch + n)`` of every batched data input
from its full array (``sources``, one pointer per batched data input in graph
order) into that input's buffer, calls the step with ``n`` rows (the last batch
may be short), and writes the elements of each f32 result of fixed shape
(``log_outputs``: the loss, metric statistics) to ``logs[(s - first) * K + j ...]``,
``K`` elements a step. After each step it stores the number of steps
done into ``*progress`` (for a progress bar reading it from another thread)
and stops early when ``*stop`` is non-zero. It returns the number of steps run.
"""

from __future__ import annotations

import math

from llvmlite import ir

from kcompile.codegen.fpmode import flush_denormals, restore_mode
from kcompile.codegen.loops import F32, I8, I64, PTR, abi_function, for_range, i64, memcpy
from kcompile.ir import Graph, abi
from kcompile.ir.memory import nbytes
from kcompile.ir.signature import batched_data, logged_results

EPOCH = abi.EPOCH.symbol


def has_epoch_loop(graph: Graph) -> bool:
    """Whether ``graph``'s module gets ``kc_epoch``: batched data inputs, each a whole
    number of bytes per batch row."""
    data = batched_data(graph)
    return bool(data) and all(nbytes(v.type).power == 1 for v in data)


def log_outputs(graph: Graph, outputs: dict[str, int]) -> list[tuple[int, int]]:
    """(buffer index, element count) of the f32 results the loop records per step."""
    return [(outputs[name], math.prod(shape)) for name, shape in logged_results(graph)]


def add_epoch_loop(
    module: ir.Module, entry: ir.Function, graph: Graph, slot: dict, outputs: dict[str, int]
) -> None:
    fn = abi_function(module, abi.EPOCH)
    table, sources, order, batch, total, first, steps, logs, progress, stop = fn.args
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    saved = flush_denormals(b)
    done = b.alloca(I64, name="done")
    b.store(i64(0), done)
    data = batched_data(graph)
    logged = log_outputs(graph, outputs)

    def pointer(base: ir.Value, index: int) -> ir.Value:
        at = b.gep(base, [i64(index)], inbounds=True, source_etype=PTR)
        return b.load(at, typ=PTR)

    finished = fn.append_basic_block("finished")
    with for_range(b, steps, "step") as k:
        s = b.add(first, k)
        begin = b.mul(s, batch)
        with b.if_then(b.icmp_signed(">=", begin, total)):
            b.branch(finished)
        left = b.sub(total, begin)
        n = b.select(b.icmp_signed("<", left, batch), left, batch)
        for j, v in enumerate(data):
            row_bytes = i64(nbytes(v.type).coef)  # bytes of one batch row
            src, dst = pointer(sources, j), pointer(table, slot[v])
            with for_range(b, n, "row") as r:
                index = b.load(b.gep(order, [b.add(begin, r)], source_etype=I64), typ=I64)
                to = b.gep(dst, [b.mul(r, row_bytes)], inbounds=True, source_etype=I8)
                frm = b.gep(src, [b.mul(index, row_bytes)], inbounds=True, source_etype=I8)
                memcpy(b, to, frm, row_bytes)
        b.call(entry, [table, n])
        width = sum(size for _, size in logged)
        column = 0
        for index, size in logged:
            at = b.add(b.mul(k, i64(width)), i64(column))
            to = b.gep(logs, [at], inbounds=True, source_etype=F32)
            if size == 1:
                b.store(b.load(pointer(table, index), typ=F32), to)
            else:
                memcpy(b, to, pointer(table, index), i64(4 * size))
            column += size
        count = b.add(k, i64(1))
        b.store(count, done)
        b.atomic_rmw("xchg", progress, count, "release")
        halt = b.load_atomic(stop, "acquire", 8, typ=I64)
        with b.if_then(b.icmp_signed("!=", halt, i64(0))):
            b.branch(finished)
    b.branch(finished)
    b.position_at_end(finished)
    restore_mode(b, saved)
    b.ret(b.load(done, typ=I64))
