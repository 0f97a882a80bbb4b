"""Row fusion: everything a batch row computes on its own, in one kernel.

Softmax, log-softmax, cross-entropies, their gradients and the accuracy
metrics are chains of elementwise ops, reductions along the last axis,
broadcasts back and argmax, all over tensors of shape ``R + (C,)`` ("row
vectors") or ``R`` / ``R + (1,)`` ("row scalars"), with operands that broadcast
to them along some row axes (an attention mask [N, 1, T, T] over the scores' rows
[N, H, T]: it used to stay out, a separate kernel writing the masked scores and one
more the masked probabilities, 7-10% of a masked attention's step on one thread).
Grouped into one ``fused`` node of kind ``row``, they run as one loop over the rows
with each row's values in registers and a few stack arrays of C elements: numerically
the same ops, no round trip through memory, and one kernel instead of a dozen.

Groups are merged along producer-consumer edges as long as the graph of
groups stays acyclic (each group runs at once, as one node); the result is
ordered with networkx's topological sort of that graph.
"""

from __future__ import annotations

import math

from kcompile.ir import build as B
from kcompile.ir.graph import Graph, Node, Value
from kcompile.ir.traits import Pattern, RowSignature, is_sum_over_rows
from kcompile.ir.types import BATCH
from kcompile.passes.fuse import _emit_group
from kcompile.passes.rewrite import copy_node, groups_in_order, rebuild

MAX_COLUMNS = 2048
# Off: a column sum reading a product may be taken into a row kernel (an A/B of
# ``_a_products_epilogue``: benchmarks/mixed_flag_ab.py).
SUMS_IN_EPILOGUES = True


def _signature(node: Node) -> RowSignature | None:
    """(row shape R, columns C or None for a row-scalar op) if ``node`` is row-local:
    its traits say how a row kernel holds it."""
    if len(node.outputs) != 1 or node.traits.row_signature is None:
        return None
    return node.traits.row_signature(node)


def _is_row_specific(node: Node) -> bool:
    """What makes a group a row kernel rather than an elementwise chain: an op that
    combines or spreads a row (a reduction, argmax, one_hot)."""
    return node.traits.pattern in (Pattern.REDUCTION, Pattern.ROW)


def _shapes_fit(node: Node, rows: tuple, cols: int) -> bool:
    """Every operand and result is a row vector, a row scalar, or broadcasts along rows
    (all of them, or some: a mask [N, 1, T, T] over rows [N, H, T], which the row kernel
    reads at each row's own offset)."""
    allowed = {(*rows, cols), rows, (*rows, 1), (cols,), (1, cols)}
    return all(
        v.shape in allowed or all(d == 1 for d in v.shape) or _broadcasts_to(v.shape, (*rows, cols))
        for v in (*node.inputs, *node.outputs)
    )


def _broadcasts_to(shape: tuple, full: tuple) -> bool:
    """Whether ``shape`` broadcasts to ``full`` by numpy's rules (no axis added after it)."""
    if len(shape) > len(full):
        return False
    return all(d == 1 or d == f for d, f in zip(reversed(shape), reversed(full)))


def _valid(rows: tuple, cols) -> bool:
    return bool(rows) and BATCH in rows and isinstance(cols, int) and 1 < cols <= MAX_COLUMNS


