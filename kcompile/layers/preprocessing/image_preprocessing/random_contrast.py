"""Keras's ``RandomContrast``."""

from __future__ import annotations

from typing import Any

from kcompile.ir import Value
from kcompile.ir import build as B
from kcompile.layers.preprocessing.image_preprocessing.base_image_preprocessing_layer import (
    BaseImagePreprocessingLayer,
    factor_range,
)


class RandomContrast(BaseImagePreprocessingLayer):
    """In training, scales each image's deviation from its per-channel mean by a factor
    drawn in [1 − factor[0], 1 + factor[1]] and clips to ``value_range``. As Keras 3.15's,
    a number f gives the factor range (0, f), so contrasts in [1, 1 + f]."""

    def __init__(
        self,
        factor: Any,
        value_range: Any = (0, 255),
        seed: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(seed=seed, **kwargs)
        self.factor = factor_range(f"RandomContrast '{self.name}'", factor, (0.0, 1.0), "factor")
        self.value_range = tuple(value_range)

    def call(self, ctx, x):
        x = self.images(x)
        if not ctx.training:
            return x
        factor = self.uniform(ctx, x, 0, 1.0 - self.factor[0], 1.0 + self.factor[1])
        return self.adjust(x, factor)

    def adjust(self, x: Value, factor: Value) -> Value:
        """(x − mean)·factor + mean per image and channel (``factor`` [N, 1]), clipped."""
        n = x.shape[0]
        mean = B.mean(x, (1, 2), keepdims=True)
        out = (x - mean) * B.reshape(factor, (n, 1, 1, 1)) + mean
        low, high = float(self.value_range[0]), float(self.value_range[1])
        return B.minimum(B.maximum(out, low), high)

    def get_config(self):
        return {**super().get_config(), "factor": self.factor, "value_range": self.value_range}
