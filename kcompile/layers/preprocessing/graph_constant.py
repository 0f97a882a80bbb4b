"""A preprocessing layer's numbers (scale, offset, mean, a resize matrix) as a constant
of the traced graph, or a plain float when there is one."""

from __future__ import annotations

from typing import Any

import numpy as np

from kcompile.ir import DType, Value
from kcompile.ir import build as B


def graph_constant(x: Value, value: Any) -> float | Value:
    """``value`` as a float, or as an f32 constant of ``x``'s graph when it is an array."""
    array = np.asarray(value, np.float32)
    if array.ndim == 0:
        return float(array)
    return B.const_array(x.graph, array.ravel().tolist(), DType.f32, array.shape)
