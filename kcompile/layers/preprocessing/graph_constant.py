"""A preprocessing layer's numbers (scale, offset, mean, a resize matrix) as a constant
of the traced graph, or a plain float when there is one."""

from __future__ import annotations

from typing import Any

import numpy as np

from kcompile.ir import DType, Value
from kcompile.ir import build as B


def graph_constant(x: Value, value: Any) -> float | Value:
    """``value`` as a float, or as a constant of ``x``'s graph when it is an array (in
    ``x``'s float dtype: bf16 under a mixed policy)."""
    array = np.asarray(value, np.float32)
    if array.ndim == 0:
        return float(array)
    dtype = x.dtype if x.dtype.is_float else DType.f32
    return B.const_array(x.graph, array.ravel().tolist(), dtype, array.shape)
