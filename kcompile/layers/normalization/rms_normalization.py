"""Keras's ``RMSNormalization``: ``x * rsqrt(mean(square(x)) + epsilon) * scale`` over
``axis``, with a learned ``scale``."""

from __future__ import annotations

from typing import Any

from kcompile import ops
from kcompile.layers.layer import Layer


class RMSNormalization(Layer):
    propagates_mask = True

    def __init__(self, axis: int | list[int] = -1, epsilon: float = 1e-6, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.axis = axis
        self.epsilon = epsilon

    def build(self, input_shape):
        rank = len(input_shape)
        axes = sorted(self.axis) if isinstance(self.axis, list | tuple) else [self.axis]
        for axis in axes:
            if axis >= rank or axis < -rank:
                raise ValueError(
                    f"Axis {axis} is out of bounds for input shape {tuple(input_shape)}. "
                    f"Received: axis={self.axis}"
                )
        shape = tuple(input_shape[a] for a in axes)
        self.axis = axes  # Keras keeps a list once built
        self.scale = self.add_weight(shape, "ones", name="scale")

    def call(self, x):
        return ops.rms_normalization(x, scale=self.scale, axis=self.axis, epsilon=self.epsilon)

    def get_config(self):
        return {**super().get_config(), "axis": self.axis, "epsilon": self.epsilon}
