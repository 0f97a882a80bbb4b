"""Keras's ``Softmax`` layer."""

from __future__ import annotations

from typing import Any

from kcompile import activations
from kcompile.layers.layer import Layer


class Softmax(Layer):
    propagates_mask = True

    def __init__(self, axis: int = -1, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.axis = axis

    def call(self, ctx, x):
        return activations.softmax(x, self.axis)

    def get_config(self):
        return {**super().get_config(), "axis": self.axis}
