"""Lowering a graph to one LLVM module: a kernel per node and one entry function.

    void kc_entry(ptr buffers[], i64 n)

``buffers`` holds one pointer per graph input and per node result, in the
order of ``Lowered.buffers``; ``n`` is the batch size. The entry calls the
kernels in the graph's order and allocates nothing. An output named like an
input (a weight's new value) is copied into that input's buffer at the end,
so weights and optimizer state are updated in place.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from llvmlite import ir

# The lowerings of fused kernels and of loops register themselves with their emitters.
import kcompile.codegen.lowering.batch_products
import kcompile.codegen.lowering.batch_rows
import kcompile.codegen.lowering.fused
import kcompile.codegen.lowering.patches
import kcompile.codegen.lowering.products
import kcompile.codegen.lowering.row_gather
import kcompile.codegen.lowering.scan  # noqa: F401
from kcompile.codegen.building.duplicates import merge_duplicates
from kcompile.codegen.building.jobs import parts_for
from kcompile.codegen.building.split import split_module
from kcompile.codegen.building.target import CompileTimes
from kcompile.codegen.fpmode import flush_denormals, restore_mode
from kcompile.codegen.loops import abi_function
from kcompile.codegen.lowering.epoch_loop import add_epoch_loop, has_epoch_loop
from kcompile.codegen.lowering.guards import Guards
from kcompile.codegen.lowering.mathfn import MathLib
from kcompile.codegen.lowering.step import (
    CYCLES,
    PROFILE_COUNTERS,
    StepContext,
    emit_step,
    kernel_nodes,
)
from kcompile.ir import Graph, abi
from kcompile.ir.buffers import BufferPlan, BufferSpec, plan_buffers

ENTRY = abi.ENTRY.symbol
# Names other modules import from here.
__all__ = [
    "CYCLES",
    "ENTRY",
    "PROFILE_COUNTERS",
    "BufferPlan",
    "Lowered",
    "kernel_nodes",
    "lower_graph",
    "plan_buffers",
]


@dataclass
class Lowered:
    llvm_ir: str
    buffers: list[BufferSpec]
    outputs: dict[str, int]  # output name -> buffer index holding it after a call
    times: CompileTimes = field(default_factory=CompileTimes)
    # The module cut into parts to compile in parallel (``codegen.building.split``); one: whole.
    parts: list[str] = field(default_factory=list)


def lower_graph(
    graph: Graph,
    times: CompileTimes | None = None,
    profile: bool = False,
    check: bool = False,
    parts: int | None = 1,
) -> Lowered:
    """The module of ``graph``; with ``profile``, the entry also counts the cycles and
    calls of each kernel, in the order of ``kernel_nodes``; with ``check``, it checks the
    buffers' guard zones after each kernel (``codegen.lowering.guards``). ``parts``: into how many
    modules to cut it (``Lowered.parts``); None: as many as pay on this machine."""
    times = times or CompileTimes()
    t0 = time.perf_counter()
    module = ir.Module(name=graph.name)
    plan = plan_buffers(graph)
    ctx = StepContext(module, MathLib(module), profile, Guards(module) if check else None)
    step = emit_step(ctx, graph, plan, "kc_step", "")
    entry = abi_function(module, abi.ENTRY)  # exported: the step in the flushing mode
    entry.args[0].name, entry.args[1].name = "buffers", "n"
    entry.args[0].add_attribute("noalias")
    b = ir.IRBuilder(entry.append_basic_block("entry"))
    saved = flush_denormals(b)
    b.call(step, list(entry.args))
    restore_mode(b, saved)
    b.ret_void()
    if has_epoch_loop(graph):
        add_epoch_loop(module, step, graph, plan.slot, plan.outputs)
    merge_duplicates(module)  # LLVM compiles each repeated kernel once
    text = str(module)
    count = parts_for(text) if parts is None else parts
    pieces = split_module(module, count) if count > 1 else [text]
    times.add("lower to LLVM IR", time.perf_counter() - t0)
    return Lowered(text, plan.buffers, plan.outputs, times, pieces)
