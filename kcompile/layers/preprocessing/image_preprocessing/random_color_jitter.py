"""Keras's ``RandomColorJitter``."""

from __future__ import annotations

from typing import Any

from kcompile.ir import DType
from kcompile.ir import build as B
from kcompile.layers.preprocessing.image_preprocessing.base_image_preprocessing_layer import (
    BaseImagePreprocessingLayer,
)
from kcompile.layers.preprocessing.image_preprocessing.random_brightness import RandomBrightness
from kcompile.layers.preprocessing.image_preprocessing.random_contrast import RandomContrast
from kcompile.layers.preprocessing.image_preprocessing.random_hue import RandomHue
from kcompile.layers.preprocessing.image_preprocessing.random_saturation import (
    EPSILON,
    RandomSaturation,
)


class RandomColorJitter(BaseImagePreprocessingLayer):
    """In training, Keras's brightness, contrast, saturation and hue changes, in that
    order, each with the arguments of its own layer (``None`` skips it) and its own
    draws per image."""

    def __init__(
        self,
        value_range: Any = (0, 255),
        brightness_factor: Any = None,
        contrast_factor: Any = None,
        saturation_factor: Any = None,
        hue_factor: Any = None,
        seed: int | None = None,
        data_format: Any = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(seed=seed, data_format=data_format, **kwargs)
        self.value_range = value_range
        self.brightness_factor, self.contrast_factor = brightness_factor, contrast_factor
        self.saturation_factor, self.hue_factor = saturation_factor, hue_factor
        parts = {"value_range": value_range, "seed": seed}
        self.random_brightness = (
            RandomBrightness(brightness_factor, **parts) if brightness_factor is not None else None
        )
        self.random_contrast = (
            RandomContrast(contrast_factor, **parts) if contrast_factor is not None else None
        )
        self.random_saturation = (
            RandomSaturation(saturation_factor, **parts) if saturation_factor is not None else None
        )
        self.random_hue = RandomHue(hue_factor, **parts) if hue_factor is not None else None

    def call(self, ctx, x):
        x = self.images(x)
        if not ctx.training:
            return x
        if self.random_brightness is not None:
            factor = self.random_brightness.factor
            x = self.random_brightness.brighten(x, self.uniform(ctx, x, 0, *factor))
        if self.random_contrast is not None:
            low, high = self.random_contrast.factor
            x = self.random_contrast.adjust(x, self.uniform(ctx, x, 1, 1.0 - low, 1.0 + high))
        if self.random_saturation is not None:
            f = self.uniform(ctx, x, 2, *self.random_saturation.factor)
            x = self.random_saturation.saturate(x, f / (1.0 - f + EPSILON))
        if self.random_hue is not None:
            sign = 1.0 - B.cast(B.gt(self.uniform(ctx, x, 3, 0.0, 1.0), 0.5), DType.f32) * 2.0
            turn = self.uniform(ctx, x, 4, *self.random_hue.factor)
            x = self.random_hue.shift(x, sign * turn * 0.5)
        return x

    def get_config(self):
        return {
            **super().get_config(),
            "value_range": self.value_range,
            "brightness_factor": self.brightness_factor,
            "contrast_factor": self.contrast_factor,
            "saturation_factor": self.saturation_factor,
            "hue_factor": self.hue_factor,
        }
