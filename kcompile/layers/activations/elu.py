"""Keras's ``ELU`` layer: ``x`` where ``x >= 0``, ``alpha * (exp(x) - 1)`` below."""

from __future__ import annotations

from typing import Any

from kcompile import activations
from kcompile.layers.layer import Layer


class ELU(Layer):
    propagates_mask = True

    def __init__(self, alpha: float = 1.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.alpha = alpha

    def call(self, ctx, x):
        return activations.elu(x, alpha=float(self.alpha))

    def get_config(self):
        return {**super().get_config(), "alpha": self.alpha}
