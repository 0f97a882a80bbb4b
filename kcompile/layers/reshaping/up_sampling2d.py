"""Keras's ``UpSampling2D`` (nearest), channels last or first."""

from __future__ import annotations

from typing import Any

from kcompile.ir import build as B
from kcompile.layers.convolutional.base_conv import as_tuple
from kcompile.layers.convolutional.conv_nd import channels_back, channels_last, standard_data_format
from kcompile.layers.layer import Layer


class UpSampling2D(Layer):
    def __init__(
        self,
        size: Any = (2, 2),
        data_format: str | None = None,
        interpolation: str = "nearest",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if interpolation != "nearest":
            raise NotImplementedError("UpSampling2D: only interpolation='nearest'")
        self.size = as_tuple(size, 2, "size")
        self.data_format = standard_data_format(data_format)
        self.interpolation = interpolation

    def call(self, ctx, x):
        x = channels_last(x, self.data_format)
        n, h, w, c = x.shape
        sh, sw = self.size
        y = B.broadcast_to(B.reshape(x, (n, h, 1, w, 1, c)), (n, h, sh, w, sw, c))
        return channels_back(B.reshape(y, (n, h * sh, w * sw, c)), self.data_format)

    def get_config(self):
        return {
            **super().get_config(),
            "size": self.size,
            "data_format": self.data_format,
            "interpolation": self.interpolation,
        }
