"""Keras's ``ReLU`` layer."""

from __future__ import annotations

from kcompile import activations
from kcompile.layers.layer import Layer


class ReLU(Layer):
    propagates_mask = True

    def call(self, ctx, x):
        return activations.relu(x)
