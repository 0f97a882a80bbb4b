"""Keras's ``RandomRotation``."""

from __future__ import annotations

import math
from typing import Any

from kcompile.ir import Value
from kcompile.ir import build as B
from kcompile.layers.preprocessing.image_preprocessing.base_image_preprocessing_layer import (
    BaseImagePreprocessingLayer,
    factor_range,
)
from kcompile.layers.preprocessing.image_preprocessing.random_translation import sampling_of
from kcompile.ops.image_sampling import sample_affine_columns


class RandomRotation(BaseImagePreprocessingLayer):
    """In training, rotates each image about its centre by an angle drawn in
    [factor[0], factor[1]] × 2π (a number f for [-f, f]), filling as ``fill_mode``
    says. A rotation is not separable: see ``sampling`` for its cost."""

    def __init__(
        self,
        factor: Any,
        fill_mode: str = "reflect",
        interpolation: str = "bilinear",
        seed: int | None = None,
        fill_value: float = 0.0,
        data_format: Any = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(seed=seed, data_format=data_format, **kwargs)
        what = f"RandomRotation '{self.name}'"
        self.factor = factor_range(what, factor, (-1.0, 1.0), "factor")
        self.sampling = sampling_of(what, fill_mode, interpolation, fill_value)
        self.fill_mode, self.interpolation = fill_mode, interpolation
        self.fill_value = fill_value

    def call(self, ctx, x):
        x = self.images(x)
        if not ctx.training:
            return x
        degrees = self.uniform(ctx, x, 0, self.factor[0] * 360.0, self.factor[1] * 360.0)
        return self.rotate(x, degrees)

    def rotate(self, x: Value, degrees: Value) -> Value:
        """Images rotated by ``degrees`` [N, 1] about their centres (Keras's
        ``_compute_affine_matrix`` with scale 1, no shear, no translation)."""
        h, w = x.shape[1], x.shape[2]
        angle = degrees * (math.pi / 180.0)
        cos, sin = B.cos(angle), B.sin(angle)
        cx, cy = 0.5 * (w - 1), 0.5 * (h - 1)
        columns = [cos, -sin, cx - cos * cx + sin * cy, sin, cos, cy - sin * cx - cos * cy]
        return sample_affine_columns(x, columns, self.sampling)

    def get_config(self):
        return {
            **super().get_config(),
            "factor": self.factor,
            "fill_mode": self.fill_mode,
            "interpolation": self.interpolation,
            "fill_value": self.fill_value,
        }
