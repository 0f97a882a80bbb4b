"""Keras's ``RandomSharpness``."""

from __future__ import annotations

from typing import Any

import numpy as np

from kcompile.ir import Value
from kcompile.ir import build as B
from kcompile.layers.preprocessing.image_preprocessing.base_image_preprocessing_layer import (
    BaseImagePreprocessingLayer,
    factor_range,
)
from kcompile.layers.preprocessing.image_preprocessing.random_draws import clip
from kcompile.layers.preprocessing.image_preprocessing.value_range import value_range_of
from kcompile.ops.image_filters import band
from kcompile.ops.image_sampling import separable

_BOX = np.ones(3, np.float32)


class RandomSharpness(BaseImagePreprocessingLayer):
    """In training, blends each image with Keras's smoothed image (the 3×3 kernel of
    1/13 with 5/13 at the centre, zero padded): x + (1 − 2f)·(smooth − x), f drawn in
    [factor[0], factor[1]] (a number f gives [0, f]), clipped to ``value_range``."""

    def __init__(
        self,
        factor: Any,
        value_range: Any = (0, 255),
        data_format: Any = None,
        seed: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(seed=seed, data_format=data_format, **kwargs)
        what = f"RandomSharpness '{self.name}'"
        self.factor = factor_range(what, factor, (0.0, 1.0), "factor")
        self.value_range = value_range_of(what, value_range)

    def call(self, ctx, x):
        x = self.images(x)
        if not ctx.training:
            return x
        return self.sharpen(x, self.uniform(ctx, x, 0, self.factor[0], self.factor[1]))

    def sharpen(self, x: Value, factor: Value) -> Value:
        """The blend for ``factor`` [N, 1] (the kernel is 1/13 of a box plus 4/13 of the
        centre, so the smoothing is separable)."""
        h, w = x.shape[1], x.shape[2]
        box = separable(x, band(_BOX, h, "same"), band(_BOX, w, "same"))
        smooth = box * (1.0 / 13.0) + x * (4.0 / 13.0)
        weight = 1.0 - B.reshape(factor, (x.shape[0], 1, 1, 1)) * 2.0
        return clip(x + weight * (smooth - x), self.value_range)

    def get_config(self):
        return {
            **super().get_config(),
            "factor": self.factor,
            "value_range": list(self.value_range),
        }
