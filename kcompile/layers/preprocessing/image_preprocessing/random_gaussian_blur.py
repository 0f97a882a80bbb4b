"""Keras's ``RandomGaussianBlur``."""

from __future__ import annotations

from typing import Any

import numpy as np

from kcompile.ir import DType, Value
from kcompile.ir import build as B
from kcompile.layers.preprocessing.image_preprocessing.base_image_preprocessing_layer import (
    BaseImagePreprocessingLayer,
    factor_range,
)
from kcompile.layers.preprocessing.image_preprocessing.random_draws import applied, clip, where
from kcompile.ops.image_filters import band


def odd_pair(what: str, value: Any, name: str) -> tuple[int, int]:
    """Keras's ``_set_kernel_size``: an odd number or a pair of odd numbers."""
    error = f"{what}: {name} must be an odd number. Received: {name}={value}"
    if isinstance(value, tuple | list):
        if len(value) != 2:
            raise ValueError(
                f"{what}: the `{name}` argument should be a number (or a list of two numbers) "
                f"Received: {name}={value}"
            )
        if value[0] % 2 == 0 or value[1] % 2 == 0:
            raise ValueError(error)
        return int(value[0]), int(value[1])
    if isinstance(value, int | float) and not isinstance(value, bool):
        if value % 2 == 0:
            raise ValueError(error)
        return int(value), int(value)
    raise ValueError(error)


def gaussian_band(sigma: Value, size: int, length: int, reach: int | None = None) -> Value:
    """The zero-padded correlation with Keras's normalized Gaussian of a traced ``sigma``
    ([1, 1]) and ``size`` taps as an [length, length] matrix. With ``reach``, taps farther
    than it from the centre weigh 0 (a kernel narrower than ``size``; ``reach`` [1, 1])."""
    offsets = np.arange(size, dtype=np.float32) - np.float32((size - 1) / 2)
    g = sigma.graph
    x = B.const_array(g, offsets.tolist(), DType.f32, (1, size))
    weights = B.exp((x / sigma) * (x / sigma) * -0.5)
    if reach is not None:
        weights = B.select(B.le(B.abs(x), reach), weights, 0.0)
    weights = weights / B.reduce_sum(weights, (1,), keepdims=True)  # [1, size]
    shifts = np.stack(
        [band(np.eye(size, dtype=np.float32)[t], length, "same") for t in range(size)]
    )
    stacked = B.const_array(g, shifts.ravel().tolist(), DType.f32, shifts.shape)
    return B.reshape(
        B.matmul(weights, B.reshape(stacked, (size, length * length))), (length, length)
    )


def blur_with(x: Value, rows: Value, cols: Value) -> Value:
    """Images [N, H, W, C] filtered by IR matrices ``rows`` [H, H] and ``cols`` [W, W]."""
    y = B.matmul(B.transpose(x, (0, 1, 3, 2)), cols, transpose_b=True)
    y = B.matmul(B.transpose(y, (0, 3, 2, 1)), rows, transpose_b=True)
    return B.transpose(y, (0, 3, 1, 2))


class RandomGaussianBlur(BaseImagePreprocessingLayer):
    """In training, blurs each image with probability drawn in [factor[0], factor[1]]
    (a number f gives [0, f]) by a Gaussian of ``kernel_size`` whose two sigmas (width,
    height) are drawn once per batch in [sigma[0], sigma[1]] (+1e-6), as Keras's; the
    images are clipped to ``value_range``."""

    def __init__(
        self,
        factor: Any = 1.0,
        kernel_size: Any = 3,
        sigma: Any = 1.0,
        value_range: Any = (0, 255),
        data_format: Any = None,
        seed: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(seed=seed, data_format=data_format, **kwargs)
        what = f"RandomGaussianBlur '{self.name}'"
        self.factor = factor_range(what, factor, (0.0, 1.0), "factor")
        self.kernel_size = odd_pair(what, kernel_size, "kernel_size")
        self.sigma = factor_range(what, sigma, (0.0, 1.0), "sigma")
        self.value_range = value_range

    def call(self, ctx, x):
        x = self.images(x)
        if not ctx.training:
            return x
        sigmas = self.uniform(ctx, x, 2, self.sigma[0], self.sigma[1], shape=(1, 2)) + 1e-6
        return self.blur(x, applied(self, ctx, x, 0, self.factor), sigmas)

    def blur(self, x: Value, chosen: Value, sigmas: Value) -> Value:
        """The images ``chosen`` ([N, 1, 1, 1] bool) blurred with ``sigmas`` [1, 2]
        (width, height), clipped."""
        h, w = x.shape[1], x.shape[2]
        sigma_w = B.slice_(sigmas, [0, 0], [1, 1])
        sigma_h = B.slice_(sigmas, [0, 1], [1, 2])
        rows = gaussian_band(sigma_h, self.kernel_size[1], h)
        cols = gaussian_band(sigma_w, self.kernel_size[0], w)
        return clip(where(chosen, blur_with(x, rows, cols), x), self.value_range)

    def get_config(self):
        return {
            **super().get_config(),
            "factor": self.factor,
            "kernel_size": self.kernel_size,
            "sigma": self.sigma,
            "value_range": self.value_range,
        }
