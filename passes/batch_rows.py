"""Batch-row chains: kernels that pass a large per-row value along, run a row at a time.

Attention's scores, softmax and mixing product (and in the backward the probabilities'
gradient, the softmax gradient and the two products that read it) each compute a batch
row from that row alone, and hand each other [N, heads, T, T] tensors: 8 MB at batch
32, heads 4, T 128, far more than a core's cache, so every kernel streams them from
memory. Run as one ``batch_rows`` node (``ir/ops/batch_rows.py``), the kernels take one
batch row after the other: a row's 256 KiB of scores is written and read back in L2,
and the values no kernel outside reads are never stored at all.

A value links its producer and its readers into one chain when it is large per batch
row (``LINK_ROW_BYTES``: smaller ones stay in cache between whole kernels anyway) and
they are all row-local kernels; readers of one large value join each other too (the
backward's dV product reads the probabilities the softmax gradient reads). Chains stay
convex (no path leaves a chain and comes back), hold at most ``SCRATCH_ROW_BYTES`` of
intermediates a row (a core's L2 holds them), and are kept only where some value
stays inside.
"""

from __future__ import annotations

from kcompile.ir.graph import LOOP_ROLES, Graph, Node, Value
from kcompile.ir.memory import nbytes
from kcompile.ir.ops.batch_rows import KIND
from kcompile.ir.types import BATCH
from kcompile.passes.rewrite import copy_node, groups_in_order

# A value of at least this many bytes a batch row links its kernels into a chain.
LINK_ROW_BYTES = 128 * 1024
# A chain keeps at most this many bytes of intermediates a batch row (a core's L2 is
# 1-2 MiB; the row's operands and results are read and written beside them).
SCRATCH_ROW_BYTES = 1024 * 1024


def _row_bytes(v: Value) -> int | None:
    """Bytes of one batch row of ``v``; None if its leading axis is not the batch."""
    size = nbytes(v.type)
    if not v.shape or v.shape[0] != BATCH or size.power != 1:
        return None
    return size.coef


def _shared(v: Value) -> bool:
    """A value without a batch axis: every row reads all of it."""
    return BATCH not in v.shape


def row_local(node: Node) -> bool:
    """Whether ``node`` is a kernel that computes each batch row from that row alone (and
    from values without a batch axis), so it can run on one batch row at a time."""
    t = node.traits
    if t.view or t.nested_graph or not node.outputs:
        return False
    if any(_row_bytes(v) is None for v in node.outputs):
        return False
    if any(_row_bytes(v) is None and not _shared(v) for v in node.inputs):
        return False
    # A product's folded transpositions must leave the batch axis in front.
    for name, perm in node.attrs.items():
        if name.startswith("perm") and perm is not None and perm[0] != 0:
            return False
    if t.is_elementwise:  # an element from the same element of its operands (or all
        return True  # of a value without a batch axis, broadcast: a mask, a constant)
    if t.kernel_body and node.attrs.get("kind") in ("row", "elementwise"):
        # A row kernel runs over rows whose leading axis is the batch; an elementwise
        # loop's element depends on the same element of its operands.
        return node.attrs.get("kind") == "elementwise" or node.attrs["row_shape"][0] == BATCH
    return t.rows_independent is not None and bool(t.rows_independent(node))


