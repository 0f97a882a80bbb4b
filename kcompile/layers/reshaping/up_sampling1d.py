"""Keras's ``UpSampling1D``."""

from __future__ import annotations

from typing import Any

from kcompile.ir import build as B
from kcompile.layers.layer import Layer


class UpSampling1D(Layer):
    """Repeats each step ``size`` times."""

    def __init__(self, size: int = 2, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.size = int(size)

    def call(self, ctx, x):
        n, steps, c = x.shape
        y = B.broadcast_to(B.reshape(x, (n, steps, 1, c)), (n, steps, self.size, c))
        return B.reshape(y, (n, steps * self.size, c))

    def get_config(self):
        return {**super().get_config(), "size": self.size}
