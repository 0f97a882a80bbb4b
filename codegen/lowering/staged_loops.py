"""An elementwise loop body whose costly functions feed one another, run in two stages
over each row.

An LSTM's gate kernel computes three logistics and a tanh of the step's product, then
``c = f·c' + i·g`` and ``tanh(c)`` from those: at each element a chain of two polynomial
exps, two divisions and the FMAs between them. In one loop over the elements the
out-of-order core holds little more than one iteration of ~200 instructions, so it runs
at the chain's latency (``perf``: the samples pile up behind the second tanh's division),
not at the math's throughput. Here the body's nodes that a costly op (a transcendental
function, ``traits.cost``) reaches through another costly op form a second stage: a row's
first loop computes the gates and ``c`` and stores them, its second loop reads back
``c`` and ``o`` (from L1: a row is 128 floats) and computes ``tanh(c)`` and ``h``; each
loop's chains are half as long, so several iterations overlap. A value handed from one
stage to the other is read from its result's buffer, or from a row of scratch on the
stack when it is not a result (a GRU's ``x_h + r·(h·U_h)``, its candidate's argument).
The results are one loop's bits: every value is computed by the same operations on the
same operands, and no product crosses the stages (``stages``: one loop may fuse it into
a sum).

It applies to a fused elementwise node of rank-2 results inside a loop split by batch
rows (``codegen.lowering.scan``: the kernel runs on its thread's slice, so the loop over rows is
not split again), unless a result of the first stage overwrites an operand that the
second reads.
"""

from __future__ import annotations

from llvmlite import ir

from kcompile.codegen.loops import for_range, i64
from kcompile.codegen.lowering.fused import evaluate_body, fused
from kcompile.codegen.lowering.kernel import LLVM_TYPES, Kernel, Operand, broadcast_strides
from kcompile.codegen.lowering.mathfn import MathLib
from kcompile.codegen.lowering.step import NodeLowering
from kcompile.ir import Graph, Node, Value
from kcompile.ir.memory import size_of

# An op of at least this cost (``traits.cost``: exp, logistic, tanh, ...) starts a chain.
COSTLY = 9
# Ops whose float result LLVM may fuse into the add or subtract that reads it
# (``codegen.lowering.scalar``'s ``contract`` flag).
CONTRACTED = frozenset({"mul"})


def stages(body: Graph) -> tuple[list[Node], list[Node]] | None:
    """(first stage, second stage) of an elementwise body, or None: the second stage
    holds the nodes that a costly op reaches through another costly op, the products
    that only they read, and again the constants they read (cheaper made twice than
    stored). A product must not be handed from one stage to the other: in one loop LLVM
    may contract it into the sum that reads it (an FMA), which then rounds once, so the
    stages would not give one loop's bits (a GRU's ``z·h + (1 - z)·tanh(...)``). None
    when no costly op reaches another, or when a product the second stage reads is also
    a result or read by the first."""
    depth: dict[Value, int] = {}
    late = set()
    for node in body.nodes:
        d = max((depth.get(v, 0) for v in node.inputs), default=0)
        d += node.traits.cost >= COSTLY
        depth.update(dict.fromkeys(node.outputs, d))
        if d >= 2:
            late.add(node)
    if not late:
        return None
    users = body.users()
    results = {v for _, v in body.outputs}
    while True:
        early = [n for n in body.nodes if n not in late]
        products = [v for v in crossing(body, early, late) if v.node.op in CONTRACTED]
        if not products:
            break
        for v in products:
            if v in results or any(u not in late for u in users[v]):
                return None
            late.add(v.node)
    read = {v for n in late for v in n.inputs}
    late |= {n for n in early if not n.inputs and n.outputs[0] in read}
    return early, [n for n in body.nodes if n in late]


def crossing(body: Graph, early, late) -> list[Value]:
    """The values the second stage reads from the first (stored by the first loop)."""
    made_late = {v for n in late for v in n.outputs}
    made_early = {v for n in early for v in n.outputs} - made_late
    ordered = [n for n in body.nodes if n in set(late)]
    return list(dict.fromkeys(v for n in ordered for v in n.inputs if v in made_early))


def staged_lowering(node: Node, math: MathLib) -> NodeLowering | None:
    """The lowering of ``node`` (a fused elementwise node) in two stages per row, or
    None where it does not apply (module docstring)."""
    if node.op != "fused" or node.attrs["kind"] != "elementwise":
        return None
    body: Graph = node.attrs["body"]
    shape = node.outputs[0].shape
    if len(shape) != 2 or any(v.shape != shape for v in node.outputs):
        return None
    split = stages(body)
    if split is None:
        return None
    early, late = split
    slices = [n for n in body.nodes if n.op == "slice"]
    if any(n in late or not _column_slice(n) for n in slices):
        return None
    return NodeLowering(lambda k, outs, ins, extra: _emit(k, math, node, early, late, outs, ins))


