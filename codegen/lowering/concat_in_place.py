"""A loop body's concatenation written in place by the kernel that computes its parts.

The backward step of an LSTM computes its four gates' gradients in one elementwise
kernel, [N, 128] each, and concatenates them into the [N, 512] that the step's product
and its per-step output read: a copy of every element once more, at every step. Here
that kernel stores each part straight into its columns of the concatenation and the
concat's own kernel does nothing.

It applies inside a loop split by batch rows (``codegen.lowering.scan``: the kernel runs on its
thread's slice), to a concat along the last axis of distinct rank-2 results of one
fused elementwise node (a part that something else reads is stored in its own buffer
too; a GRU joins its gradients twice, in two orders), when the concatenation's storage
shares no byte with a value live from that kernel to the concat (the concatenation is
now written earlier).
"""

from __future__ import annotations

from kcompile.codegen.loops import for_range, i64
from kcompile.codegen.lowering.fused import evaluate_body
from kcompile.codegen.lowering.kernel import Kernel, Operand, broadcast_strides
from kcompile.codegen.lowering.mathfn import MathLib
from kcompile.codegen.lowering.scalar import SCALAR_RULES
from kcompile.codegen.lowering.step import NodeLowering
from kcompile.ir import Graph, Node
from kcompile.ir.memory import MemoryPlan, size_of

_OWN = ("constant", "broadcast_to")  # what ``evaluate_body`` lowers besides scalar rules


def concats_in_place(body: Graph, math: MathLib) -> dict[Node, NodeLowering]:
    """The lowerings of each qualifying concat (nothing) and of the node making its parts
    (each part stored in its columns of every concat that takes it, and in its own
    buffer only when something else reads it)."""
    users = body.users()
    results = {v for _, v in body.outputs}
    joins: dict[Node, list[Node]] = {}  # a maker -> the concats of its parts
    for concat in body.nodes:
        maker = _maker(concat)
        if maker is not None:
            joins.setdefault(maker, []).append(concat)
    for maker, concats in joins.items():
        # A part that only joined concats read is never stored in its own buffer, which
        # may then overlap them; refusing one concat may make a part stored after all.
        while True:
            unwritten = {
                v
                for v in maker.outputs
                if v not in results and set(users.get(v, [])) <= set(concats)
            }
            kept = [c for c in concats if not _overlaps(body, maker, c, unwritten)]
            if kept == concats:
                break
            concats[:] = kept
    lowerings: dict[Node, NodeLowering] = {}
    for maker, concats in joins.items():
        if not concats:
            continue
        lowerings[maker] = _maker_lowering(maker, concats, users, results, math)
        for concat in concats:
            lowerings[concat] = NodeLowering(lambda k, outs, ins, extra: None)
    return lowerings


def _maker(concat: Node) -> Node | None:
    """The fused elementwise node whose distinct rank-2 results ``concat`` joins on their
    last axis, if it is one whose body ``evaluate_body`` lowers."""
    if concat.op != "concat" or concat.outputs[0].rank != 2 or concat.attrs["axis"] not in (1, -1):
        return None
    parts = list(concat.inputs)
    maker = parts[0].node
    if maker is None or maker.op != "fused" or maker.attrs["kind"] != "elementwise":
        return None
    if len(set(parts)) != len(parts) or any(v.node is not maker for v in parts):
        return None
    shape = maker.outputs[0].shape
    if len(shape) != 2 or any(v.shape != shape for v in maker.outputs):
        return None
    inner: Graph = maker.attrs["body"]
    lowered = (
        n.op in SCALAR_RULES or n.op in _OWN or _column_slice(n, inner, shape) for n in inner.nodes
    )
    return maker if all(lowered) else None


def _column_slice(node: Node, body: Graph, shape) -> bool:
    """A slice of columns of one of the body's rank-2 inputs, all of its rows, of the
    loop's ``shape`` (a GRU's gate out of the step's product): read in place."""
    if node.op != "slice" or node.inputs[0] not in body.inputs or node.inputs[0].rank != 2:
        return False
    (r0, _), (r1, _) = node.attrs["begin"], node.attrs["end"]
    x = node.inputs[0]
    whole_rows = r0 == 0 and r1 == x.shape[0]
    return whole_rows and isinstance(x.shape[1], int) and node.outputs[0].shape == shape


