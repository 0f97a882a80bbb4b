"""Keras's ``Permute``."""

from __future__ import annotations

from typing import Any

from kcompile.backend.keras_tensor import keras_shape
from kcompile.ir import build as B
from kcompile.layers.layer import Layer


class Permute(Layer):
    """Permutes the axes but the batch; ``dims`` counts from 1, as in Keras."""

    def __init__(self, dims: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.dims = tuple(int(d) for d in dims)
        if sorted(self.dims) != list(range(1, len(self.dims) + 1)):
            raise ValueError(
                f"Permute '{self.name}': dims must be a permutation of 1..{len(self.dims)}, "
                f"got {self.dims}"
            )

    def call(self, ctx, x):
        if x.rank != len(self.dims) + 1:
            raise ValueError(
                f"Permute '{self.name}': dims {self.dims} for an input of shape "
                f"{keras_shape(x.shape)}"
            )
        return B.transpose(x, (0, *self.dims))

    def get_config(self):
        return {**super().get_config(), "dims": self.dims}
