"""Keras's ``ZeroPadding1D``."""

from __future__ import annotations

from typing import Any

from kcompile.ir import build as B
from kcompile.layers.convolutional.conv_nd import standard_data_format
from kcompile.layers.layer import Layer
from kcompile.layers.reshaping.crop_and_pad import before_after


class ZeroPadding1D(Layer):
    def __init__(self, padding: Any = 1, data_format: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.padding = before_after(padding, "padding", self.name)
        self.data_format = standard_data_format(data_format)

    def call(self, ctx, x):
        before, after = self.padding
        if self.data_format == "channels_first":  # (batch, channels, steps)
            return B.pad(x, (0, 0, before), (0, 0, after))
        return B.pad(x, (0, before, 0), (0, after, 0))

    def get_config(self):
        return {**super().get_config(), "padding": self.padding, "data_format": self.data_format}
