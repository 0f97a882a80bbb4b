"""Keras's ``UnitNormalization``."""

from __future__ import annotations

from typing import Any

from kcompile.ir import build as B
from kcompile.layers.layer import Layer


class UnitNormalization(Layer):
    """Divides by the l2 norm over ``axis`` (at least 1e-12), as Keras's."""

    propagates_mask = True

    def __init__(self, axis: Any = -1, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.axis = axis

    def call(self, ctx, x):
        axes = (self.axis,) if isinstance(self.axis, int) else tuple(self.axis)
        axes = tuple(a % x.rank for a in axes)
        squares = B.reduce_sum(B.square(x), axes, keepdims=True)
        return x / B.sqrt(B.maximum(squares, 1e-24))

    def get_config(self):
        return {**super().get_config(), "axis": self.axis}
