"""Keras's ``RepeatVector``."""

from __future__ import annotations

from typing import Any

from kcompile.backend.keras_tensor import keras_shape
from kcompile.ir import build as B
from kcompile.layers.layer import Layer


class RepeatVector(Layer):
    """(batch, features) -> (batch, n, features)."""

    def __init__(self, n: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if not isinstance(n, int) or n < 1:
            raise ValueError(f"RepeatVector '{self.name}': n must be a positive int, got {n!r}")
        self.n = n

    def call(self, ctx, x):
        if x.rank != 2:
            raise ValueError(
                f"RepeatVector '{self.name}' expects (batch, features), got {keras_shape(x.shape)}"
            )
        batch, features = x.shape
        return B.broadcast_to(B.reshape(x, (batch, 1, features)), (batch, self.n, features))

    def get_config(self):
        return {**super().get_config(), "n": self.n}
