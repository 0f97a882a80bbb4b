"""Keras's ``ZeroPadding2D``, channels last or first."""

from __future__ import annotations

from typing import Any

from kcompile.ir import build as B
from kcompile.layers.convolutional.conv_nd import standard_data_format
from kcompile.layers.layer import Layer


class ZeroPadding2D(Layer):
    def __init__(
        self, padding: Any = (1, 1), data_format: str | None = None, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        if isinstance(padding, int):
            padding = ((padding, padding), (padding, padding))
        elif all(isinstance(p, int) for p in padding):
            padding = ((padding[0], padding[0]), (padding[1], padding[1]))
        self.padding = tuple(tuple(int(v) for v in p) for p in padding)
        self.data_format = standard_data_format(data_format)

    def call(self, ctx, x):
        (t, b), (left, right) = self.padding
        if self.data_format == "channels_first":  # (batch, channels, height, width)
            return B.pad(x, (0, 0, t, left), (0, 0, b, right))
        return B.pad(x, (0, t, left, 0), (0, b, right, 0))

    def get_config(self):
        return {**super().get_config(), "padding": self.padding, "data_format": self.data_format}
