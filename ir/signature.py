"""What a step graph takes per batch and what it reports per step.

Codegen's epoch loop and the runtimes read these, so that the loop and the
step-by-step path agree on which inputs are gathered and which results are logged.
"""

from __future__ import annotations

import math

from kcompile.ir.graph import Graph, Value
from kcompile.ir.types import BATCH, DType, TensorType

SCALAR = TensorType(DType.f32, ())


def batched_data(graph: Graph) -> list[Value]:
    """The data inputs whose leading axis is the batch, in graph order."""
    return [v for v in graph.inputs if v.role == "data" and v.shape and v.shape[0] == BATCH]


def logged_results(graph: Graph) -> list[tuple[str, tuple[int, ...]]]:
    """(name, shape) of the f32 outputs of fixed shape that do not update an input (the
    loss, metric statistics; a vector for a metric with one count per threshold or
    class): what an epoch loop records per step, flattened."""
    inputs = {v.name for v in graph.inputs}
    return [
        (name, v.shape)
        for name, v in graph.outputs
        if name not in inputs and v.dtype == DType.f32 and v.type.is_static
    ]


def result_columns(graph: Graph) -> list[str]:
    """The columns of an epoch loop's log, one per recorded element: a scalar result's
    name, or ``name[i]`` for element ``i`` of a flattened vector result."""
    columns = []
    for name, shape in logged_results(graph):
        size = math.prod(shape)
        columns += [name] if shape == () else [f"{name}[{i}]" for i in range(size)]
    return columns
