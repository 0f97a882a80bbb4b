"""The verifier: SSA order, known ops, types that agree with the shape rules."""

from __future__ import annotations

from kcompile.ir.graph import Graph, IRError, Value
from kcompile.ir.printer import print_graph
from kcompile.ir.registry import get_op
from kcompile.ir.types import BATCH, ShapeError


class VerifyError(IRError):
    pass


class _Where:
    """``node i (op, layer L)``, made into text only when an error names it."""

    def __init__(self, index: int, node) -> None:
        self.index, self.node = index, node

    def __str__(self) -> str:
        layer = self.node.layer
        return f"node {self.index} ({self.node.op}{', layer ' + layer if layer else ''})"


def verify(graph: Graph, batch_bound: bool = False) -> None:
    """Raise ``VerifyError`` naming the first node that breaks a rule. ``batch_bound``:
    the batch size ``N`` comes from outside (a kernel body runs with its node's ``N``)."""
    defined: set[Value] = set()
    names = set()
    for v in graph.inputs:
        if v.node is not None or v.graph is not graph:
            raise VerifyError(f"graph input {v.name!r} is not an input of this graph")
        if v.name in names:
            raise VerifyError(f"input name {v.name!r} repeats")
        names.add(v.name)
        defined.add(v)
    for i, node in enumerate(graph.nodes):
        where = _Where(i, node)  # (formatted only for an error)
        for v in node.inputs:
            if v not in defined:
                raise VerifyError(f"{where}: operand {v!r} is used before it is defined")
        body = node.attrs.get("body")
        if isinstance(body, Graph):
            inherits = node.traits.kernel_body and (
                batch_bound or any(BATCH in v.shape for v in graph.inputs)
            )
            try:
                verify(body, batch_bound=inherits)
            except VerifyError as e:
                raise VerifyError(f"{where}: in its body: {e}") from None
        try:
            opdef = get_op(node.op)
            expected = opdef.infer([v.type for v in node.inputs], node.attrs)
        except (ShapeError, KeyError) as e:
            raise VerifyError(f"{where}: {e}") from None
        actual = [v.type for v in node.outputs]
        if expected != actual:
            raise VerifyError(f"{where}: result types {actual} but the shape rule gives {expected}")
        for j, v in enumerate(node.outputs):
            if v.node is not node or v.index != j:
                raise VerifyError(f"{where}: result {j} does not point back at its node")
            defined.add(v)
    if graph.memory is not None:
        verify_memory(graph)
    batch_inputs = [v for v in graph.inputs if BATCH in v.shape]
    if not batch_inputs and not batch_bound:
        for node in graph.nodes:
            if any(BATCH in v.shape for v in node.outputs):
                raise VerifyError(
                    f"node {node.op} makes a value with the batch dimension N, but "
                    "no graph input has N to bind it"
                )
    seen = set()
    for name, v in graph.outputs:
        if name in seen:
            raise VerifyError(f"output name {name!r} repeats")
        seen.add(name)
        if v not in defined:
            raise VerifyError(f"output {name!r} is not defined in the graph")


def verify_memory(graph: Graph) -> None:
    """No two arena buffers that are live at once share a byte; aliases point at values
    of the graph; the arena is no larger than the sum of its buffers."""
    plan = graph.memory
    _verify_live_ranges(graph)
    own = []
    regions = (plan.arena_bytes, plan.per_row_bytes)
    for v, a in plan.allocations.items():
        if a.alias is not None:
            if a.alias.graph is not graph:
                raise VerifyError(f"memory: {v!r} aliases a value of another graph")
            continue
        region = a.size.power if plan.per_row_bytes is not None else 0
        size = a.size.coef if region else a.size.at(plan.max_batch)
        if a.offset < 0 or a.offset + size > regions[region]:
            raise VerifyError(
                f"memory: {v!r} at {a.offset} (+{size}) is outside "
                f"{'the per-row region' if region else 'the arena'} of {regions[region]} bytes"
            )
        own.append((a.start, a.end, a.offset + region * (1 << 62), size, v))
    own.sort(key=lambda t: t[0])
    for i, (s1, e1, lo1, size1, v1) in enumerate(own):
        for s2, e2, lo2, size2, v2 in own[i + 1 :]:
            if s2 > e1:
                break
            if lo1 < lo2 + size2 and lo2 < lo1 + size1:
                raise VerifyError(
                    f"memory: {v1!r} (live {s1}..{e1}) and {v2!r} (live "
                    f"{s2}..{e2}) overlap in the arena"
                )
    total = sum(size for (_, _, _, size, _) in own)
    if sum(r or 0 for r in regions) > total + 64 * len(own):
        raise VerifyError(
            f"memory: arena of {plan.arena_bytes} bytes is larger than the sum "
            f"of its buffers ({total})"
        )


