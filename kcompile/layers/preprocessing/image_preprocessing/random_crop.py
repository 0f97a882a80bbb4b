"""Keras's ``RandomCrop``."""

from __future__ import annotations

from typing import Any

import numpy as np

from kcompile.ir import DType, Value
from kcompile.ir import build as B
from kcompile.layers.preprocessing.graph_constant import graph_constant
from kcompile.layers.preprocessing.image_preprocessing.base_image_preprocessing_layer import (
    BaseImagePreprocessingLayer,
)
from kcompile.ops.image_sampling import resize_matrix


class RandomCrop(BaseImagePreprocessingLayer):
    """In training, crops a random ``height`` x ``width`` window, one offset for the
    whole batch (as Keras's). Where the images are not larger than the crop in both
    dimensions, Keras takes a fixed window (see ``_central``), resized to the crop where
    the images are smaller.

    In evaluation and prediction this layer takes that window too. Keras 3.15
    returns its input there, uncropped, which contradicts the output shape it declares
    (``compute_output_shape`` is (height, width)); a compiled model has one output shape,
    so kcompile crops.
    """

    def __init__(
        self,
        height: int,
        width: int,
        seed: int | None = None,
        data_format: Any = None,
        name: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(seed=seed, data_format=data_format, name=name, **kwargs)
        self.height, self.width = int(height), int(width)

    def call(self, ctx, x):
        x = self.images(x)
        h, w = x.shape[1], x.shape[2]
        if ctx.training and h > self.height and w > self.width:
            top = self._start(ctx, x, 0, h - self.height + 1)
            left = self._start(ctx, x, 1, w - self.width + 1)
            rows = B.one_hot(top + _arange(x, self.height), h)  # [height, H]
            cols = B.one_hot(left + _arange(x, self.width), w)  # [width, W]
            return _apply_axes(x, rows, cols)
        return self._central(x)

    def _start(self, ctx, x: Value, k: int, choices: int) -> Value:
        """A random offset in [0, choices) for the batch, as [1] i32."""
        u = self.uniform(ctx, x, k, 0.0, float(choices), shape=(1,))
        return B.cast(B.minimum(B.floor(u), float(choices - 1)), DType.i32)

    def _central(self, x: Value) -> Value:
        """Keras's window where it does not draw one: it starts where the central box of
        the crop's aspect ratio starts, is ``height`` x ``width`` as far as the image
        goes, and is resized to the crop (bilinear) when it is smaller."""
        h, w = x.shape[1], x.shape[2]
        box_h = max(min(h, int(float(w * self.height) / self.width)), 1)
        box_w = max(min(w, int(float(h * self.width) / self.height)), 1)
        top, left = int(float(h - box_h) / 2), int(float(w - box_w) / 2)
        rows = np.eye(h, dtype=np.float32)[top : top + self.height]
        cols = np.eye(w, dtype=np.float32)[left : left + self.width]
        if len(rows) != self.height or len(cols) != self.width:
            rows = resize_matrix(len(rows), self.height, "bilinear") @ rows
            cols = resize_matrix(len(cols), self.width, "bilinear") @ cols
        return _apply_axes(x, graph_constant(x, rows), graph_constant(x, cols))

    def get_config(self):  # (Keras's RandomCrop writes the seed it drew when given none)
        return {
            **super().get_config(),
            "height": self.height,
            "width": self.width,
            "seed": self.seed,
        }


def _arange(x: Value, n: int) -> Value:
    return B.const_array(x.graph, list(range(n)), DType.i32, (n,))


def _apply_axes(x: Value, rows: Value, cols: Value) -> Value:
    """rows [h, H] · image · colsᵀ [W, w] for images [N, H, W, C]."""
    y = B.matmul(B.transpose(x, (0, 1, 3, 2)), cols, transpose_b=True)  # [N, H, C, w]
    y = B.matmul(B.transpose(y, (0, 3, 2, 1)), rows, transpose_b=True)  # [N, w, C, h]
    return B.transpose(y, (0, 3, 1, 2))
