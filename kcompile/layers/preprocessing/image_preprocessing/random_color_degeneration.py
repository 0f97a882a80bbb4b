"""Keras's ``RandomColorDegeneration``."""

from __future__ import annotations

from typing import Any

from kcompile.ir import DType, Value
from kcompile.ir import build as B
from kcompile.layers.preprocessing.image_preprocessing.base_image_preprocessing_layer import (
    BaseImagePreprocessingLayer,
    factor_range,
)
from kcompile.layers.preprocessing.image_preprocessing.value_range import value_range_of


class RandomColorDegeneration(BaseImagePreprocessingLayer):
    """In training, moves each image towards its grayscale by a factor drawn in
    [factor[0], factor[1]] (a number f gives [-f, f], as Keras's: a negative factor moves
    away from gray) and clips to ``value_range``. Images have 3 channels."""

    def __init__(
        self,
        factor: Any,
        value_range: Any = (0, 255),
        data_format: Any = None,
        seed: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(seed=seed, data_format=data_format, **kwargs)
        what = f"RandomColorDegeneration '{self.name}'"
        self.factor = factor_range(what, factor, (-1.0, 1.0), "factor")
        self.value_range = value_range_of(what, value_range)

    def call(self, ctx, x):
        x = self.images(x)
        if not ctx.training:
            return x
        return self.degenerate(x, self.uniform(ctx, x, 0, self.factor[0], self.factor[1]))

    def degenerate(self, x: Value, factor: Value) -> Value:
        """x + factor·(gray(x) − x) per image (``factor`` [N, 1]), clipped."""
        if x.shape[3] != 3:
            raise ValueError(
                f"RandomColorDegeneration '{self.name}': expected 3 (RGB) channels, got "
                f"{x.shape[3]}"
            )
        weights = B.const_array(x.graph, [0.2989, 0.5870, 0.1140], DType.f32, (3, 1))
        gray = B.matmul(x, weights)  # [N, H, W, 1]
        out = x + B.reshape(factor, (x.shape[0], 1, 1, 1)) * (gray - x)
        low, high = (float(v) for v in self.value_range)
        return B.minimum(B.maximum(out, low), high)

    def get_config(self):
        return {**super().get_config(), "factor": self.factor, "value_range": self.value_range}
