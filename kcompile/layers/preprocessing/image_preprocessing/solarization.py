"""Keras's ``Solarization``."""

from __future__ import annotations

from typing import Any

from kcompile.ir import Value
from kcompile.ir import build as B
from kcompile.layers.preprocessing.image_preprocessing.base_image_preprocessing_layer import (
    BaseImagePreprocessingLayer,
)
from kcompile.layers.preprocessing.image_preprocessing.value_range import (
    from_255,
    to_255,
    value_range_of,
)


def _solarization_factor(what: str, factor: Any, name: str) -> tuple[float, float]:
    """Keras's: a number f gives (0, f), a pair is sorted; each in [0, 1]."""
    values = list(factor) if isinstance(factor, tuple | list) else [factor]
    bad = not all(isinstance(v, int | float) and 0 <= v <= 1 for v in values)
    if bad or len(values) not in (1, 2):
        raise ValueError(
            f"{what}: the `addition_factor` and `threshold_factor` arguments should be a "
            f"number (or a list of two numbers) in the range [0, 1]. Received: "
            f"{name}={factor}"
        )
    low, high = sorted(values) if len(values) == 2 else (0.0, values[0])
    return float(low), float(high)


class Solarization(BaseImagePreprocessingLayer):
    """In training, on the images mapped to [0, 255]: adds a value drawn in
    [addition_factor[0], addition_factor[1]·255], clips, and inverts (255 − x) the pixels
    at or above a threshold drawn in [threshold_factor[0], threshold_factor[1]·255] (the
    lower bounds are not scaled by 255, as in Keras 3.15)."""

    def __init__(
        self,
        addition_factor: Any = 0.0,
        threshold_factor: Any = 0.0,
        value_range: Any = (0, 255),
        seed: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(seed=seed, **kwargs)
        what = f"Solarization '{self.name}'"
        self.addition_factor = _solarization_factor(what, addition_factor, "addition_factor")
        self.threshold_factor = _solarization_factor(what, threshold_factor, "threshold_factor")
        self.value_range = value_range_of(what, value_range)

    def call(self, ctx, x):
        x = self.images(x)
        if not ctx.training:
            return x
        add, threshold = self.addition_factor, self.threshold_factor
        additions = self.uniform(ctx, x, 0, add[0], add[1] * 255.0)
        thresholds = self.uniform(ctx, x, 1, threshold[0], threshold[1] * 255.0)
        return self.solarize(x, additions, thresholds)

    def solarize(self, x: Value, additions: Value, thresholds: Value) -> Value:
        """The solarized images for ``additions`` and ``thresholds`` [N, 1] (in 0..255)."""
        n = x.shape[0]
        images = B.minimum(
            B.maximum(to_255(x, self.value_range) + B.reshape(additions, (n, 1, 1, 1)), 0.0),
            255.0,
        )
        below = B.lt(images, B.reshape(thresholds, (n, 1, 1, 1)))
        return from_255(B.select(below, images, 255.0 - images), self.value_range)

    def get_config(self):
        return {
            **super().get_config(),
            "value_range": self.value_range,
            "addition_factor": self.addition_factor,
            "threshold_factor": self.threshold_factor,
        }
