"""Keras's ``CenterCrop``, channels last, in the model."""

from __future__ import annotations

from typing import Any

from kcompile.backend.keras_tensor import keras_shape
from kcompile.ir import DType
from kcompile.ir import build as B
from kcompile.layers.layer import Layer


class CenterCrop(Layer):
    """The central ``height`` x ``width`` of (batch, height, width, channels) images (the
    odd pixel left out at the top and left, as Keras's)."""

    def __init__(self, height: int, width: int, data_format: Any = None, **kwargs: Any):
        super().__init__(**kwargs)
        if data_format not in (None, "channels_last"):
            raise NotImplementedError(f"CenterCrop '{self.name}': only channels_last")
        self.data_format = "channels_last"
        self.height, self.width = int(height), int(width)

    def call(self, ctx, x):
        if x.rank != 4:
            raise ValueError(f"CenterCrop '{self.name}' expects images, got {keras_shape(x.shape)}")
        h, w = x.shape[1], x.shape[2]
        if h < self.height or w < self.width:
            raise NotImplementedError(
                f"CenterCrop '{self.name}': images of {h}x{w} are smaller than the crop "
                f"{self.height}x{self.width} (Keras resizes them first; not supported yet)"
            )
        top, left = (h - self.height) // 2, (w - self.width) // 2
        begin = [0, top, left, 0]
        end = [x.shape[0], top + self.height, left + self.width, x.shape[3]]
        # Keras casts the images to its compute dtype first: uint8 images come out float.
        x = x if x.dtype.is_float else B.cast(x, DType.f32)
        return B.slice_(x, begin, end)

    def get_config(self):
        return {
            **super().get_config(),
            "height": self.height,
            "width": self.width,
            "data_format": self.data_format,
        }
