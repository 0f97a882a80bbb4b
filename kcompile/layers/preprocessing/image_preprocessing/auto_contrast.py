"""Keras's ``AutoContrast``."""

from __future__ import annotations

from typing import Any

from kcompile.ir import build as B
from kcompile.layers.preprocessing.image_preprocessing.base_image_preprocessing_layer import (
    BaseImagePreprocessingLayer,
)
from kcompile.layers.preprocessing.image_preprocessing.value_range import (
    from_255,
    to_255,
    value_range_of,
)


class AutoContrast(BaseImagePreprocessingLayer):
    """Stretches each image's channels to the whole ``value_range`` (its minimum to the
    range's low end, its maximum to the high end), in training and inference alike, as
    Keras's. A channel of one value is left as it is (Keras's NaN guard)."""

    def __init__(self, value_range: Any = (0, 255), **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.value_range = value_range_of(f"AutoContrast '{self.name}'", value_range)

    def call(self, ctx, x):
        original = self.images(x)
        images = to_255(original, self.value_range)
        low = -B.reduce_max(-images, (1, 2), keepdims=True)
        high = B.reduce_max(images, (1, 2), keepdims=True)
        spread = B.gt(high, low)
        scale = 255.0 / B.select(spread, high - low, 1.0)
        stretched = B.minimum(B.maximum((images - low) * scale, 0.0), 255.0)
        return B.select(spread, from_255(stretched, self.value_range), original)

    def get_config(self):
        config = {**super().get_config(), "value_range": self.value_range}
        config.pop("seed")
        return config
