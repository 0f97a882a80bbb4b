"""Keras's ``Rescaling``: ``x * scale + offset``, in the model."""

from __future__ import annotations

from typing import Any

from kcompile.ir import DType
from kcompile.ir import build as B
from kcompile.layers.layer import Layer
from kcompile.layers.preprocessing.graph_constant import graph_constant


class Rescaling(Layer):
    """``x * scale + offset`` (scale and offset numbers or per-channel lists)."""

    propagates_mask = True

    def __init__(self, scale: Any, offset: Any = 0.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.scale, self.offset = scale, offset

    def call(self, ctx, x):
        x = x if x.dtype.is_float else B.cast(x, DType.f32)
        return x * graph_constant(x, self.scale) + graph_constant(x, self.offset)

    def get_config(self):
        return {**super().get_config(), "scale": self.scale, "offset": self.offset}
