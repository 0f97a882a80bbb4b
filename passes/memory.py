"""Memory planning: liveness over the schedule, one arena, reuse, in-place updates.

Writes an ``ir.memory.MemoryPlan`` into the graph. Reshapes are views of their
operand. A result that replaces a graph input (a weight, an optimizer slot)
is written straight into that input's buffer when the kernel that makes it
reads the input only at the element it writes (elementwise, fused loops) and
every other reader ran before it (``schedule`` guarantees the order).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from kcompile.ir.graph import LOOP_ROLES, Graph, Node, Value
from kcompile.ir.memory import Allocation, MemoryPlan, assign_offsets, nbytes
from kcompile.ir.ops.scan import workspace_types
from kcompile.passes.schedule import in_place_targets

DEFAULT_MAX_BATCH = 32


def _elementwise_at_same_index(node: Node, target: Value, result: Value) -> bool:
    """Whether ``node`` reads ``target`` only at the index where it writes ``result``
    (the op's ``in_place`` trait), or not at all."""
    in_place = node.traits.in_place
    if in_place is not None:
        return in_place(node, target, result)
    return target not in node.inputs


def plan_memory(graph: Graph, max_batch: int = DEFAULT_MAX_BATCH) -> Graph:
    """Plan ``graph`` (in place). A loop body (inputs with loop roles) also gets
    storage for its carries and step inputs, laid out in two regions (fixed and per
    batch row) so that the loop's workspace is exact for every batch size."""
    for node in graph.nodes:
        if node.traits.nested_graph:  # a loop: its body needs a workspace
            _size_workspace(node, max_batch)
    position = {n: i for i, n in enumerate(graph.nodes)}
    end_of_graph = len(graph.nodes)
    last_use: dict[Value, int] = {}
    for node in graph.nodes:
        for v in node.inputs:
            last_use[v] = position[node]
    for _, v in graph.outputs:
        last_use[v] = end_of_graph
    plan = MemoryPlan(max_batch)
    loop_body = any(v.role in LOOP_ROLES for v in graph.inputs)
    if loop_body:
        # Written before the body runs and read until its end: live throughout.
        for v in graph.inputs:
            if v.role in ("carry", "step"):
                plan.allocations[v] = Allocation(0, end_of_graph, nbytes(v.type))
    for node in graph.nodes:
        for v in node.outputs:
            start = position[node]
            plan.allocations[v] = Allocation(
                start, max(last_use.get(v, start), start), nbytes(v.type)
            )
    for node in graph.nodes:
        if node.traits.view:
            plan.allocations[node.outputs[0]].alias = node.inputs[0]
    users = graph.users()
    for result, target in in_place_targets(graph).items():
        writer = result.node
        a = plan.allocations[result]
        if a.alias is not None or not _elementwise_at_same_index(writer, target, result):
            continue
        readers = [u for u in users.get(target, []) if u is not writer]
        if all(position[u] < position[writer] for u in readers) and not _viewed_later(
            plan, target, position[writer]
        ):
            a.alias = target
    _extend_roots(plan)
    if loop_body:
        _layout_regions(plan, graph.name)
    else:
        offsets, plan.arena_bytes = plan.layout(max_batch)
        for v, off in offsets.items():
            plan.allocations[v].offset = off
    graph.memory = plan
    return graph


def _size_workspace(node: Node, max_batch: int) -> None:
    """Write the body's storage needs into the scan's ``workspace`` attribute and results."""
    body: Graph = node.attrs["body"]
    if body.memory is None:
        plan_memory(body, max_batch)
    workspace = (body.memory.arena_bytes, body.memory.per_row_bytes)
    node.attrs["workspace"] = workspace
    first = len(body.outputs)  # after the final carries and the stacked outputs
    for v, t in zip(node.outputs[first : first + 2], workspace_types(*workspace)):
        v.type = t


def _layout_regions(plan: MemoryPlan, name: str) -> None:
    regions: tuple[dict, dict] = ({}, {})
    for v, a in plan.allocations.items():
        if a.alias is not None:
            continue
        if a.size.power > 1:
            raise NotImplementedError(
                f"loop body {name}: a value of {a.size.coef}*N^{a.size.power} bytes "
                "(only sizes linear in the batch are supported in a loop)"
            )
        regions[a.size.power][v] = (a.start, a.end, a.size.coef)
    offsets, plan.arena_bytes = assign_offsets(regions[0])
    rows, plan.per_row_bytes = assign_offsets(regions[1])
    for v, off in (offsets | rows).items():
        plan.allocations[v].offset = off


def _viewed_later(plan: MemoryPlan, target: Value, at: int) -> bool:
    """A view of ``target`` still read after ``at`` would see the new value."""
    return any(a.alias is target and a.end > at for a in plan.allocations.values())


def _extend_roots(plan: MemoryPlan) -> None:
    """A value viewed through a reshape lives as long as its views."""
    for v, a in plan.allocations.items():
        root = plan.root(v)
        if root is not v and root in plan.allocations:
            r = plan.allocations[root]
            r.end = max(r.end, a.end)


@dataclass
class MemoryReport:
    batch: int
    arena: int
    buffers: int
    by_category: dict[str, int]
    inputs_by_role: dict[str, int]
    peaks: dict[int, int]
    # Weights and state held narrower than f32 (a quantized model's int8 kernels, bf16
    # variables): dtype name -> (bytes, the bytes they would take in f32).
    narrow_inputs: dict[str, tuple[int, int]] = field(default_factory=dict)

    def text(self) -> str:
        lines = [
            f"memory at batch {self.batch}:",
            f"  arena (peak of intermediates):       {_fmt(self.arena)}",
            f"  sum of all buffers (one per result): {_fmt(self.buffers)}"
            f" (the arena is {self.arena / max(self.buffers, 1):.0%} of it)",
        ]
        for name, size in self.by_category.items():
            lines.append(f"    {name:<32}{_fmt(size)}")
        lines.append("  held outside the arena:")
        for role, size in self.inputs_by_role.items():
            lines.append(f"    {role:<32}{_fmt(size)}")
        for dtype, (size, as_f32) in self.narrow_inputs.items():
            saved = f"{_fmt(as_f32)} in float32: {_fmt(as_f32 - size)} saved"
            lines.append(f"    {'of which ' + dtype:<32}{_fmt(size)} ({saved})")
        lines.append(
            "  arena by batch size: " + ", ".join(f"{b}: {_fmt(s)}" for b, s in self.peaks.items())
        )
        return "\n".join(lines)


def _fmt(n: int) -> str:
    if n < 1024:
        return f"{n} B"
    if n < 1 << 20:
        return f"{n / 1024:.1f} KiB"
    return f"{n / (1 << 20):.2f} MiB"


ROLE_NAMES = {
    "param": "weights",
    "state": "non-trainable state",
    "opt": "optimizer state",
    "data": "input batch",
}


VIEW = "views (reshapes, no copy)"
IN_PLACE = "written in place into inputs"


def _backward(graph: Graph, users: dict[Value, list[Node]]) -> set[Node]:
    """The nodes of the backward pass and the update: those of a gradient (a layer path
    with a ``grad`` part) and every node that reads what one makes (fused kernels that
    hold a weight's gradient and its optimizer's update carry the optimizer's name)."""
    seen: set[Node] = set()
    stack = [n for n in graph.nodes if "grad" in n.layer.split("/")]
    while stack:
        node = stack.pop()
        if node in seen:
            continue
        seen.add(node)
        stack += [u for v in node.outputs for u in users.get(v, [])]
    return seen


def buffer_kinds(graph: Graph) -> dict[Value, str]:
    """What each planned value holds: an activation kept for backward (made before the
    backward pass, read in it), a gradient (made in it, the update's values too),
    scratch, a view of another buffer (``VIEW``), or a result written in place into an
    input (``IN_PLACE``)."""
    plan: MemoryPlan = graph.memory
    users = graph.users()
    backward = _backward(graph, users)
    kinds = {}
    for v, a in plan.allocations.items():
        if a.alias is not None:
            kinds[v] = VIEW if v.node.traits.view else IN_PLACE
        elif v.node in backward:
            kinds[v] = "gradients"
        elif any(u in backward for u in users.get(v, [])):
            kinds[v] = "activations kept for backward"
        else:
            kinds[v] = "scratch"
    return kinds


def memory_report(graph: Graph, batches: tuple[int, ...] = (1, 32, 128, 512, 2048)) -> MemoryReport:
    plan: MemoryPlan = graph.memory
    if plan is None:
        raise ValueError(f"graph {graph.name} has no memory plan; run plan_memory first")
    batch = plan.max_batch
    by_category: dict[str, int] = {}
    for v, key in buffer_kinds(graph).items():
        by_category[key] = by_category.get(key, 0) + plan.allocations[v].size.at(batch)
    roles: dict[str, int] = {}
    narrow: dict[str, tuple[int, int]] = {}
    int4 = _int4_kernels(graph)
    for v in graph.inputs:
        key = ROLE_NAMES[v.role]
        size = nbytes(v.type).at(batch)
        roles[key] = roles.get(key, 0) + size
        if v.role != "data" and v.dtype.itemsize < 4:
            name = "int4" if v in int4 else v.dtype.keras_name
            # An int4 kernel holds two weights a byte: in float32, rows x columns floats.
            f32_bytes = v.shape[0] * int4[v] * 4 if v in int4 else size * 4 // v.dtype.itemsize
            held, as_f32 = narrow.get(name, (0, 0))
            narrow[name] = (held + size, as_f32 + f32_bytes)
    peaks = {b: plan.layout(b)[1] for b in batches}
    total = sum(a.size.at(batch) for a in plan.allocations.values())
    return MemoryReport(batch, plan.arena_bytes, total, by_category, roles, peaks, narrow)


def _int4_kernels(graph: Graph) -> dict[Value, int]:
    """The graph's inputs that are packed int4 kernels (``ir.ops.int4``), read by a
    ``dequantize_int4`` or a ``matmul_int4`` here or in a fused kernel's body, each with
    its kernel's columns."""
    found: dict[Value, int] = {}
    for node in graph.nodes:
        if node.traits.kernel_body:
            body = node.attrs["body"]
            inner = _int4_kernels(body)
            found.update({v: inner[b] for v, b in zip(node.inputs, body.inputs) if b in inner})
        elif node.op in ("dequantize_int4", "matmul_int4"):
            packed = node.inputs[0 if node.op == "dequantize_int4" else 1]
            found[packed] = node.attrs["columns"]
    return found


def largest_batch_within(graph: Graph, budget_bytes: int, limit: int = 1 << 20) -> int:
    """The largest batch whose arena and input batch buffers fit ``budget_bytes`` (0 if none)."""
    plan: MemoryPlan = graph.memory
    fixed = sum(nbytes(v.type).at(0) for v in graph.inputs if v.role != "data")

    def need(b: int) -> int:
        data = sum(nbytes(v.type).at(b) for v in graph.inputs if v.role == "data")
        return plan.layout(b)[1] + data + fixed

    lo, hi = 0, 1
    while hi <= limit and need(hi) <= budget_bytes:
        lo, hi = hi, hi * 2
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if need(mid) <= budget_bytes else (lo, mid)
    return lo
