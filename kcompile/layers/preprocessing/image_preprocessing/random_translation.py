"""Keras's ``RandomTranslation``."""

from __future__ import annotations

from typing import Any

from kcompile.ir import Value
from kcompile.layers.preprocessing.image_preprocessing.base_image_preprocessing_layer import (
    BaseImagePreprocessingLayer,
    factor_range,
)
from kcompile.ops.image_sampling import (
    Sampling,
    sample_axis_aligned,
)

FILL_MODES = ("reflect", "wrap", "constant", "nearest")
INTERPOLATIONS = ("nearest", "bilinear")


def sampling_of(layer: str, fill_mode: str, interpolation: str, fill_value: float) -> Sampling:
    """The sampling of an affine augmentation layer, refused as Keras refuses it."""
    if fill_mode not in FILL_MODES:
        raise NotImplementedError(
            f"{layer}: unknown `fill_mode` {fill_mode}. Expected of one {FILL_MODES}."
        )
    if interpolation not in INTERPOLATIONS:
        raise NotImplementedError(
            f"{layer}: unknown `interpolation` {interpolation}. Expected of one {INTERPOLATIONS}."
        )
    return Sampling(interpolation, fill_mode, float(fill_value))


class RandomTranslation(BaseImagePreprocessingLayer):
    """In training, shifts each image by a random fraction of its height and width
    (``height_factor``, ``width_factor``: a number f for [-f, f], or a pair), filling
    as ``fill_mode`` says."""

    def __init__(
        self,
        height_factor: Any,
        width_factor: Any,
        fill_mode: str = "reflect",
        interpolation: str = "bilinear",
        seed: int | None = None,
        fill_value: float = 0.0,
        data_format: Any = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(seed=seed, data_format=data_format, **kwargs)
        what = f"RandomTranslation '{self.name}'"
        self.height_factor, self.width_factor = height_factor, width_factor
        self.height_lower, self.height_upper = factor_range(
            what, height_factor, (-1.0, 1.0), "height_factor"
        )
        self.width_lower, self.width_upper = factor_range(
            what, width_factor, (-1.0, 1.0), "width_factor"
        )
        self.sampling = sampling_of(what, fill_mode, interpolation, fill_value)
        self.fill_mode, self.interpolation = fill_mode, interpolation
        self.fill_value = fill_value

    def call(self, ctx, x):
        x = self.images(x)
        if not ctx.training:
            return x
        dy = self.uniform(ctx, x, 0, self.height_lower, self.height_upper)
        dx = self.uniform(ctx, x, 1, self.width_lower, self.width_upper)
        return self.translate(x, dy, dx)

    def translate(self, x: Value, dy: Value, dx: Value) -> Value:
        """Images shifted by fractions ``dy``, ``dx`` [N, 1] of their height and width:
        Keras's transform [1, 0, -dx·W, 0, 1, -dy·H, 0, 0]."""
        h, w = x.shape[1], x.shape[2]
        return sample_axis_aligned(x, 1.0, dx * -float(w), 1.0, dy * -float(h), self.sampling)

    def get_config(self):
        return {
            **super().get_config(),
            "height_factor": self.height_factor,
            "width_factor": self.width_factor,
            "fill_mode": self.fill_mode,
            "interpolation": self.interpolation,
            "fill_value": self.fill_value,
        }
