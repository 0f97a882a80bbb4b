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

import kcompile.codegen.fused
import kcompile.codegen.scan  # noqa: F401  (registers the loop lowering)
from kcompile.codegen.batch_split import batch_split, splits_by_rows
from kcompile.codegen.emitters import EMITTERS
from kcompile.codegen.epoch import add_epoch_loop, has_epoch_loop
from kcompile.codegen.guards import Guards
from kcompile.codegen.kernel import Kernel, Operand
from kcompile.codegen.loops import I64, PTR, memcpy
from kcompile.codegen.mathfn import MathLib
from kcompile.codegen.target import CompileTimes
from kcompile.ir import Graph, Node
from kcompile.ir.buffers import BufferPlan, BufferSpec, plan_buffers
from kcompile.ir.memory import Size, nbytes

ENTRY = "kc_entry"
# Above this many nodes kernels stay separate functions (compile time grows
# superlinearly with the size of one inlined entry; a 550-kernel LSTM step took 100 s).
INLINE_LIMIT = 96


PROFILE_COUNTERS = "kc_profile_counters"  # ptr to [kernels x 2] i64: cycles, calls
CYCLES = "kc_cycles"  # i64 (): the cycle counter, to turn cycles into seconds


@dataclass
class Lowered:
    llvm_ir: str
    buffers: list[BufferSpec]
    outputs: dict[str, int]  # output name -> buffer index holding it after a call
    times: CompileTimes = field(default_factory=CompileTimes)


def lower_graph(
    graph: Graph, times: CompileTimes | None = None, profile: bool = False, check: bool = False
) -> Lowered:
    """The module of ``graph``; with ``profile``, the entry also counts the cycles and
    calls of each kernel, in the order of ``kernel_nodes``; with ``check``, it checks the
    buffers' guard zones after each kernel (``codegen.guards``)."""
    times = times or CompileTimes()
    t0 = time.perf_counter()
    module = ir.Module(name=graph.name)
    plan = plan_buffers(graph)
    counters = KernelCounters(module, graph) if profile else None
    guards = Guards(module) if check else None
    entry = emit_step(module, MathLib(module), graph, plan, ENTRY, "", counters, guards)
    entry.linkage = ""  # exported
    if has_epoch_loop(graph):
        add_epoch_loop(module, entry, graph, plan.slot, plan.outputs)
    times.add("lower to LLVM IR", time.perf_counter() - t0)
    return Lowered(str(module), plan.buffers, plan.outputs, times)


class KernelCounters:
    """A global ``[kernels x 2] i64`` of cycles and calls, and the exported functions that
    read it and the cycle counter."""

    def __init__(self, module: ir.Module, graph: Graph, owner: str = "") -> None:
        """Counters of ``graph``'s kernels; ``owner`` names the kernel whose loop body
        ``graph`` is (its getter is ``kc_profile_counters_<owner>``)."""
        self.module = module
        self.used = 0
        suffix = f"_{owner}" if owner else ""
        self.clock = module.globals.get("llvm.readcyclecounter") or ir.Function(
            module, ir.FunctionType(I64, []), "llvm.readcyclecounter"
        )
        self.table_type = ir.ArrayType(I64, 2 * len(graph.nodes))
        self.table = ir.GlobalVariable(module, self.table_type, f"kc_profile_table{suffix}")
        self.table.initializer = ir.Constant(self.table_type, None)
        self.table.linkage = "internal"
        self.table.type = PTR  # llvmlite types globals as typed pointers; the module uses opaque
        getter = ir.Function(module, ir.FunctionType(PTR, []), PROFILE_COUNTERS + suffix)
        b = ir.IRBuilder(getter.append_basic_block("entry"))
        b.ret(self.table)
        if owner:
            return
        module.profiling = True  # loop bodies count their kernels too (codegen.scan)
        cycles = ir.Function(module, ir.FunctionType(I64, []), CYCLES)
        b = ir.IRBuilder(cycles.append_basic_block("entry"))
        b.ret(b.call(self.clock, []))

    def timed_call(self, b: ir.IRBuilder, kernel: ir.Function, args: list) -> None:
        index = self.used
        self.used += 1
        start = b.call(self.clock, [])
        b.call(kernel, args)
        spent = b.sub(b.call(self.clock, []), start)
        for slot, amount in ((2 * index, spent), (2 * index + 1, ir.Constant(I64, 1))):
            ptr = b.gep(
                self.table,
                [ir.Constant(I64, 0), ir.Constant(I64, slot)],
                source_etype=self.table_type,
            )
            b.store(b.add(b.load(ptr, typ=I64), amount), ptr)


