"""Reverse-mode automatic differentiation as a graph pass (the core is ``ir.grad``)."""

from __future__ import annotations

from kcompile.ir.grad import append_gradients
from kcompile.ir.graph import Graph

__all__ = ["append_gradients", "differentiate"]


def differentiate(graph: Graph, loss: str = "loss", role: str = "param") -> Graph:
    """The pass form: add an output ``grad/<name>`` for every input with ``role``.

    Rewrites ``graph`` in place and returns it.
    """
    wrt = graph.inputs_with_role(role)
    grads = append_gradients(graph, graph.output(loss), wrt)
    graph.set_outputs(graph.outputs + [(f"grad/{w.name}", g) for w, g in zip(wrt, grads)])
    return graph
