"""Keras's ``RandomHue``."""

from __future__ import annotations

from typing import Any

from kcompile.ir import DType, Value
from kcompile.ir import build as B
from kcompile.layers.preprocessing.image_preprocessing.base_image_preprocessing_layer import (
    BaseImagePreprocessingLayer,
    factor_range,
)
from kcompile.layers.preprocessing.image_preprocessing.random_draws import on_values
from kcompile.ops.image import hsv_to_rgb, rgb_to_hsv


def rgb_planes(what: str, x: Value) -> None:
    if x.shape[3] != 3:
        raise ValueError(f"{what}: expected 3 (RGB) channels, got {x.shape[3]}")


class RandomHue(BaseImagePreprocessingLayer):
    """In training, turns each image's hue by ±factor/2 of a turn (factor drawn in
    [factor[0], factor[1]], a number f giving [0, f]; the sign at random), through HSV
    in [0, 1], clipped back to ``value_range``."""

    def __init__(
        self,
        factor: Any,
        value_range: Any = (0, 255),
        data_format: Any = None,
        seed: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(seed=seed, data_format=data_format, **kwargs)
        self.factor = factor_range(f"RandomHue '{self.name}'", factor, (0.0, 1.0), "factor")
        self.value_range = value_range

    def call(self, ctx, x):
        x = self.images(x)
        if not ctx.training:
            return x
        sign = 1.0 - B.cast(B.gt(self.uniform(ctx, x, 0, 0.0, 1.0), 0.5), DType.f32) * 2.0
        factor = self.uniform(ctx, x, 1, self.factor[0], self.factor[1])
        return self.shift(x, sign * factor * 0.5)

    def shift(self, x: Value, turn: Value) -> Value:
        """Hue + ``turn`` [N, 1] (wrapped into [0, 1] once, as Keras's), per image."""
        rgb_planes(f"RandomHue '{self.name}'", x)
        n = x.shape[0]
        low, high = (float(v) for v in self.value_range)
        unit = x if (low, high) == (0.0, 1.0) else (x - low) / (high - low)
        hsv = on_values(rgb_to_hsv, unit)
        hue, rest = _split_first(hsv)
        hue = hue + B.reshape(turn, (n, 1, 1, 1))
        hue = B.select(B.gt(hue, 1.0), hue - 1.0, hue)
        hue = B.select(B.lt(hue, 0.0), hue + 1.0, hue)
        rgb = on_values(hsv_to_rgb, B.concat([hue, rest], 3))
        rgb = B.minimum(B.maximum(rgb, 0.0), 1.0)
        return rgb if (low, high) == (0.0, 1.0) else rgb * (high - low) + low

    def get_config(self):
        return {**super().get_config(), "factor": self.factor, "value_range": self.value_range}


def _split_first(x: Value) -> tuple[Value, Value]:
    """Channel 0 and channels 1.. of [N, H, W, C]."""
    n, h, w, c = x.shape
    return B.slice_(x, [0, 0, 0, 0], [n, h, w, 1]), B.slice_(x, [0, 0, 0, 1], [n, h, w, c])