def find_row_groups(graph: Graph) -> dict[Node, int]:
    users = graph.users()
    sig = {n: s for n in graph.nodes if (s := _signature(n)) is not None}
    position = {n: i for i, n in enumerate(graph.nodes)}
    group = dict(position)
    members = {i: [n] for i, n in enumerate(graph.nodes)}
    group_sig: dict[int, tuple] = {group[n]: s for n, s in sig.items()}
    # The groups' edges, kept as groups merge (recomputing them from the members at each
    # step of each search was a fifth of the pipeline's time on the example models).
    succ = {group[n]: {group[u] for v in n.outputs for u in users.get(v, [])} for n in graph.nodes}
    pred: dict[int, set[int]] = {g: set() for g in succ}
    for g, after in succ.items():
        after.discard(g)
        for s in after:
            pred[s].add(g)

    def merge(a: int, b: int) -> None:
        """Group ``b`` into group ``a``: ``b``'s edges become ``a``'s."""
        for s in succ.pop(b):
            pred[s].discard(b)
            if s != a:
                succ[a].add(s)
                pred[s].add(a)
        for p in pred.pop(b):
            succ[p].discard(b)
            if p != a:
                pred[a].add(p)
                succ[p].add(a)
        for n in members[b]:
            group[n] = a
        members[a] = sorted(members[a] + members.pop(b), key=position.__getitem__)

    def path_through_others(a: int, b: int) -> bool:
        stack = [s for s in succ[a] if s != b]
        seen = set(stack)
        while stack:
            g = stack.pop()
            for s in succ[g]:
                if s == b:
                    return True
                if s not in seen and s != a:
                    seen.add(s)
                    stack.append(s)
        return False

    for node in graph.nodes:
        if node not in sig:
            continue
        # An op that only broadcasts row scalars and constants out to rows (a row's
        # quantization scale times each column's) joins the kernel of what reads it,
        # not of what makes its operands: made there, its rows would go through memory
        # to a product's epilogue that computes them as cheaply.
        spreads = _spreads(node)
        for v in node.inputs:
            producer = v.node
            if producer is None or producer not in sig or is_sum_over_rows(producer):
                continue  # a sum over rows is complete only when the kernel ends
            if spreads:
                continue
            a, b = group[producer], group[node]
            if a == b:
                continue
            (ra, ca), (rb, cb) = group_sig[a], group_sig[b]
            if ra != rb or (ca is not None and cb is not None and ca != cb):
                continue
            cols = ca if ca is not None else cb
            if cols is not None and not all(
                _shapes_fit(n, ra, cols) for n in members[a] + members[b]
            ):
                continue
            if path_through_others(a, b) or path_through_others(b, a):
                continue
            merge(a, b)
            group_sig[a] = (ra, cols)
            del group_sig[b]
    # A group without a row reduction, argmax or one_hot is a plain elementwise chain:
    # leave it to the elementwise and matmul-epilogue fusion.
    row_specific = {g for n, g in group.items() if n in sig and _is_row_specific(n)}
    if SUMS_IN_EPILOGUES:
        row_specific -= {g for g in row_specific if _a_products_epilogue(members[g])}
    return {
        n: g
        for n, g in group.items()
        if n in sig and g in row_specific and _valid(*group_sig[g]) and len(members[g]) >= 3
    }


def _spreads(node: Node) -> bool:
    """An elementwise op none of whose operands has its result's shape."""
    out = node.outputs[0]
    return node.traits.is_elementwise and all(v.shape != out.shape for v in node.inputs)


def _a_products_epilogue(members: list[Node]) -> bool:
    """A group whose only row work is summing columns over the batch (a bias's gradient)
    and that reads a product: the product's fused epilogue does it with the tile in
    registers (``passes.fuse``'s column sums). Under ``mixed_bfloat16`` the roundings
    around a ReLU's mask (``round_to select round_to reduce_sum``) made such a chain long
    enough to be taken for a row kernel: one more pass over [N, 512] in the wide MLP's
    train step, twice (~0.3 of its 11 ms on a 2-core AMD EPYC)."""
    specific = [n for n in members if _is_row_specific(n)]
    return all(is_sum_over_rows(n) for n in specific) and any(
        v.node is not None and v.node.op == "matmul" for n in members for v in n.inputs
    )


def _static_counts(graph: Graph) -> Graph:
    """``numel`` over static axes as the constant it is. It reads only its operand's
    shape, but as that operand's user it stood between two row groups: the encoder's
    LayerNormalization gradient counted the columns of a broadcast_to the group took in,
    and the path through it split the gradient's row kernel in three."""
    if not any(n.op == "numel" and _static_axes(n) for n in graph.nodes):
        return graph

    def visit(g: Graph, node: Node, ins: list[Value]):
        if node.op != "numel" or not _static_axes(node):
            return None
        count = math.prod(node.inputs[0].shape[a] for a in node.attrs["axes"])
        return [B.const(g, float(count), node.outputs[0].dtype)]

    return rebuild(graph, visit)


def _static_axes(node: Node) -> bool:
    return all(node.inputs[0].shape[a] != BATCH for a in node.attrs["axes"])


def fuse_rows(graph: Graph) -> Graph:
    graph = _static_counts(graph)
    grouped = find_row_groups(graph)
    if not grouped:
        return graph
    key = {n: ("g", grouped[n]) if n in grouped else ("n", i) for i, n in enumerate(graph.nodes)}
    users = graph.users()
    members: dict = {}
    for n in graph.nodes:
        members.setdefault(key[n], []).append(n)
    outputs = {v for _, v in graph.outputs}
    new = Graph(graph.name)
    env: dict[Value, Value] = {v: new.add_input(v.name, v.type, v.role) for v in graph.inputs}
    for k in groups_in_order(graph, key):
        nodes = members[k]
        if k[0] == "n":
            env.update(
                zip(nodes[0].outputs, copy_node(new, nodes[0], [env[v] for v in nodes[0].inputs]))
            )
            continue
        rows, cols = _group_shape(nodes)
        _emit_group(new, env, nodes, "row", users, outputs, extra={"row_shape": rows, "cols": cols})
    new.set_outputs([(name, env[v]) for name, v in graph.outputs])
    return new


def _group_shape(nodes: list[Node]) -> tuple[tuple, int]:
    for n in nodes:
        rows, cols = _signature(n)
        if cols is not None:
            return rows, cols
    raise AssertionError("a row group without a row vector")
