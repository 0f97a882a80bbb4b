"""Keras's ``Reshape``: a new shape for each sample (one -1 inferred)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from kcompile.backend.keras_tensor import keras_shape
from kcompile.ir import build as B
from kcompile.layers.layer import Layer


class Reshape(Layer):
    def __init__(self, target_shape: Sequence[int], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.target_shape = tuple(target_shape)
        if sum(1 for d in self.target_shape if d == -1) > 1:
            raise ValueError(f"Reshape '{self.name}': at most one -1 in {self.target_shape}")

    def call(self, ctx, x):
        size = math.prod(d for d in x.shape[1:])
        known = math.prod(d for d in self.target_shape if d != -1)
        target = list(self.target_shape)
        if -1 in target:
            if known == 0 or size % known:
                raise ValueError(
                    f"Reshape '{self.name}': cannot reshape {x.shape[1:]} to {self.target_shape}"
                )
            target[target.index(-1)] = size // known
        elif known != size:
            raise ValueError(
                f"Reshape '{self.name}': input shape {keras_shape(x.shape)} has {size} "
                f"elements per sample, target shape {self.target_shape} has {known}"
            )
        return B.reshape(x, (x.shape[0], *target))

    def get_config(self):
        return {**super().get_config(), "target_shape": self.target_shape}
