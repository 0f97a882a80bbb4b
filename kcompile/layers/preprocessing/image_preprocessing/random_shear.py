"""Keras's ``RandomShear``."""

from __future__ import annotations

from typing import Any

from kcompile.ir import DType, Value
from kcompile.ir import build as B
from kcompile.layers.preprocessing.image_preprocessing.base_image_preprocessing_layer import (
    BaseImagePreprocessingLayer,
    factor_range,
)
from kcompile.layers.preprocessing.image_preprocessing.random_translation import sampling_of
from kcompile.ops.image_sampling import sample_affine_columns


class RandomShear(BaseImagePreprocessingLayer):
    """In training, shears each image: the output (x, y) samples the input at
    (x + sx·y, sy·x + y), sx drawn in the ``x_factor`` range and sy in the ``y_factor``
    range (a number f in [0, 1] gives [-f, f]), both negated for a random half of the
    images, as Keras's. Not separable: see ``kcompile.ops.image_sampling`` for the cost."""

    def __init__(
        self,
        x_factor: Any = 0.0,
        y_factor: Any = 0.0,
        interpolation: str = "bilinear",
        fill_mode: str = "reflect",
        fill_value: float = 0.0,
        data_format: Any = None,
        seed: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(seed=seed, data_format=data_format, **kwargs)
        what = f"RandomShear '{self.name}'"
        for name, factor in (("x_factor", x_factor), ("y_factor", y_factor)):
            values = factor if isinstance(factor, tuple | list) else [factor]
            if any(isinstance(v, int | float) and v < 0 for v in values):
                raise ValueError(
                    f"{what}: the `{name}` argument should be a number (or a list of two "
                    f"numbers) in the range [0, 1]. Received: {name}={factor}"
                )
        self._factors = (x_factor, y_factor)  # for the config (Keras stores the ranges,
        # which its own check refuses when read back)
        self.x_factor = factor_range(what, x_factor, (-1.0, 1.0), "x_factor")
        self.y_factor = factor_range(what, y_factor, (-1.0, 1.0), "y_factor")
        self.sampling = sampling_of(what, fill_mode, interpolation, fill_value)
        self.fill_mode, self.interpolation = fill_mode, interpolation
        self.fill_value = fill_value

    def call(self, ctx, x):
        x = self.images(x)
        if not ctx.training:
            return x
        flipped = B.cast(B.gt(self.uniform(ctx, x, 0, 0.0, 1.0), 0.5), DType.f32)
        sign = 1.0 - flipped * 2.0
        shear_y = self.uniform(ctx, x, 1, *self.y_factor) * sign
        shear_x = self.uniform(ctx, x, 2, *self.x_factor) * sign
        return self.shear(x, shear_x, shear_y)

    def shear(self, x: Value, shear_x: Value, shear_y: Value) -> Value:
        """Images sheared by ``shear_x``, ``shear_y`` [N, 1]: Keras's transform
        [1, sx, 0, sy, 1, 0, 0, 0]."""
        return sample_affine_columns(x, [1.0, shear_x, 0.0, shear_y, 1.0, 0.0], self.sampling)

    def get_config(self):
        return {
            **super().get_config(),
            "x_factor": self._factors[0],
            "y_factor": self._factors[1],
            "fill_mode": self.fill_mode,
            "interpolation": self.interpolation,
            "fill_value": self.fill_value,
        }
