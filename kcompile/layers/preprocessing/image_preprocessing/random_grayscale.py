"""Keras's ``RandomGrayscale``."""

from __future__ import annotations

from typing import Any

from kcompile.ir import DType, Value
from kcompile.ir import build as B
from kcompile.layers.preprocessing.image_preprocessing.base_image_preprocessing_layer import (
    BaseImagePreprocessingLayer,
)


class RandomGrayscale(BaseImagePreprocessingLayer):
    """In training, turns each image grayscale (0.2989·R + 0.5870·G + 0.1140·B in every
    channel) with probability ``factor``. Images have 1 or 3 channels."""

    def __init__(
        self, factor: float = 0.5, data_format: Any = None, seed: int | None = None, **kwargs
    ) -> None:
        super().__init__(seed=seed, data_format=data_format, **kwargs)
        if not 0 <= factor <= 1:
            raise ValueError(f"`factor` should be between 0 and 1. Received: factor={factor}")
        self.factor = factor

    def call(self, ctx, x):
        x = self.images(x)
        if not ctx.training:
            return x
        return self.gray(x, B.lt(self.uniform(ctx, x, 0, 0.0, 1.0), float(self.factor)))

    def gray(self, x: Value, apply: Value) -> Value:
        """Images made grayscale where ``apply`` [N, 1] (bool) is true."""
        if x.shape[3] not in (1, 3):
            raise ValueError(
                f"RandomGrayscale '{self.name}': expected 3 (RGB) or 1 (grayscale) "
                f"channels, got {x.shape[3]}"
            )
        if x.shape[3] == 1:
            return x
        weights = B.const_array(x.graph, [0.2989, 0.5870, 0.1140], DType.f32, (3, 1))
        gray = B.broadcast_to(B.matmul(x, weights), x.shape)
        return B.select(B.reshape(apply, (x.shape[0], 1, 1, 1)), gray, x)

    def get_config(self):
        return {**super().get_config(), "factor": self.factor}
