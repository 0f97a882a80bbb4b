"""Keras's ``RandomPerspective``."""

from __future__ import annotations

from typing import Any

import numpy as np

from kcompile.ir import Value
from kcompile.ir import build as B
from kcompile.layers.preprocessing.image_preprocessing.base_image_preprocessing_layer import (
    BaseImagePreprocessingLayer,
    factor_range,
)
from kcompile.layers.preprocessing.image_preprocessing.random_draws import applied, where
from kcompile.ops.image_sampling import Sampling, constant
from kcompile.ops.image_warps import homography, warp

INTERPOLATIONS = ("nearest", "bilinear")


class RandomPerspective(BaseImagePreprocessingLayer):
    """In training, with a probability drawn in [factor[0], factor[1]] per image (a
    number f gives [0, f]), warps the image by the perspective map taking its corners
    to end points, each corner c moved to c + c·u, u drawn in ±scale/2 per coordinate
    (so, as Keras's, the corner (0, 0) stays), filling outside with ``fill_value``."""

    def __init__(
        self,
        factor: Any = 1.0,
        scale: float = 1.0,
        interpolation: str = "bilinear",
        fill_value: float = 0.0,
        seed: int | None = None,
        data_format: Any = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(seed=seed, data_format=data_format, **kwargs)
        what = f"RandomPerspective '{self.name}'"
        self.factor = factor_range(what, factor, (0.0, 1.0), "factor")
        if scale < 0.0 or scale > 1.0:
            raise ValueError(
                f"{what}: the `scale` argument should be a number in the range [0,1]. "
                f"Received: scale={scale}"
            )
        if interpolation not in INTERPOLATIONS:
            raise NotImplementedError(
                f"{what}: unknown `interpolation` {interpolation}. Expected of one "
                f"{INTERPOLATIONS}."
            )
        self.scale, self.interpolation, self.fill_value = scale, interpolation, fill_value

    def call(self, ctx, x):
        x = self.images(x)
        if not ctx.training:
            return x
        n = x.shape[0]
        half = 0.5 * self.scale
        moves = self.uniform(ctx, x, 2, -half, half, shape=(n, 8))
        return self.warp(x, applied(self, ctx, x, 0, self.factor), B.reshape(moves, (n, 4, 2)))

    def corners(self, x: Value) -> Value:
        h, w = x.shape[1], x.shape[2]
        points = np.array([[0, 0], [w - 1, 0], [0, h - 1], [w - 1, h - 1]], np.float32)
        return constant(x, points[None])  # [1, 4, 2]

    def warp(self, x: Value, chosen: Value, moves: Value) -> Value:
        """The ``chosen`` images ([N, 1, 1, 1]) warped by corner moves [N, 4, 2]."""
        n = x.shape[0]
        start = B.broadcast_to(self.corners(x), (n, 4, 2))
        end = start + start * moves
        how = Sampling(self.interpolation, "constant", float(self.fill_value))
        return where(chosen, warp(x, homography(start, end), how), x)

    def get_config(self):
        return {
            **super().get_config(),
            "factor": self.factor,
            "scale": self.scale,
            "interpolation": self.interpolation,
            "fill_value": self.fill_value,
        }
