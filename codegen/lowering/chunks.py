"""Loops split into chunks that the runtime's parallel-for runs on its threads."""

from __future__ import annotations

from collections.abc import Sequence

from llvmlite import ir

from kcompile.codegen.library.parallel import PARALLEL_MIN_WORK, chunk_count, declare_parallel_for
from kcompile.codegen.loops import i64
from kcompile.codegen.lowering.kernel import Kernel, Operand
from kcompile.ir.memory import Size


def in_parallel(
    k: Kernel,
    elements: Size,
    emit,
    outs: list[Operand],
    ins: list[Operand],
    weight: int = 1,
    extra: Sequence[ir.Value] = (),
    min_sample: int = 0,
) -> ir.Value | None:
    """Emit a loop as ``emit(kernel, outs, ins, part)`` into a chunk function that the
    runtime's parallel-for calls with ``part = (chunk, chunks, *extra)``: chunks of the
    outermost axis as ``codegen.library.parallel.chunk_count`` decides, counting an element as
    ``weight``; ``extra`` are i64 values the chunks read. Returns the number of chunks,
    or None for a loop that is always too small, emitted in place with ``part = None``:
    one of static size under ``PARALLEL_MIN_WORK``, or a batched one whose sample weighs
    under ``min_sample`` (every chunk function is more code for LLVM to compile)."""
    small = PARALLEL_MIN_WORK if elements.power == 0 else min_sample
    if elements.coef * weight < small:
        emit(k, outs, ins, None)
        return None
    name, n = f"{k.fn.name}_chunk", 1
    while name in k.module.globals:  # a kernel of several loops (a pad: fill, then copy)
        name, n = f"{k.fn.name}_chunk{n}", n + 1
    chunk = Kernel.callback(k.module, name, len(k.args), 1, 1 + len(extra))
    part = (chunk.params[0], *chunk.extra)
    emit(chunk, chunk.operands_from(k, outs), chunk.operands_from(k, ins), part)
    chunk.finish()
    b = k.b
    chunks = chunk_count(b, b.mul(k.value(elements), i64(weight)))
    b.call(declare_parallel_for(k.module), [chunk.entry, k.context([chunks, *extra]), chunks])
    return chunks
