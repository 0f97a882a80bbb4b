"""Keras's ``Resizing`` (bilinear or nearest), channels last, in the model.

Resizing is Keras's JAX backend's ``jax.image.resize`` without antialiasing: each output
pixel samples the input at (i + 0.5)·in/out − 0.5 with triangle (bilinear) or box
(nearest) weights normalized over the pixels that exist. Along each axis that is a
constant matrix, so a resize is two products with constants, and its gradient their
transposes.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from kcompile.backend.keras_tensor import keras_shape
from kcompile.ir import DType
from kcompile.ir import build as B
from kcompile.layers.layer import Layer
from kcompile.layers.preprocessing.graph_constant import graph_constant
from kcompile.ops.image_sampling import resize_matrix


class Resizing(Layer):
    def __init__(
        self,
        height: int,
        width: int,
        interpolation: str = "bilinear",
        crop_to_aspect_ratio: bool = False,
        pad_to_aspect_ratio: bool = False,
        data_format: Any = None,
        fill_mode: str = "constant",
        fill_value: float = 0.0,
        antialias: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if interpolation not in ("bilinear", "nearest"):
            raise NotImplementedError(
                f"Resizing '{self.name}': interpolation {interpolation!r}; bilinear and nearest "
                "are supported"
            )
        if crop_to_aspect_ratio or pad_to_aspect_ratio or antialias:
            raise NotImplementedError(
                f"Resizing '{self.name}': crop_to_aspect_ratio, pad_to_aspect_ratio and "
                "antialias are not supported yet"
            )
        if data_format not in (None, "channels_last"):
            raise NotImplementedError(f"Resizing '{self.name}': only channels_last")
        self.height, self.width, self.interpolation = int(height), int(width), interpolation
        self.data_format = "channels_last"
        # (Keras fills with them only under pad_to_aspect_ratio: kept for the config)
        self.fill_mode, self.fill_value = fill_mode, float(fill_value)
        self.crop_to_aspect_ratio = self.pad_to_aspect_ratio = self.antialias = False

    def call(self, ctx, x):
        if x.rank != 4:
            raise ValueError(f"Resizing '{self.name}' expects images, got {keras_shape(x.shape)}")
        given = x.dtype
        x = x if x.dtype.is_float else B.cast(x, DType.f32)
        h, w = x.shape[1], x.shape[2]
        rows = resize_matrix(h, self.height, self.interpolation)  # [H', H]
        cols = resize_matrix(w, self.width, self.interpolation)  # [W', W]
        # columns: [N, H, W, C] -> [N, H, C, W] · colsᵀ -> [N, H, C, W']
        y = B.transpose(x, (0, 1, 3, 2))
        y = B.matmul(y, graph_constant(x, cols), transpose_b=True)
        # rows: [N, W', C, H] · rowsᵀ -> [N, W', C, H'] -> [N, H', W', C]
        y = B.transpose(y, (0, 3, 2, 1))
        y = B.matmul(y, graph_constant(x, rows), transpose_b=True)
        y = B.transpose(y, (0, 3, 1, 2))
        return y if given.is_float else _saturated(y, given)

    def get_config(self):
        return {
            **super().get_config(),
            "height": self.height,
            "width": self.width,
            "interpolation": self.interpolation,
            "data_format": self.data_format,
            "crop_to_aspect_ratio": self.crop_to_aspect_ratio,
            "pad_to_aspect_ratio": self.pad_to_aspect_ratio,
            "fill_mode": self.fill_mode,
            "fill_value": self.fill_value,
            "antialias": self.antialias,
        }


def _saturated(y, dtype: DType):
    """Integer images resized come back in their dtype, rounded and clipped to its range
    (Keras's ``_saturate_cast``): uint8 in, uint8 out."""
    info = np.iinfo(dtype.numpy)
    # The range as f32 holds it: 2**31 - 1 is not an f32, its float rounds up past int32.
    low, high = float(np.float32(info.min)), float(np.nextafter(np.float32(info.max), 0))
    if info.max < 2**24:
        high = float(info.max)
    clipped = B.minimum(B.maximum(y.graph.emit1("round", [y]), low), high)
    return B.cast(clipped, dtype)
