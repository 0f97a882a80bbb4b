"""Keras's ``Cropping3D``."""

from __future__ import annotations

from typing import Any

from kcompile.backend.keras_tensor import keras_shape
from kcompile.ir import build as B
from kcompile.layers.layer import Layer
from kcompile.layers.reshaping.volume_arguments import (
    check_volume,
    data_format_of,
    spatial_axes,
    three_pairs,
)


class Cropping3D(Layer):
    """``cropping``: an int, three ints (symmetric per axis) or three (before, after)
    pairs, for depth, height and width."""

    def __init__(
        self, cropping: Any = ((1, 1), (1, 1), (1, 1)), data_format: str | None = None, **kwargs
    ) -> None:
        super().__init__(**kwargs)
        self.data_format = data_format_of(self, data_format)
        self.cropping = three_pairs(cropping, "cropping", "cropping")

    def call(self, ctx, x):
        check_volume(self, x)
        begin, end = [0] * x.rank, list(x.shape)
        for axis, (before, after) in zip(spatial_axes(self.data_format), self.cropping):
            if x.shape[axis] - before - after <= 0:
                raise ValueError(
                    "Values in `cropping` argument should be smaller than the corresponding "
                    f"spatial dimension of the input. Received: inputs.shape="
                    f"{keras_shape(x.shape)}, cropping={self.cropping}"
                )
            begin[axis], end[axis] = before, x.shape[axis] - after
        return B.slice_(x, begin, end)

    def get_config(self):
        return {
            **super().get_config(),
            "cropping": self.cropping,
            "data_format": self.data_format,
        }
