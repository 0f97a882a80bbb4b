"""Keras's ``CutMix``."""

from __future__ import annotations

from typing import Any

import numpy as np

from kcompile.ir import DType, Value
from kcompile.ir import build as B
from kcompile.ir.ops.row_gather import gather_batch
from kcompile.layers.preprocessing.image_preprocessing.base_image_preprocessing_layer import (
    factor_range,
)
from kcompile.layers.preprocessing.image_preprocessing.mix_up import BatchMixingLayer
from kcompile.ops.image_sampling import constant


class CutMix(BatchMixingLayer):
    """In training, Keras's CutMix: a box of each image is replaced by the same box of
    the image a random order of the batch puts in its place, and the labels are mixed by
    the box's area. Per call, alpha is drawn in [factor[0], factor[1]] (a number f gives
    [0, f]) plus 1e-6; per image, w ~ Beta(alpha, alpha), the box's sides are
    sqrt(1 − w) times the image's, placed uniformly inside it, and pixel (row, column) is
    pasted when y0 <= row < y1 and x0 <= column < x1 (the corners are not rounded); the
    label becomes a·y + (1 − a)·y_p with a = 1 − (x1 − x0)(y1 − y0) / (height·width). A
    single image passes unchanged, as in inference (cast to float32, as Keras's)."""

    def __init__(
        self, factor: Any = 1.0, seed: int | None = None, data_format: Any = None, **kwargs: Any
    ) -> None:
        super().__init__(seed=seed, data_format=data_format, **kwargs)
        self.factor = factor_range(self.described, factor, (0, 1), "factor")

    def call_on_dict(self, data: dict, training: bool = True) -> dict:
        images = np.asarray(getattr(data.get("images"), "value", data.get("images")))
        if images.ndim == 3:  # Keras's draws nothing for a single image
            training = False
        return super().call_on_dict(data, training)

    def inference(self, x: Value) -> Value:
        return B.cast(x, DType.f32) if x.dtype is not DType.f32 else x

    def draws(self, ctx, x: Value) -> dict[str, Value]:
        """The box's corners (``x0``, ``x1``, ``y0``, ``y1``, each [n, 1]) and the order
        ([n]) of one call."""
        n = x.shape[0]
        height, width = self.image_size(x)
        alpha = self.uniform(ctx, x, 0, *self.factor, shape=(1, 1)) + 1e-6
        ratio = B.sqrt(1.0 - self.beta(ctx, x, 1, alpha, n))
        x0, x1 = self.crop_bounds(ctx, x, 7, ratio, width)
        y0, y1 = self.crop_bounds(ctx, x, 8, ratio, height)
        return {"x0": x0, "x1": x1, "y0": y0, "y1": y1, "order": self.batch_order(ctx, x, 9)}

    def mix_batch(self, ctx, x: Value, labels: Value | None) -> tuple:
        return self.cut(x, labels, **self.draws(ctx, x))

    def image_size(self, x: Value) -> tuple[int, int]:
        axes = (1, 2) if self.data_format == "channels_last" else (2, 3)
        return x.shape[axes[0]], x.shape[axes[1]]

    def crop_bounds(self, ctx, x: Value, k: int, ratio: Value, length: int) -> tuple:
        """Keras's ``_compute_crop_bounds``: [n, 1] start and end of a side of length
        ratio·length placed uniformly in [0, length] (draw ``k``)."""
        crop = ratio * float(length)
        start = self.uniform(ctx, x, k, 0.0, 1.0) * (float(length) - crop)
        return start, start + crop

    def cut(
        self,
        x: Value,
        labels: Value | None,
        x0: Value,
        x1: Value,
        y0: Value,
        y1: Value,
        order: Value,
    ) -> tuple:
        """The images with the box x0 <= column < x1, y0 <= row < y1 (each [n, 1]) of the
        images in ``order`` ([n]) pasted in, and the labels mixed by the box's area."""
        n = x.shape[0]
        height, width = self.image_size(x)
        area = (x1 - x0) * (y1 - y0)
        x0, x1, y0, y1 = (B.reshape(v, (n, 1, 1, 1)) for v in (x0, x1, y0, y1))
        if self.data_format == "channels_last":
            row_shape, column_shape = (1, height, 1, 1), (1, 1, width, 1)
        else:
            row_shape, column_shape = (1, 1, height, 1), (1, 1, 1, width)
        rows = constant(x, np.arange(height).reshape(row_shape))
        cols = constant(x, np.arange(width).reshape(column_shape))
        inside = B.logical_and(
            B.logical_and(B.ge(cols, x0), B.lt(cols, x1)),
            B.logical_and(B.ge(rows, y0), B.lt(rows, y1)),
        )
        images = B.select(B.broadcast_to(inside, x.shape), gather_batch(x, order), x)
        if labels is None:
            return images, None
        weight = 1.0 - area / float(width * height)
        return images, weight * labels + (1.0 - weight) * gather_batch(labels, order)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "factor": self.factor}
