"""Keras's ``LeakyReLU`` layer."""

from __future__ import annotations

from typing import Any

from kcompile import activations
from kcompile.layers.layer import Layer


class LeakyReLU(Layer):
    propagates_mask = True

    def __init__(self, negative_slope: float = 0.3, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.negative_slope = negative_slope

    def call(self, ctx, x):
        return activations.leaky_relu(x, self.negative_slope)

    def get_config(self):
        return {**super().get_config(), "negative_slope": self.negative_slope}
