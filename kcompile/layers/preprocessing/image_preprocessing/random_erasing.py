"""Keras's ``RandomErasing``."""

from __future__ import annotations

from typing import Any

import numpy as np

from kcompile.ir import Value
from kcompile.ir import build as B
from kcompile.layers.preprocessing.image_preprocessing.base_image_preprocessing_layer import (
    BaseImagePreprocessingLayer,
    factor_range,
)
from kcompile.layers.preprocessing.image_preprocessing.random_draws import applied, clip, where
from kcompile.ops.image_sampling import constant
from kcompile.random import standard_normal


class RandomErasing(BaseImagePreprocessingLayer):
    """In training, with a probability drawn in [factor[0], factor[1]] per image (a
    number f gives [0, f]), replaces a rectangle of each image by ``fill_value`` (a
    number, three numbers, or by default normal noise × value_range[1]), clipped to
    ``value_range``. The rectangle's sides are sqrt(s)·(the image's side), s drawn in
    ``scale`` per side, placed uniformly inside the image, as Keras's."""

    def __init__(
        self,
        factor: Any = 1.0,
        scale: Any = (0.02, 0.33),
        fill_value: Any = None,
        value_range: Any = (0, 255),
        seed: int | None = None,
        data_format: Any = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(seed=seed, data_format=data_format, **kwargs)
        what = f"RandomErasing '{self.name}'"
        self.factor = factor_range(what, factor, (0.0, 1.0), "factor")
        self.scale = factor_range(what, scale, (0.0, 1.0), "scale")
        if fill_value is not None and not (
            isinstance(fill_value, int | float)
            or (isinstance(fill_value, tuple | list) and len(fill_value) == 3)
        ):
            raise ValueError(
                f"{what}: the `fill_value` argument should be a number (or a list of three "
                f"numbers) Received: fill_value={fill_value}"
            )
        self.fill_value = fill_value
        self.value_range = value_range

    def call(self, ctx, x):
        x = self.images(x)
        if not ctx.training:
            return x
        n, h, w, _ = x.shape
        sides = B.sqrt(self.uniform(ctx, x, 0, self.scale[0], self.scale[1], shape=(n, 2)))
        width = B.slice_(sides, [0, 0], [n, 1]) * float(w)
        height = B.slice_(sides, [0, 1], [n, 2]) * float(h)
        x0 = self.uniform(ctx, x, 1, 0.0, 1.0) * (float(w) - width)
        y0 = self.uniform(ctx, x, 2, 0.0, 1.0) * (float(h) - height)
        chosen = applied(self, ctx, x, 3, self.factor)
        if self.fill_value is None:
            noise = B.random_uniform(ctx.step_counter(), x.shape, self.draw_seed(5))
            fill = standard_normal(noise) * float(self.value_range[1])
        else:
            fill = self.constant_fill(x)
        return self.erase(x, chosen, (x0, x0 + width, y0, y0 + height), fill)

    def constant_fill(self, x: Value) -> Value:
        values = np.broadcast_to(np.asarray(self.fill_value, np.float32), (x.shape[3],))
        return B.broadcast_to(constant(x, values.reshape(1, 1, 1, -1)), x.shape)

    def erase(self, x: Value, chosen: Value, box: tuple, fill: Value) -> Value:
        """Pixels with x0 <= column < x1 and y0 <= row < y1 (each [N, 1]) of the
        ``chosen`` images ([N, 1, 1, 1]) set to ``fill`` clipped to the value range."""
        n, h, w, _ = x.shape
        x0, x1, y0, y1 = (B.reshape(v, (n, 1, 1, 1)) for v in box)
        rows = constant(x, np.arange(h, dtype=np.float32).reshape(1, h, 1, 1))
        cols = constant(x, np.arange(w, dtype=np.float32).reshape(1, 1, w, 1))
        inside = B.logical_and(
            B.logical_and(B.ge(cols, x0), B.lt(cols, x1)),
            B.logical_and(B.ge(rows, y0), B.lt(rows, y1)),
        )  # [N, H, W, 1]
        erased = B.select(B.broadcast_to(inside, x.shape), clip(fill, self.value_range), x)
        return where(chosen, erased, x)

    def get_config(self):
        return {
            **super().get_config(),
            "factor": self.factor,
            "scale": self.scale,
            "fill_value": self.fill_value,
            "value_range": self.value_range,
        }
