"""One step function: a graph's kernels called in order over a table of buffers.

``emit_step`` is shared by the entry of a module (``codegen.lowering.module``) and by the
loop lowering, which emits a loop body as a step of its own (``codegen.lowering.scan``). The
lowering context travels explicitly: the module, its math library, whether kernels are
profiled and the checking mode's guards. Loop ops (``nested_graph`` trait) are lowered
by a region emitter, which gets the context; every other op by its emitter in
``codegen.lowering.emitters``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace

from llvmlite import ir

from kcompile.codegen.loops import I64, PTR, abi_function, memcpy
from kcompile.codegen.lowering.batch_split import batch_split, splits_by_rows
from kcompile.codegen.lowering.emitters import EMITTERS
from kcompile.codegen.lowering.guards import Guards
from kcompile.codegen.lowering.kernel import Kernel, Operand
from kcompile.codegen.lowering.mathfn import MathLib
from kcompile.ir import Graph, Node, Value, abi
from kcompile.ir.buffers import BufferPlan
from kcompile.ir.memory import Size, nbytes

# A loop body's kernels are inlined into its step up to this many nodes (compile time
# grows superlinearly with the size of one inlined entry; a 550-kernel LSTM step took
# 100 s): they are called once a time step, and the LSTM's train step ran ~4% slower
# with them called. A top-level step's kernels, called once a step, stay functions of
# their own, each optimized alone: LLVM's time for the CNN's, MLP's and encoder's train
# and predict steps 10-30% less, their steps as fast (2-core AMD EPYC, fresh processes
# alternating, the host's noise ±10%; docs/speed.md has the figures).
INLINE_LIMIT = 96

PROFILE_COUNTERS = abi.PROFILE_COUNTERS.symbol  # ptr to [kernels x 2] i64: cycles, calls
CYCLES = abi.CYCLES.symbol  # the cycle counter, to turn cycles into seconds


@dataclass(frozen=True)
class NodeLowering:
    """A loop's own lowering of one node of its body (``codegen.lowering.scan``'s packed
    products): ``emit(k, outs, ins, extra)``, where the kernel also gets the buffers of
    ``extra``'s values (what a node that absorbs its neighbours' work reads and writes)."""

    emit: Callable[[Kernel, list[Operand], list[Operand], list[Operand]], None]
    extra: tuple[Value, ...] = ()


@dataclass(frozen=True)
class StepContext:
    """What lowering a step needs besides its graph."""

    module: ir.Module
    math: MathLib
    profile: bool = False  # count the cycles and calls of every kernel, loop bodies' too
    guards: Guards | None = None  # check the buffers' guard zones after each kernel
    lowerings: Mapping[Node, NodeLowering] | None = None  # nodes lowered by their loop

    def for_body(self) -> StepContext:
        """The context of a loop body: its kernels are profiled like the step's, and the
        checking mode checks the loop as one kernel."""
        return replace(self, guards=None, lowerings=None)


RegionEmitter = Callable[[StepContext, Kernel, Node, list[Operand], list[Operand]], None]
REGION_EMITTERS: dict[str, RegionEmitter] = {}


def emits_region(*ops: str) -> Callable[[RegionEmitter], RegionEmitter]:
    """Register the lowering of an op that holds a graph lowered as a step of its own."""

    def register(fn: RegionEmitter) -> RegionEmitter:
        for op in ops:
            REGION_EMITTERS[op] = fn
        return fn

    return register


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
        getter = abi_function(module, abi.PROFILE_COUNTERS, PROFILE_COUNTERS + suffix)
        b = ir.IRBuilder(getter.append_basic_block("entry"))
        b.ret(self.table)
        if owner:
            return
        cycles = abi_function(module, abi.CYCLES)
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
    ctx: StepContext,
    graph: Graph,
    plan: BufferPlan,
    name: str,
    prefix: str,
    owner: str = "",
    in_loop: bool = False,
) -> ir.Function:
    """``void name(ptr buffers[], i64 n)``: the graph's kernels in order over the buffers of
    ``plan``, then the copies of results into the inputs they replace. ``owner`` names the
    kernel whose loop body ``graph`` is, if it is one; ``in_loop``: the step runs once a
    time step (its kernels are inlined into it, up to ``INLINE_LIMIT``)."""
    module = ctx.module
    counters = KernelCounters(module, graph, owner) if ctx.profile else None
    slot, buffers = plan.slot, plan.buffers
    kernels = []
    inline = in_loop and len(graph.nodes) <= INLINE_LIMIT
    for kernel_name, node in kernel_nodes(graph, plan, prefix):
        own = (ctx.lowerings or {}).get(node)
        values = [*node.outputs, *node.inputs, *(own.extra if own else ())]
        # One argument per distinct buffer, so noalias holds and an in-place result
        # is visibly the same pointer as the operand it overwrites.
        slots = list(dict.fromkeys(slot[v] for v in values))
        k = Kernel(module, kernel_name, len(slots), inline=inline)
        arg_of = dict(zip(slots, k.args))
        ops = [Operand(arg_of[slot[v]], v.dtype, []) for v in values]
        outs, ins = len(node.outputs), len(node.outputs) + len(node.inputs)
        if own is not None:
            own.emit(k, ops[:outs], ops[outs:ins], ops[ins:])
        else:
            _emit_node(ctx, k, node, ops[:outs], ops[outs:ins])
        k.finish()
        called = k.fn
        if own is None and splits_by_rows(node):
            argument = {v: slots.index(slot[v]) for v in values}
            called = batch_split(module, k.fn, node, argument)
        kernels.append((called, slots))

    fn = abi_function(module, abi.ENTRY, name)  # a loop body's step too
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
        if ctx.guards is not None:
            ctx.guards.after(b, index)

    for dst, src, v in plan.copy_back:
        _memcpy(b, pointers[dst], pointers[src], nbytes(v.type), n)
    b.ret_void()
    return fn


def _emit_node(ctx: StepContext, k: Kernel, node: Node, outs, ins) -> None:
    region = REGION_EMITTERS.get(node.op)
    if region is not None:
        region(ctx, k, node, outs, ins)
        return
    emit = EMITTERS.get(node.op)
    if emit is None:
        raise NotImplementedError(f"codegen: no lowering for op {node.op!r}")
    emit(k, ctx.math, node, outs, ins)


def _memcpy(b: ir.IRBuilder, dst, src, nbytes: Size, n) -> None:
    size = ir.Constant(I64, nbytes.coef)
    for _ in range(nbytes.power):
        size = b.mul(size, n)
    memcpy(b, dst, src, size)
