"""Keras's ``RandomSaturation``."""

from __future__ import annotations

from typing import Any

from kcompile.ir import Value
from kcompile.ir import build as B
from kcompile.layers.preprocessing.image_preprocessing.base_image_preprocessing_layer import (
    BaseImagePreprocessingLayer,
    factor_range,
)
from kcompile.layers.preprocessing.image_preprocessing.random_draws import on_values
from kcompile.layers.preprocessing.image_preprocessing.random_hue import _split_first, rgb_planes
from kcompile.layers.preprocessing.image_preprocessing.value_range import value_range_of
from kcompile.ops.image import hsv_to_rgb, rgb_to_hsv

EPSILON = 1e-7  # keras.config.epsilon()


class RandomSaturation(BaseImagePreprocessingLayer):
    """In training, multiplies each image's HSV saturation by f/(1 − f + ε), f drawn in
    [factor[0], factor[1]] (a number f gives [0, f]: 0.5 keeps it), clipping the
    saturation to ``value_range``. As Keras's, the images go to HSV as they are (not
    rescaled from ``value_range``)."""

    def __init__(
        self,
        factor: Any,
        value_range: Any = (0, 255),
        data_format: Any = None,
        seed: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(seed=seed, data_format=data_format, **kwargs)
        what = f"RandomSaturation '{self.name}'"
        self.factor = factor_range(what, factor, (0.0, 1.0), "factor")
        self.value_range = value_range_of(what, value_range)

    def call(self, ctx, x):
        x = self.images(x)
        if not ctx.training:
            return x
        f = self.uniform(ctx, x, 0, self.factor[0], self.factor[1])
        return self.saturate(x, f / (1.0 - f + EPSILON))

    def saturate(self, x: Value, factor: Value) -> Value:
        """Saturation × ``factor`` [N, 1], clipped to ``value_range``."""
        rgb_planes(f"RandomSaturation '{self.name}'", x)
        hsv = on_values(rgb_to_hsv, x)
        hue, rest = _split_first(hsv)
        n, h, w, _ = x.shape
        saturation = B.slice_(rest, [0, 0, 0, 0], [n, h, w, 1])
        value = B.slice_(rest, [0, 0, 0, 1], [n, h, w, 2])
        saturation = saturation * B.reshape(factor, (n, 1, 1, 1))
        low, high = (float(v) for v in self.value_range)
        saturation = B.minimum(B.maximum(saturation, low), high)
        return on_values(hsv_to_rgb, B.concat([hue, saturation, value], 3))

    def get_config(self):
        return {
            **super().get_config(),
            "factor": self.factor,
            "value_range": list(self.value_range),
        }
