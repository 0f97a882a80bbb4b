"""The epoch loop in native code: many steps in one call.

    i64 kc_epoch(ptr buffers[], ptr sources[], ptr order, i64 batch, i64 total,
                 i64 first, i64 steps, ptr logs, ptr progress, ptr stop)

For each step ``s`` in ``first .. first + steps`` (while rows are left), the
loop gathers rows ``order[s*batch .. s*batch + n)`` of every batched data input
from its full array (``sources``, one pointer per batched data input in graph
order) into that input's buffer (each thread of the pool a share of the rows),
calls the step with ``n`` rows (the last batch may be short), and writes the
elements of each f32 result of fixed shape (``log_outputs``: the loss, metric
statistics) to ``logs[(s - first) * K + j ...]``, ``K`` elements a step. After each
step it stores the number of steps done into ``*progress`` (for a progress bar
reading it from another thread) and stops early when ``*stop`` is non-zero. It
returns the number of steps run.
"""

from __future__ import annotations

import math

from llvmlite import ir

from kcompile.codegen.fpmode import flush_denormals, restore_mode
from kcompile.codegen.library.parallel import CHUNK_FN, declare_parallel_for
from kcompile.codegen.loops import (
    F32,
    I8,
    I64,
    PTR,
    abi_function,
    chunk_range,
    for_range,
    i64,
    memcpy,
)
from kcompile.ir import Graph, Value, abi
from kcompile.ir.memory import nbytes
from kcompile.ir.signature import batched_data, logged_results

EPOCH = abi.EPOCH.symbol
# On: a step's rows are gathered by every thread of the pool, a share of the rows each
# (``_GatherChunk``): the rows come from random places in memory, and one thread's
# copies wait on one row's misses at a time. The MLP's epoch at batch 32 on 2 threads
# (Fashion-MNIST, 784 floats a row): wall per step min 129 -> 118 µs, median 172 -> 166
# (``benchmarks/epoch_flag_ab.py``, 16 epochs each, loaded host).
PARALLEL_GATHER = True


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
    gather = _GatherChunk(module, data) if PARALLEL_GATHER else None

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
        rows = b.gep(order, [begin], inbounds=True, source_etype=I64)
        ends = [(pointer(sources, j), pointer(table, slot[v])) for j, v in enumerate(data)]
        if gather is not None:
            threads = b.zext(b.call(_get_threads(module), []), I64)
            chunks = b.select(b.icmp_signed("<", n, threads), n, threads)
            ctx = _context(b, [rows, n, chunks, *(p for pair in ends for p in pair)])
            b.call(declare_parallel_for(module), [gather.entry, ctx, chunks])
        else:
            _gather_rows(b, data, rows, ends, i64(0), n)
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


def _gather_rows(b: ir.IRBuilder, data: list[Value], rows, ends, first, count) -> None:
    """Rows ``first .. first + count`` of the step: row ``r`` of each input's buffer from
    row ``rows[r]`` of its source (``ends``: (source, buffer) of each input)."""
    for v, (src, dst) in zip(data, ends):
        row_bytes = i64(nbytes(v.type).coef)  # bytes of one batch row
        with for_range(b, count, "row") as i:
            r = b.add(first, i)
            index = b.load(b.gep(rows, [r], source_etype=I64), typ=I64)
            to = b.gep(dst, [b.mul(r, row_bytes)], inbounds=True, source_etype=I8)
            frm = b.gep(src, [b.mul(index, row_bytes)], inbounds=True, source_etype=I8)
            memcpy(b, to, frm, row_bytes)


class _GatherChunk:
    """``void gather(ptr ctx, i64 i)``: part ``i`` of a step's gather, ``ctx`` holding
    the step's row indices, ``n``, the number of parts and each input's source and
    buffer (``_context``)."""

    def __init__(self, module: ir.Module, data: list[Value]) -> None:
        self.entry = ir.Function(module, CHUNK_FN, "kc_epoch_gather")
        self.entry.linkage = "internal"
        ctx, part = self.entry.args
        b = ir.IRBuilder(self.entry.append_basic_block("entry"))
        fields = [
            b.load(b.gep(ctx, [i64(i)], inbounds=True, source_etype=I64), typ=I64)
            for i in range(3 + 2 * len(data))
        ]
        rows = b.inttoptr(fields[0], PTR)
        n, chunks = fields[1], fields[2]
        ptrs = [b.inttoptr(f, PTR) for f in fields[3:]]
        ends = list(zip(ptrs[::2], ptrs[1::2]))
        first, count = chunk_range(b, n, part, chunks)
        _gather_rows(b, data, rows, ends, first, count)
        b.ret_void()


def _context(b: ir.IRBuilder, values: list[ir.Value]) -> ir.Value:
    """``values`` (pointers or i64) in an i64 array on the stack, made in the entry block
    (the loop reuses it every step)."""
    fn = b.function
    here = b.block
    b.position_at_start(fn.entry_basic_block)
    ctx = b.alloca(I64, size=i64(len(values)), name="gather_ctx")
    b.position_at_end(here)
    for i, v in enumerate(values):
        v = b.ptrtoint(v, I64) if isinstance(v.type, ir.PointerType) else v
        b.store(v, b.gep(ctx, [i64(i)], inbounds=True, source_etype=I64))
    return ctx


def _get_threads(module: ir.Module) -> ir.Function:
    existing = module.globals.get(abi.GET_THREADS.symbol)
    return existing if existing is not None else abi_function(module, abi.GET_THREADS)
