"""Keras's ``UpSampling2D``, channels last (nearest)."""

from __future__ import annotations

from typing import Any

from kcompile.ir import build as B
from kcompile.layers.convolutional.base_conv import as_tuple
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

    def call(self, ctx, x):
        n, h, w, c = x.shape
        sh, sw = self.size
        y = B.broadcast_to(B.reshape(x, (n, h, 1, w, 1, c)), (n, h, sh, w, sw, c))
        return B.reshape(y, (n, h * sh, w * sw, c))

    def get_config(self):
        return {**super().get_config(), "size": self.size}
