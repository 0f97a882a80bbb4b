"""Dead-code elimination: drop nodes whose results nothing uses.

A ``scan`` whose stacked per-step outputs or saved carries nobody reads stops
making them (its body drops what only they needed): predict does not pay for
what the gradient would have read.
"""

from __future__ import annotations

from kcompile.ir.graph import Graph, Node, Value


def eliminate_dead_code(graph: Graph) -> Graph:
    """Remove nodes that no output depends on (in place; returns ``graph``)."""
    live = graph.drop_unused_nodes()
    for node in graph.nodes:
        if node.op == "scan":
            _prune_scan(node, live)
    return graph


def _prune_scan(node: Node, live: set[Value]) -> None:
    body: Graph = node.attrs["body"]
    c = node.attrs["carries"]
    m = len(body.outputs) - c
    outputs = list(node.outputs)
    if node.attrs["saved"] and not any(v in live for v in outputs[c + m + 2 :]):
        node.attrs["saved"] = False
        outputs = outputs[: c + m + 2]
    dead = [j for j in range(m) if outputs[c + j] not in live]
    if dead:
        body.outputs = [out for j, out in enumerate(body.outputs) if j - c not in dead]
        outputs = [v for j, v in enumerate(outputs) if j - c not in dead]
        eliminate_dead_code(body)
    node.set_results(outputs)