def _overlaps(body: Graph, maker: Node, concat: Node, unwritten: set) -> bool:
    """Whether the concatenation's storage may share bytes with a value live from the
    maker's kernel to the concat's (which the maker's early writes would clobber), but
    for the maker's ``unwritten`` results."""
    memory = body.memory
    if memory is None or memory.per_row_bytes is None:
        return True
    first, last = body.nodes.index(maker), body.nodes.index(concat)
    joined = concat.outputs[0]
    for v, allocation in memory.allocations.items():
        if allocation.start > last or allocation.end < first or v in unwritten:
            continue
        if memory.root(v) is not memory.root(joined) and _shares_storage(memory, v, joined):
            return True
    return False


def _shares_storage(memory: MemoryPlan, u, v) -> bool:
    """Whether two values of a loop body's memory plan may share bytes (True when their
    place is not known; a value outside the plan is the caller's, not the loop's)."""
    if u not in memory.allocations or v not in memory.allocations:
        return False
    if memory.root(u) is memory.root(v):
        return True
    mine, theirs = _interval(memory, u), _interval(memory, v)
    if mine is None or theirs is None:
        return True
    return mine[0] == theirs[0] and theirs[1] < mine[2] and mine[1] < theirs[2]


def _interval(memory: MemoryPlan, v) -> tuple[int, int, int] | None:
    """(region, first byte, end) of ``v``'s storage: bytes per batch row in the per-row
    region (1), bytes in the fixed one (0)."""
    allocation = memory.allocations.get(memory.root(v))
    if allocation is None or allocation.offset < 0:
        return None
    region, offset = memory.region_offset(v)
    return region, offset, offset + allocation.size.coef


def _maker_lowering(
    maker: Node, concats: list[Node], users, results, math: MathLib
) -> NodeLowering:
    body: Graph = maker.attrs["body"]
    shape = maker.outputs[0].shape
    width = shape[1]
    slices = {n for n in body.nodes if n.op == "slice"}
    joined = tuple(c.outputs[0] for c in concats)
    # (result index, where: -1 its own buffer or a concat's index, row width, first column)
    stores = []
    for index, value in enumerate(maker.outputs):
        joining = set()
        for at, concat in enumerate(concats):
            if value in concat.inputs:
                first = sum(v.shape[1] for v in concat.inputs[: concat.inputs.index(value)])
                stores.append((index, at, concat.outputs[0].shape[1], first))
                joining.add(concat)
        if value in results or any(n not in joining for n in users.get(value, [])):
            stores.append((index, -1, width, 0))

    def emit(k: Kernel, outs: list[Operand], ins: list[Operand], extra: list[Operand]) -> None:
        b = k.b
        rows = k.value(size_of(shape[0]))
        operand = dict(zip(body.inputs, ins))
        read = {v for n in body.nodes if n not in slices for v in n.inputs}
        read |= {v for _, v in body.outputs}
        with for_range(b, rows, "r") as r, for_range(b, i64(width), "c") as c:
            env = {}
            for v, op, x in zip(body.inputs, ins, maker.inputs):
                if v not in read:
                    continue  # only sliced
                row, col = broadcast_strides(x.shape, shape)
                at = i64(0) if row.is_zero else b.mul(r, k.value(row))
                if not col.is_zero:
                    at = b.add(at, c if col.is_one else b.mul(c, k.value(col)))
                env[v] = k.load(op, at)
            for n in slices:
                x = n.inputs[0]
                start = b.add(b.mul(r, i64(x.shape[1])), i64(n.attrs["begin"][1]))
                env[n.outputs[0]] = k.load(operand[x], b.add(start, c))
            evaluate_body(k, math, body, env, skip=slices)
            for index, where, row_width, first in stores:
                op = outs[index] if where < 0 else extra[where]
                at = b.add(b.mul(r, i64(row_width)), b.add(c, i64(first)))
                k.store(op, at, env[body.outputs[index][1]])

    return NodeLowering(emit, extra=joined)
