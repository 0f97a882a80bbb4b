"""Keras's ``RandomInvert``."""

from __future__ import annotations

from typing import Any

from kcompile.ir import Value
from kcompile.ir import build as B
from kcompile.layers.preprocessing.image_preprocessing.base_image_preprocessing_layer import (
    BaseImagePreprocessingLayer,
    factor_range,
)


class RandomInvert(BaseImagePreprocessingLayer):
    """In training, replaces an image x by ``value_range[1] - x`` where a uniform draw
    falls below a probability itself drawn in [factor[0], factor[1]] (as Keras's)."""

    def __init__(
        self,
        factor: Any = 1.0,
        value_range: Any = (0, 255),
        seed: int | None = None,
        data_format: Any = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(seed=seed, data_format=data_format, **kwargs)
        self.factor = factor_range(f"RandomInvert '{self.name}'", factor, (0.0, 1.0), "factor")
        self.value_range = tuple(value_range)

    def call(self, ctx, x):
        x = self.images(x)
        if not ctx.training:
            return x
        probability = self.uniform(ctx, x, 0, self.factor[0], self.factor[1])
        return self.invert(x, B.lt(self.uniform(ctx, x, 1, 0.0, 1.0), probability))

    def invert(self, x: Value, apply: Value) -> Value:
        """``value_range[1] - x`` where ``apply`` [N, 1] (bool) is true."""
        flipped = float(self.value_range[1]) - x
        return B.select(B.reshape(apply, (x.shape[0], 1, 1, 1)), flipped, x)

    def get_config(self):
        return {**super().get_config(), "factor": self.factor, "value_range": self.value_range}