def _emit(k: Kernel, math: MathLib, node: Node, early, late, outs, ins) -> None:
    b = k.b
    body: Graph = node.attrs["body"]
    shape = node.outputs[0].shape
    width = shape[1]
    slices = [n for n in body.nodes if n.op == "slice"]
    operand = dict(zip(body.inputs, ins))
    late_set = set(late)
    made_late = {v for n in late for v in n.outputs}
    results = [v for _, v in body.outputs]
    late_reads = {v for n in late for v in n.inputs} - made_late
    first_writes = {id(op.ptr) for v, op in zip(results, outs) if v not in made_late}
    if any(id(operand[v].ptr) in first_writes for v in late_reads if v in operand):
        fused(k, math, node, outs, ins)  # a first-stage result overwrites what the second reads
        return
    # Where the second stage finds each value of the first it reads: its result's row,
    # else a row of scratch on the stack.
    stored = {}
    for v, op in zip(results, outs):
        stored.setdefault(v, op)
    passed = crossing(body, early, late)
    scratch = {v: _scratch_row(k, v, width) for v in passed if v not in stored}

    def load_inputs(env, r, c, wanted) -> None:
        for v, op, x in zip(body.inputs, ins, node.inputs):
            if v in wanted:
                env[v] = k.load(op, _at(k, x.shape, shape, r, c))

    def store(env, r, c, which) -> None:
        for v, op in zip(results, outs):
            if which(v):
                k.store(op, b.add(b.mul(r, i64(width)), c), env[v])

    users = body.users()
    sliced_only = {v for v in body.inputs if all(u in slices for u in users.get(v, []))}
    sliced_only -= set(results)
    rows = k.value(size_of(shape[0]))
    with for_range(b, rows, "r") as r:
        with for_range(b, i64(width), "stage1") as c:
            env: dict = {}
            load_inputs(env, r, c, set(body.inputs) - sliced_only)
            _load_slices(k, slices, operand, env, r, c)
            evaluate_body(k, math, body, env, skip=set(slices) | (late_set - set(early)))
            store(env, r, c, lambda v: v not in made_late)
            for v, row in scratch.items():
                k.store(row, c, env[v])
        with for_range(b, i64(width), "stage2") as c:
            env = {}
            for v in passed:
                if v in scratch:
                    env[v] = k.load(scratch[v], c)
                else:
                    env[v] = k.load(stored[v], b.add(b.mul(r, i64(width)), c))
            load_inputs(env, r, c, late_reads - set(passed))
            evaluate_body(k, math, body, env, skip=set(body.nodes) - late_set)
            store(env, r, c, lambda v: v in made_late)


def _scratch_row(k: Kernel, v: Value, width: int) -> Operand:
    """A row of ``width`` elements of ``v``'s type on the kernel's stack."""
    b = k.b
    here = b.block
    b.position_at_start(k.fn.entry_basic_block)
    row = b.alloca(ir.ArrayType(LLVM_TYPES[v.dtype], width), name="stage_row")
    row.type = ir.PointerType()  # opaque, as the module's other pointers
    b.position_at_end(here)
    return Operand(row, v.dtype, [])


def _column_slice(n: Node) -> bool:
    """Whether slice ``n`` takes columns of every row of a rank-2 operand."""
    x = n.inputs[0]
    return (
        len(x.shape) == 2
        and isinstance(x.shape[1], int)
        and n.attrs["begin"][0] == 0
        and n.outputs[0].shape[0] == x.shape[0]
    )


def _at(k: Kernel, x_shape, shape, r, c):
    """The offset of element (r, c) of an operand of ``x_shape`` broadcast to ``shape``."""
    b = k.b
    row, col = broadcast_strides(x_shape, shape)
    at = i64(0) if row.is_zero else b.mul(r, k.value(row))
    if not col.is_zero:
        at = b.add(at, c if col.is_one else b.mul(c, k.value(col)))
    return at


def _load_slices(k: Kernel, slices, operand: dict[Value, Operand], env, r, c) -> None:
    b = k.b
    for n in slices:
        x = n.inputs[0]
        start = b.add(b.mul(r, i64(x.shape[1])), i64(n.attrs["begin"][1]))
        env[n.outputs[0]] = k.load(operand[x], b.add(start, c))
