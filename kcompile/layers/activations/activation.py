"""Keras's ``Activation``: any activation function (by name or callable) as a layer."""

from __future__ import annotations

from typing import Any

from kcompile import activations
from kcompile.layers.layer import Layer


class Activation(Layer):
    propagates_mask = True

    def __init__(self, activation: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.activation = activations.get(activation)

    def call(self, ctx, x):
        return self.activation(x)

    def get_config(self):
        return {**super().get_config(), "activation": activations.serialize(self.activation)}
