"""Dead-code elimination: drop nodes whose results nothing uses."""

from __future__ import annotations

from ir.graph import Graph


def eliminate_dead_code(graph: Graph) -> Graph:
    """Remove nodes that no output depends on (in place; returns ``graph``)."""
    live = {v for _, v in graph.outputs}
    kept = []
    for node in reversed(graph.nodes):
        if any(v in live for v in node.outputs):
            kept.append(node)
            live.update(node.inputs)
    graph.nodes = kept[::-1]
    return graph
