"""Central differences on the reference interpreter, in float64: the oracle every VJP
rule is checked against."""

from __future__ import annotations

import numpy as np

from kcompile.ir.graph import Graph
from kcompile.ir.interpreter import Interpreter


def numeric_gradient(
    graph: Graph, feeds: dict, name: str, output: str = "loss", eps: float = 1e-6
) -> np.ndarray:
    """d(output)/d(feeds[name]) by central differences, the graph run in float64."""
    run = Interpreter(graph).run
    base = np.asarray(feeds[name], dtype=np.float64)
    grad = np.zeros_like(base)
    for idx in np.ndindex(base.shape):
        hi, lo = base.copy(), base.copy()
        hi[idx] += eps
        lo[idx] -= eps
        up = run({**feeds, name: hi}, np.float64)[output]
        down = run({**feeds, name: lo}, np.float64)[output]
        grad[idx] = (up - down) / (2 * eps)
    return grad
