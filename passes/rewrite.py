"""Rebuilding a graph node by node: the mechanism under the rewriting passes.

``rebuild`` copies a graph into a new one; for each node a visitor may return
replacement values (already in the new graph) instead of the copied node.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from kcompile.ir.graph import Graph, Node, Value

Visitor = Callable[[Graph, Node, list[Value]], Sequence[Value] | None]


def copy_node(graph: Graph, node: Node, inputs: Sequence[Value]) -> tuple[Value, ...]:
    return graph.emit(node.op, list(inputs), dict(node.attrs), layer=node.layer)


def rebuild(graph: Graph, visit: Visitor) -> Graph:
    new = Graph(graph.name)
    env: dict[Value, Value] = {}
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
