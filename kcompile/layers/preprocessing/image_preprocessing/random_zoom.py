"""Keras's ``RandomZoom``."""

from __future__ import annotations

from typing import Any

from kcompile.ir import Value
from kcompile.layers.preprocessing.image_preprocessing.base_image_preprocessing_layer import (
    BaseImagePreprocessingLayer,
    factor_range,
)
from kcompile.layers.preprocessing.image_preprocessing.random_translation import sampling_of
from kcompile.ops.image_sampling import sample_axis_aligned


class RandomZoom(BaseImagePreprocessingLayer):
    """In training, zooms each image about its centre: the output samples the input at
    zoom·(x − c) + c with zoom drawn in [1 + lower, 1 + upper] (a positive factor zooms
    out, a negative one in, as Keras's); ``width_factor=None`` keeps the aspect ratio."""

    def __init__(
        self,
        height_factor: Any,
        width_factor: Any = None,
        fill_mode: str = "reflect",
        interpolation: str = "bilinear",
        seed: int | None = None,
        fill_value: float = 0.0,
        data_format: Any = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(seed=seed, data_format=data_format, **kwargs)
        what = f"RandomZoom '{self.name}'"
        self.height_factor, self.width_factor = height_factor, width_factor
        self.height_lower, self.height_upper = _zoom_range(what, height_factor, "height_factor")
        if width_factor is not None:
            self.width_lower, self.width_upper = _zoom_range(what, width_factor, "width_factor")
        self.sampling = sampling_of(what, fill_mode, interpolation, fill_value)
        self.fill_mode, self.interpolation = fill_mode, interpolation
        self.fill_value = fill_value

    def call(self, ctx, x):
        x = self.images(x)
        if not ctx.training:
            return x
        zoom_h = self.uniform(ctx, x, 0, 1.0 + self.height_lower, 1.0 + self.height_upper)
        zoom_w = zoom_h
        if self.width_factor is not None:
            zoom_w = self.uniform(ctx, x, 1, 1.0 + self.width_lower, 1.0 + self.width_upper)
        return self.zoom(x, zoom_h, zoom_w)

    def zoom(self, x: Value, zoom_h: Value, zoom_w: Value) -> Value:
        """Images zoomed by ``zoom_h``, ``zoom_w`` [N, 1]: Keras's transform
        [zw, 0, (W-1)/2·(1-zw), 0, zh, (H-1)/2·(1-zh), 0, 0]."""
        h, w = x.shape[1], x.shape[2]
        offset_x = (1.0 - zoom_w) * ((w - 1) / 2.0)
        offset_y = (1.0 - zoom_h) * ((h - 1) / 2.0)
        return sample_axis_aligned(x, zoom_w, offset_x, zoom_h, offset_y, self.sampling)

    def get_config(self):
        return {
            **super().get_config(),
            "height_factor": self.height_factor,
            "width_factor": self.width_factor,
            "fill_mode": self.fill_mode,
            "interpolation": self.interpolation,
            "fill_value": self.fill_value,
        }


def _zoom_range(what: str, factor: Any, name: str) -> tuple[float, float]:
    """Keras's: a number or a pair in (-1, 1] (a zoom of 1 + f must stay positive)."""
    values = factor if isinstance(factor, tuple | list) else [factor]
    if any(isinstance(v, int | float) and v <= -1.0 for v in values):
        raise ValueError(
            f"{what}: the `{name}` argument should be a number (or a list of two numbers) "
            f"in the range (-1.0, 1.0]. Received: {name}={factor}"
        )
    return factor_range(what, factor, (-1.0, 1.0), name)
