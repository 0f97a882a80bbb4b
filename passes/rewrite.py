"""Rebuilding a graph node by node: the mechanism under the rewriting passes.

``rebuild`` copies a graph into a new one; for each node a visitor may return
replacement values (already in the new graph) instead of the copied node.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import networkx as nx

from kcompile.ir.graph import Graph, Node, Value

Visitor = Callable[[Graph, Node, list[Value]], Sequence[Value] | None]


def copy_node(graph: Graph, node: Node, inputs: Sequence[Value]) -> tuple[Value, ...]:
    return graph.emit(node.op, list(inputs), node.attrs, layer=node.layer, checked=True)


def rebuild(graph: Graph, visit: Visitor, env: dict[Value, Value] | None = None) -> Graph:
    """``env``, when given, is filled with each old value's new one as the copy goes: a
    visitor may read it for values other than its node's inputs."""
    new = Graph(graph.name)
    env = {} if env is None else env
    for v in graph.inputs:
        env[v] = new.add_input(v.name, v.type, v.role)
    for node in graph.nodes:
        inputs = [env[v] for v in node.inputs]
        with new.layer_scope(node.layer):
            outs = visit(new, node, inputs)
            if outs is None:
                outs = copy_node(new, node, inputs)
        for old, value in zip(node.outputs, outs):
            if value.type != old.type:
                raise AssertionError(f"rewrite of {node.op} changed {old.type} to {value.type}")
            env[old] = value
    new.set_outputs([(name, env[v]) for name, v in graph.outputs])
    return new


def groups_in_order(graph: Graph, key: dict[Node, object]) -> list:
    """The groups of ``graph``'s nodes (``key[node]`` names a node's group) in an order
    that respects their data dependencies, each as early as its first member stood where
    it can be: the order a pass emits groups of nodes it merges into one."""
    first: dict = {}
    for i, n in enumerate(graph.nodes):
        first.setdefault(key[n], i)
    dag = nx.DiGraph()
    dag.add_nodes_from(first)
    users = graph.users()
    for n in graph.nodes:
        for v in n.outputs:
            for u in users.get(v, []):
                if key[u] != key[n]:
                    dag.add_edge(key[n], key[u])
    return list(nx.lexicographical_topological_sort(dag, key=lambda k: first[k]))
