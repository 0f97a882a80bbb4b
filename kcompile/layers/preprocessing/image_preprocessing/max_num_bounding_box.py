"""Keras's ``MaxNumBoundingBoxes``."""

from __future__ import annotations

from typing import Any

from kcompile.layers.preprocessing.image_preprocessing.base_image_preprocessing_layer import (
    BaseImagePreprocessingLayer,
)


class MaxNumBoundingBoxes(BaseImagePreprocessingLayer):
    """Keras's layer that pads or cuts the bounding boxes of a dictionary of images to
    ``max_number``. Its images pass through unchanged (in their dtype), as Keras's; the
    dictionaries of images and bounding boxes it exists for are refused, as by every
    kcompile image layer, naming the layer."""

    def __init__(self, max_number: int, fill_value: int = -1, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.max_number = int(max_number)
        self.fill_value = int(fill_value)

    def call(self, ctx, x):
        return x

    def get_config(self):
        config = super().get_config()
        config.pop("seed", None)
        return {**config, "max_number": self.max_number, "fill_value": self.fill_value}