def kernel_nodes(graph: Graph, plan: BufferPlan, prefix: str = "") -> list[tuple[str, Node]]:
    """The nodes that get a kernel, each with its kernel's name, in call order (a
    reshape that is a view of its operand gets none)."""
    out = []
    for i, node in enumerate(graph.nodes):
        if node.traits.view and plan.slot[node.outputs[0]] == plan.slot[node.inputs[0]]:
            continue
        out.append((f"{prefix}k{i}_{node.op}", node))
    return out


def emit_step(
    module: ir.Module,
    math_lib: MathLib,
    graph: Graph,
    plan: BufferPlan,
    name: str,
    prefix: str,
    counters: KernelCounters | None = None,
    guards: Guards | None = None,
) -> ir.Function:
    """``void name(ptr buffers[], i64 n)``: the graph's kernels in order over the buffers of
    ``plan``, then the copies of results into the inputs they replace."""
    slot, buffers = plan.slot, plan.buffers
    kernels = []
    inline = len(graph.nodes) <= INLINE_LIMIT
    for kernel_name, node in kernel_nodes(graph, plan, prefix):
        emit = EMITTERS.get(node.op)
        if emit is None:
            raise NotImplementedError(f"codegen: no lowering for op {node.op!r}")
        values = [*node.outputs, *node.inputs]
        # One argument per distinct buffer, so noalias holds and an in-place result
        # is visibly the same pointer as the operand it overwrites.
        slots = list(dict.fromkeys(slot[v] for v in values))
        k = Kernel(module, kernel_name, len(slots), inline=inline)
        arg_of = dict(zip(slots, k.args))
        ops = [Operand(arg_of[slot[v]], v.dtype, []) for v in values]
        emit(k, math_lib, node, ops[: len(node.outputs)], ops[len(node.outputs) :])
        k.finish()
        called = k.fn
        if splits_by_rows(node):
            argument = {v: slots.index(slot[v]) for v in values}
            called = batch_split(module, k.fn, node, argument)
        kernels.append((called, slots))

    fn = ir.Function(module, ir.FunctionType(ir.VoidType(), [PTR, I64]), name)
    fn.linkage = "internal"
    table, n = fn.args
    table.name, n.name = "buffers", "n"
    table.add_attribute("noalias")
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    pointers = [
        b.load(b.gep(table, [ir.Constant(I64, i)], inbounds=True, source_etype=PTR), typ=PTR)
        for i in range(len(buffers))
    ]
    for index, (kernel, slots) in enumerate(kernels):
        args = [pointers[s] for s in slots] + [n]
        if counters is None:
            b.call(kernel, args)
        else:
            counters.timed_call(b, kernel, args)
        if guards is not None:
            guards.after(b, index)

    for dst, src, v in plan.copy_back:
        _memcpy(b, pointers[dst], pointers[src], nbytes(v.type), n)
    b.ret_void()
    return fn


def _memcpy(b: ir.IRBuilder, dst, src, nbytes: Size, n) -> None:
    size = ir.Constant(I64, nbytes.coef)
    for _ in range(nbytes.power):
        size = b.mul(size, n)
    memcpy(b, dst, src, size)
