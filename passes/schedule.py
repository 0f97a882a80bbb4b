"""Scheduling: an execution order that keeps peak memory low.

A greedy list scheduler: among the nodes whose operands are ready it runs the
one that frees the most bytes net of what it allocates (ties keep the traced
order). An output that updates an input in place (a weight, an optimizer
slot) must come after every other reader of that input: those orderings are
added as dependencies, so ``plan_memory`` can write the new value straight
into the input's buffer.
"""

from __future__ import annotations

from kcompile.ir.graph import Graph, Node, Value
from kcompile.ir.memory import nbytes

PLANNING_BATCH = 32


def _bytes(v: Value) -> int:
    return nbytes(v.type).at(PLANNING_BATCH)


def in_place_targets(graph: Graph) -> dict[Value, Value]:
    """Result value -> the input it replaces (outputs named like an input)."""
    inputs = {v.name: v for v in graph.inputs}
    targets: dict[Value, Value] = {}
    for name, v in graph.outputs:
        target = inputs.get(name)
        if target is not None and v.node is not None and target.type == v.type:
            targets.setdefault(v, target)
    return targets


def dependencies(graph: Graph) -> dict[Node, set[Node]]:
    """Each node's predecessors: its operands' producers, and for a result that may
    replace an input in place, that input's other readers. Orderings that would close
    a cycle (two updates that each read the other's old value) are left out: that
    update is then not done in place (``plan_memory`` checks the order it gets)."""
    producer = {v: n for n in graph.nodes for v in n.outputs}
    deps = {n: {producer[v] for v in n.inputs if v in producer} for n in graph.nodes}
    users = graph.users()
    for result, target in in_place_targets(graph).items():
        writer = result.node
        readers = {u for u in users.get(target, []) if u is not writer}
        if not any(_reaches(deps, u, writer) for u in readers):
            deps[writer] |= readers
    return deps


def _reaches(deps: dict[Node, set[Node]], start: Node, goal: Node) -> bool:
    """Whether ``start`` depends, directly or not, on ``goal``."""
    seen, stack = set(), [start]
    while stack:
        node = stack.pop()
        if node is goal:
            return True
        if node not in seen:
            seen.add(node)
            stack.extend(deps[node])
    return False


def schedule(graph: Graph) -> Graph:
    """Reorder ``graph.nodes`` in place (values are unchanged) and return it."""
    deps = dependencies(graph)
    users = graph.users()
    outputs = {v for _, v in graph.outputs}
    remaining_users = {v: len(us) for v, us in users.items()}
    order = {n: i for i, n in enumerate(graph.nodes)}
    done: set[Node] = set()
    result: list[Node] = []
    ready = [n for n in graph.nodes if not deps[n]]
    while ready:
        best = max(ready, key=lambda n: (_gain(n, remaining_users, outputs), -order[n]))
        ready.remove(best)
        result.append(best)
        done.add(best)
        for v in best.inputs:
            remaining_users[v] -= 1
        for u in {u for v in best.outputs for u in users.get(v, [])} | _anti_users(best, deps):
            if u not in done and u not in ready and deps[u] <= done:
                ready.append(u)
    if len(result) != len(graph.nodes):
        raise AssertionError("schedule: the dependencies have a cycle")
    graph.nodes = result
    return graph


def _anti_users(node: Node, deps: dict[Node, set[Node]]) -> set[Node]:
    return {n for n, d in deps.items() if node in d}


def _gain(node: Node, remaining_users: dict[Value, int], outputs: set[Value]) -> int:
    freed = sum(
        _bytes(v)
        for v in set(node.inputs)
        if v.node is not None and v not in outputs and remaining_users.get(v) == 1
    )
    return freed - sum(_bytes(v) for v in node.outputs)