def find_chains(graph: Graph) -> list[list[Node]]:
    """The chains worth running a batch row at a time, each in graph order."""
    users = graph.users()
    outputs = {v for _, v in graph.outputs}
    position = {n: i for i, n in enumerate(graph.nodes)}
    local = {n for n in graph.nodes if row_local(n)}
    group = {n: i for i, n in enumerate(graph.nodes)}
    members: dict[int, list[Node]] = {i: [n] for i, n in enumerate(graph.nodes)}

    def successors(g: int) -> set[int]:
        return {group[u] for n in members[g] for v in n.outputs for u in users.get(v, [])} - {g}

    def reaches_through_others(a: set[int], b: set[int]) -> bool:
        """A path from a group of ``a`` to one of ``b`` through a group of neither."""
        stack = [s for g in a for s in successors(g) if s not in a | b]
        seen = set(stack)
        while stack:
            g = stack.pop()
            for s in successors(g):
                if s in b:
                    return True
                if s not in seen and s not in a:
                    seen.add(s)
                    stack.append(s)
        return False

    def scratch(nodes: list[Node]) -> int:
        inside = set(nodes)
        return sum(
            _row_bytes(v)
            for n in nodes
            for v in n.outputs
            if v not in outputs and all(u in inside for u in users.get(v, []))
        )

    def merge(a: int, b: int) -> None:
        if a == b:
            return
        if reaches_through_others({a}, {b}) or reaches_through_others({b}, {a}):
            return
        nodes = members[a] + members[b]
        if scratch(nodes) > SCRATCH_ROW_BYTES:
            return
        for n in members[b]:
            group[n] = a
        members[a] = sorted(nodes, key=position.__getitem__)
        del members[b]

    for node in graph.nodes:
        for v in node.outputs:
            if _row_bytes(v) is None or _row_bytes(v) < LINK_ROW_BYTES:
                continue
            readers = [u for u in users.get(v, []) if u in local]
            if node in local:
                for u in readers:
                    merge(group[node], group[u])
            # Readers left outside the producer's chain share their read of ``v``.
            apart = [u for u in readers if group[u] != group[node]]
            for u in apart[1:]:
                merge(group[apart[0]], group[u])
    return [
        nodes
        for nodes in members.values()
        if len(nodes) > 1 and all(n in local for n in nodes) and scratch(nodes) > 0
    ]


def _emit_chain(new: Graph, env: dict, nodes: list[Node], users, outputs) -> None:
    inside = set(nodes)
    body = Graph("batch_rows")
    local: dict[Value, Value] = {}
    operands: list[Value] = []
    for node in nodes:
        for v in node.inputs:
            if v not in local:
                local[v] = body.add_input(f"x{len(operands)}", v.type, "data")
                operands.append(env[v])
        with body.layer_scope(node.layer):
            local.update(zip(node.outputs, copy_node(body, node, [local[v] for v in node.inputs])))
    results = [
        v
        for node in nodes
        for v in node.outputs
        if v in outputs or any(u not in inside for u in users.get(v, []))
    ]
    body.set_outputs([(f"y{i}", local[v]) for i, v in enumerate(results)])
    outs = new.emit("batch_rows", operands, {"body": body, "kind": KIND}, layer=nodes[-1].layer)
    env.update(zip(results, outs))


def batch_rows(graph: Graph) -> Graph:
    """``graph`` with each chain (``find_chains``) replaced by one ``batch_rows`` node. A
    loop body keeps its kernels: the threads of a loop split by rows would share the
    chain's workspace."""
    if any(v.role in LOOP_ROLES for v in graph.inputs):
        return graph
    chains = find_chains(graph)
    if not chains:
        return graph
    key = {n: ("n", i) for i, n in enumerate(graph.nodes)}
    for c, nodes in enumerate(chains):
        for n in nodes:
            key[n] = ("c", c)
    users = graph.users()
    outputs = {v for _, v in graph.outputs}
    new = Graph(graph.name)
    env: dict[Value, Value] = {v: new.add_input(v.name, v.type, v.role) for v in graph.inputs}
    for k in groups_in_order(graph, key):
        if k[0] == "c":
            _emit_chain(new, env, chains[k[1]], users, outputs)
            continue
        node = graph.nodes[k[1]]
        with new.layer_scope(node.layer):
            env.update(zip(node.outputs, copy_node(new, node, [env[v] for v in node.inputs])))
    new.set_outputs([(name, env[v]) for name, v in graph.outputs])
    return new
