"""Keras's ``RandomElasticTransform``."""

from __future__ import annotations

from typing import Any

from kcompile.ir import Value
from kcompile.ir import build as B
from kcompile.layers.preprocessing.image_preprocessing.base_image_preprocessing_layer import (
    BaseImagePreprocessingLayer,
    factor_range,
)
from kcompile.layers.preprocessing.image_preprocessing.random_draws import applied, clip, where
from kcompile.layers.preprocessing.image_preprocessing.random_gaussian_blur import (
    blur_with,
    gaussian_band,
)
from kcompile.ops.image_sampling import FILL_MODES, Sampling, output_grid, sample_points
from kcompile.random import standard_normal

INTERPOLATIONS = ("nearest", "bilinear")


class RandomElasticTransform(BaseImagePreprocessingLayer):
    """In training, with a probability drawn in [factor[0], factor[1]] per image (a
    number f gives [0, f]), Keras's elastic warp: a distortion d drawn once per batch in
    ``scale`` gives alpha = 0.1·d·max(H, W) and sigma = 0.05·d·min(H, W); a normal field
    × sigma, blurred by a Gaussian of sigma (int(6·sigma)|1 taps, zero padded), × alpha,
    moves both coordinates of each pixel (Keras draws dx and dy alike); then clipped to
    ``value_range``. The field comes from kcompile's streams (Keras's distribution, not
    JAX's numbers)."""

    def __init__(
        self,
        factor: Any = 1.0,
        scale: Any = 1.0,
        interpolation: str = "bilinear",
        fill_mode: str = "reflect",
        fill_value: float = 0.0,
        value_range: Any = (0, 255),
        seed: int | None = None,
        data_format: Any = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(seed=seed, data_format=data_format, **kwargs)
        what = f"RandomElasticTransform '{self.name}'"
        self.factor = factor_range(what, factor, (0.0, 1.0), "factor")
        self.scale = factor_range(what, scale, (0.0, 1.0), "scale")
        if interpolation not in INTERPOLATIONS:
            raise NotImplementedError(
                f"{what}: unknown `interpolation` {interpolation}. Expected of one "
                f"{INTERPOLATIONS}."
            )
        if fill_mode not in FILL_MODES:
            raise NotImplementedError(
                f"{what}: unknown `fill_mode` {fill_mode}. Expected of one {set(FILL_MODES)}."
            )
        self.interpolation, self.fill_mode = interpolation, fill_mode
        self.fill_value, self.value_range = fill_value, value_range

    def call(self, ctx, x):
        x = self.images(x)
        if not ctx.training or self.scale[1] == 0 or self.factor[1] == 0:
            return x
        n, h, w, _ = x.shape
        distortion = self.uniform(ctx, x, 2, self.scale[0], self.scale[1], shape=(1, 1))
        noise = B.random_uniform(ctx.step_counter(), (n, h, w, 1), self.draw_seed(3))
        return self.deform(x, applied(self, ctx, x, 0, self.factor), distortion,
                           standard_normal(noise))  # fmt: skip

    def deform(self, x: Value, chosen: Value, distortion: Value, field: Value) -> Value:
        """The ``chosen`` images warped for ``distortion`` [1, 1] by the normal ``field``
        [N, H, W, 1], clipped."""
        n, h, w, c = x.shape
        alpha = distortion * (0.1 * max(h, w))
        sigma = distortion * (0.05 * min(h, w))
        widest = int(6 * 0.05 * min(h, w) * self.scale[1]) | 1
        reach = B.floor(B.floor(sigma * 6.0) * 0.5)  # (int(6σ)|1 − 1)/2 taps each side
        safe = B.maximum(sigma, 1e-12)
        rows = gaussian_band(safe, widest, h, reach)
        cols = gaussian_band(safe, widest, w, reach)
        shift = B.reshape(blur_with(field * sigma, rows, cols), (n, h * w)) * alpha
        xs, ys = output_grid(x)
        how = Sampling(self.interpolation, self.fill_mode, float(self.fill_value))
        moved = B.reshape(sample_points(x, ys + shift, xs + shift, how), (n, h, w, c))
        return clip(where(chosen, moved, x), self.value_range)

    def get_config(self):
        return {
            **super().get_config(),
            "factor": self.factor,
            "scale": self.scale,
            "interpolation": self.interpolation,
            "fill_mode": self.fill_mode,
            "fill_value": self.fill_value,
            "value_range": self.value_range,
        }
