"""Keras's ``ZeroPadding3D``."""

from __future__ import annotations

from typing import Any

from kcompile.ir import build as B
from kcompile.layers.layer import Layer
from kcompile.layers.reshaping.volume_arguments import (
    check_volume,
    data_format_of,
    spatial_axes,
    three_pairs,
)


class ZeroPadding3D(Layer):
    """``padding``: an int, three ints (symmetric per axis) or three (before, after)
    pairs, for depth, height and width."""

    def __init__(
        self, padding: Any = ((1, 1), (1, 1), (1, 1)), data_format: str | None = None, **kwargs
    ) -> None:
        super().__init__(**kwargs)
        self.data_format = data_format_of(self, data_format)
        self.padding = three_pairs(padding, "padding", "padding")

    def call(self, ctx, x):
        check_volume(self, x)
        low, high = [0] * x.rank, [0] * x.rank
        for axis, (before, after) in zip(spatial_axes(self.data_format), self.padding):
            low[axis], high[axis] = before, after
        return B.pad(x, low, high)

    def get_config(self):
        return {**super().get_config(), "padding": self.padding, "data_format": self.data_format}
