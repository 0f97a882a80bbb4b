"""Keras's ``RandomBrightness``."""

from __future__ import annotations

from typing import Any

from kcompile.ir import Value
from kcompile.ir import build as B
from kcompile.layers.preprocessing.image_preprocessing.base_image_preprocessing_layer import (
    BaseImagePreprocessingLayer,
    factor_range,
)


class RandomBrightness(BaseImagePreprocessingLayer):
    """In training, adds to each image a delta drawn in [factor[0], factor[1]] ×
    (the width of ``value_range``) and clips to ``value_range``."""

    def __init__(
        self,
        factor: Any,
        value_range: Any = (0, 255),
        seed: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(seed=seed, **kwargs)
        what = f"RandomBrightness '{self.name}'"
        self.factor = factor_range(what, factor, (-1.0, 1.0), "factor")
        if not isinstance(value_range, tuple | list) or len(value_range) != 2:
            raise ValueError(
                f"{what}: the `value_range` argument should be a list of two numbers. "
                f"Received: value_range={value_range}"
            )
        self.value_range = tuple(sorted(value_range))

    def call(self, ctx, x):
        x = self.images(x)
        if not ctx.training:
            return x
        return self.brighten(x, self.uniform(ctx, x, 0, self.factor[0], self.factor[1]))

    def brighten(self, x: Value, factor: Value) -> Value:
        """x + factor·(the value range's width) per image (``factor`` [N, 1]), clipped."""
        low, high = float(self.value_range[0]), float(self.value_range[1])
        delta = factor * (high - low)
        out = x + B.reshape(delta, (x.shape[0], 1, 1, 1))
        return B.minimum(B.maximum(out, low), high)

    def get_config(self):
        return {**super().get_config(), "factor": self.factor, "value_range": self.value_range}
