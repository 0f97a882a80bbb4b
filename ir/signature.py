"""What a step graph takes per batch and what it reports per step.

Codegen's epoch loop and the runtimes read these, so that the loop and the
step-by-step path agree on which inputs are gathered and which results are logged.
"""

from __future__ import annotations

from kcompile.ir.graph import Graph, Value
from kcompile.ir.types import BATCH, DType, TensorType

SCALAR = TensorType(DType.f32, ())


def batched_data(graph: Graph) -> list[Value]:
    """The data inputs whose leading axis is the batch, in graph order."""
    return [v for v in graph.inputs if v.role == "data" and v.shape and v.shape[0] == BATCH]


def scalar_results(graph: Graph) -> list[str]:
    """Names of the scalar f32 outputs that do not update an input (loss, metric
    statistics): what an epoch loop records per step."""
    inputs = {v.name for v in graph.inputs}
    return [name for name, v in graph.outputs if name not in inputs and v.type == SCALAR]