def _verify_live_ranges(graph: Graph) -> None:
    """Every live range lies within the graph, and the storage of every value (its own,
    or what it aliases) is live from the node that makes it to its last use."""
    plan = graph.memory
    count = len(graph.nodes)
    made: dict = {}
    last_use: dict = {}
    for i, node in enumerate(graph.nodes):
        for v in node.inputs:
            last_use[v] = i
        for v in node.outputs:
            made[v] = i
    for _, v in graph.outputs:
        last_use[v] = count
    for v, a in plan.allocations.items():
        if not 0 <= a.start <= a.end <= count:
            raise VerifyError(
                f"memory: {v!r} has the impossible live range {a.start}:{a.end} "
                f"(the graph has {count} nodes)"
            )
    for v in plan.allocations:
        storage = plan.allocations.get(plan.root(v))
        if storage is None or storage.alias is not None or v not in made:
            continue  # stored in a graph input
        needed = (made[v], last_use.get(v, made[v]))
        if storage.start > needed[0] or storage.end < needed[1]:
            raise VerifyError(
                f"memory: {v!r} is used over {needed[0]}:{needed[1]} but its storage is "
                f"live only over {storage.start}:{storage.end}"
            )


def structurally_equal(a: Graph, b: Graph) -> bool:
    return first_difference(a, b) is None


def first_difference(a: Graph, b: Graph) -> str | None:
    """None if the graphs are equal up to value naming; else what differs first."""
    if a.name != b.name:
        return f"names differ: {a.name} vs {b.name}"
    if len(a.inputs) != len(b.inputs):
        return f"input counts differ: {len(a.inputs)} vs {len(b.inputs)}"
    ids: dict[Value, object] = {}
    for i, (x, y) in enumerate(zip(a.inputs, b.inputs)):
        if (x.name, x.type, x.role) != (y.name, y.type, y.role):
            return f"input {i} differs: {x.name}: {x.type} {x.role} vs {y.name}: {y.type} {y.role}"
        ids[x] = ids[y] = ("in", i)
    if len(a.nodes) != len(b.nodes):
        return f"node counts differ: {len(a.nodes)} vs {len(b.nodes)}"
    for i, (m, n) in enumerate(zip(a.nodes, b.nodes)):
        same = (
            m.op == n.op
            and _attrs_equal(m.attrs, n.attrs)
            and m.layer == n.layer
            and [ids.get(v) for v in m.inputs] == [ids.get(v) for v in n.inputs]
            and [v.type for v in m.outputs] == [v.type for v in n.outputs]
        )
        if not same:
            return f"node {i} differs:\n  {_line(a, i)}\n  {_line(b, i)}"
        for j, (x, y) in enumerate(zip(m.outputs, n.outputs)):
            ids[x] = ids[y] = ("node", i, j)
    out_a = [(name, ids.get(v)) for name, v in a.outputs]
    out_b = [(name, ids.get(v)) for name, v in b.outputs]
    if out_a != out_b:
        return f"outputs differ: {out_a} vs {out_b}"
    return None


def _attrs_equal(a: dict, b: dict) -> bool:
    if a.keys() != b.keys():
        return False
    for k in a:
        x, y = a[k], b[k]
        if isinstance(x, Graph) or isinstance(y, Graph):
            if not (isinstance(x, Graph) and isinstance(y, Graph)) or first_difference(x, y):
                return False
        elif x != y and not _both_nan(x, y):
            return False
    return True


def _both_nan(x: object, y: object) -> bool:
    """NaN attributes (a constant's value) are equal to NaN: the text keeps them."""
    if isinstance(x, tuple) and isinstance(y, tuple):
        return len(x) == len(y) and all(p == q or _both_nan(p, q) for p, q in zip(x, y))
    return isinstance(x, float) and isinstance(y, float) and x != x and y != y


def _line(graph: Graph, index: int) -> str:
    return print_graph(graph).splitlines()[len(graph.inputs) + 2 + index].strip()
