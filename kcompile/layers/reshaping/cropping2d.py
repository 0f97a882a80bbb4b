"""Keras's ``Cropping2D``, channels last."""

from __future__ import annotations

from typing import Any

from kcompile.layers.layer import Layer
from kcompile.layers.reshaping.crop_and_pad import before_after, crop


class Cropping2D(Layer):
    """``cropping``: an int, (symmetric height, symmetric width), or ((top, bottom),
    (left, right))."""

    def __init__(self, cropping: Any = ((0, 0), (0, 0)), data_format: Any = None, **kwargs):
        super().__init__(**kwargs)
        if data_format not in (None, "channels_last"):
            raise NotImplementedError(f"Cropping2D '{self.name}': only channels_last")
        if isinstance(cropping, int):
            cropping = (cropping, cropping)
        self.cropping = tuple(before_after(c, "cropping", self.name) for c in cropping)

    def call(self, ctx, x):
        return crop(self, x, list(self.cropping))

    def get_config(self):
        return {**super().get_config(), "cropping": self.cropping}
