"""Keras's ``Cropping1D``."""

from __future__ import annotations

from typing import Any

from kcompile.layers.layer import Layer
from kcompile.layers.reshaping.crop_and_pad import before_after, crop


class Cropping1D(Layer):
    def __init__(self, cropping: Any = (1, 1), **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.cropping = before_after(cropping, "cropping", self.name)

    def call(self, ctx, x):
        return crop(self, x, [self.cropping])

    def get_config(self):
        return {**super().get_config(), "cropping": self.cropping}
