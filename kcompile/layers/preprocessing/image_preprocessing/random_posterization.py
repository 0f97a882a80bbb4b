"""Keras's ``RandomPosterization``."""

from __future__ import annotations

import math
from typing import Any

from kcompile.ir import Value
from kcompile.ir import build as B
from kcompile.layers.preprocessing.image_preprocessing.base_image_preprocessing_layer import (
    BaseImagePreprocessingLayer,
    factor_range,
)
from kcompile.layers.preprocessing.image_preprocessing.value_range import (
    from_255,
    to_255,
    value_range_of,
)


class RandomPosterization(BaseImagePreprocessingLayer):
    """In training, keeps the ``bits`` high bits of each 8-bit value of an image, bits
    drawn per image as Keras's ``randint(factor[0], factor[1])`` (a number f gives
    [1, f), the upper bound excluded as Keras's; a pair of equal numbers that many
    bits): the images go to [0, 255], are truncated to integers (as Keras's cast to
    uint8) and return to ``value_range``."""

    def __init__(
        self,
        factor: Any,
        value_range: Any = (0, 255),
        data_format: Any = None,
        seed: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(seed=seed, data_format=data_format, **kwargs)
        what = f"RandomPosterization '{self.name}'"
        self.factor = factor_range(what, factor, (1.0, 8.0), "factor")
        self.value_range = value_range_of(what, value_range)

    def call(self, ctx, x):
        x = self.images(x)
        if not ctx.training:
            return x
        low, high = int(self.factor[0]), int(self.factor[1])
        if low == high:
            return self.posterize(x, low)
        bits = B.floor(self.uniform(ctx, x, 0, 0.0, 1.0) * float(high - low)) + float(low)
        return self.posterize(x, bits)

    def posterize(self, x: Value, bits: Value | float) -> Value:
        """x with its 8-bit values' low 8 − ``bits`` bits cleared (``bits`` [N, 1] or a
        number): floor(v / 2^s)·2^s, s = 8 − bits."""
        n = x.shape[0]
        values = B.floor(B.minimum(B.maximum(to_255(x, self.value_range), 0.0), 255.0))
        if isinstance(bits, int | float):
            step: Value | float = float(2 ** (8 - int(bits)))
        else:  # 2^s, exact for the integers s in [0, 7]
            step = B.reshape(B.round_(B.exp((8.0 - bits) * math.log(2.0))), (n, 1, 1, 1))
        return from_255(B.floor(values / step) * step, self.value_range)

    def get_config(self):
        return {
            **super().get_config(),
            "factor": self.factor,
            "value_range": list(self.value_range),
        }
