"""Keras's ``Cropping2D``, channels last or first."""

from __future__ import annotations

from typing import Any

from kcompile.layers.convolutional.conv_nd import standard_data_format
from kcompile.layers.layer import Layer
from kcompile.layers.reshaping.crop_and_pad import before_after, crop


class Cropping2D(Layer):
    """``cropping``: an int, (symmetric height, symmetric width), or ((top, bottom),
    (left, right))."""

    def __init__(self, cropping: Any = ((0, 0), (0, 0)), data_format: Any = None, **kwargs):
        super().__init__(**kwargs)
        self.data_format = standard_data_format(data_format)
        if isinstance(cropping, int):
            cropping = (cropping, cropping)
        self.cropping = tuple(before_after(c, "cropping", self.name) for c in cropping)

    def call(self, ctx, x):
        channels = [(0, 0)] if self.data_format == "channels_first" else []
        return crop(self, x, channels + list(self.cropping))

    def get_config(self):
        return {**super().get_config(), "cropping": self.cropping, "data_format": self.data_format}
