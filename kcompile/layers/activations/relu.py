"""Keras's ``ReLU`` layer: ``max_value``, ``negative_slope`` and ``threshold`` as
Keras's ``activations.relu`` combines them."""

from __future__ import annotations

from typing import Any

from kcompile import activations
from kcompile.ir import Value
from kcompile.ir import build as B
from kcompile.layers.layer import Layer


class ReLU(Layer):
    propagates_mask = True

    def __init__(
        self,
        max_value: float | None = None,
        negative_slope: float = 0.0,
        threshold: float = 0.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if max_value is not None and max_value < 0.0:
            raise ValueError(
                f"ReLU '{self.name}': max_value of a ReLU layer cannot be a negative value. "
                f"Received: max_value={max_value}"
            )
        for name, value in (("negative_slope", negative_slope), ("threshold", threshold)):
            if value is None or value < 0.0:
                raise ValueError(
                    f"ReLU '{self.name}': {name} of a ReLU layer cannot be None or a "
                    f"negative value. Received: {name}={value}"
                )
        self.max_value = max_value
        self.negative_slope = negative_slope
        self.threshold = threshold

    def call(self, ctx, x):
        return relu(x, self.negative_slope, self.max_value, self.threshold)

    def get_config(self):
        return {
            **super().get_config(),
            "max_value": self.max_value,
            "negative_slope": self.negative_slope,
            "threshold": self.threshold,
        }


def relu(
    x: Value, negative_slope: float = 0.0, max_value: float | None = None, threshold: float = 0.0
) -> Value:
    """Keras's ``activations.relu``: ``x`` above ``threshold`` (else 0), clipped to
    ``[0, max_value]``, minus ``negative_slope * relu(threshold - x)``."""
    slope, threshold = float(negative_slope), float(threshold)
    if slope and max_value is None and not threshold:
        return activations.leaky_relu(x, slope)
    y = B.select(B.gt(x, threshold), x, 0.0) if threshold else activations.relu(x)
    if max_value is not None:
        y = B.minimum(B.maximum(y, 0.0), float(max_value))
    if slope:
        y = y - activations.relu(threshold - x) * slope
    return y
