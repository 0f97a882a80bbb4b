"""Keras's ``RandomFlip``."""

from __future__ import annotations

from typing import Any

from kcompile.ir import Value
from kcompile.ir import build as B
from kcompile.layers.preprocessing.image_preprocessing.base_image_preprocessing_layer import (
    BaseImagePreprocessingLayer,
)

HORIZONTAL = "horizontal"
VERTICAL = "vertical"
HORIZONTAL_AND_VERTICAL = "horizontal_and_vertical"


class RandomFlip(BaseImagePreprocessingLayer):
    """In training, flips each image with probability 1/2: left-right (``horizontal``),
    top-bottom (``vertical``), or both at once (``horizontal_and_vertical``: as Keras's,
    one draw per image decides both flips, so an image is kept or turned by 180°)."""

    def __init__(
        self,
        mode: str = HORIZONTAL_AND_VERTICAL,
        seed: int | None = None,
        data_format: Any = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(seed=seed, data_format=data_format, **kwargs)
        if mode not in (HORIZONTAL, VERTICAL, HORIZONTAL_AND_VERTICAL):
            raise ValueError(
                f"RandomFlip '{self.name}': mode must be 'horizontal', 'vertical' or "
                f"'horizontal_and_vertical', got {mode!r}"
            )
        self.mode = mode

    def call(self, ctx, x):
        x = self.images(x)
        if not ctx.training:
            return x
        return self.flip(x, B.le(self.uniform(ctx, x, 0, 0.0, 1.0), 0.5))

    def flip(self, x: Value, flips: Value) -> Value:
        """Images flipped as the mode says where ``flips`` [N, 1] (bool) is true."""
        flip = B.reshape(flips, (x.shape[0], 1, 1, 1))
        out = x
        if self.mode in (HORIZONTAL, HORIZONTAL_AND_VERTICAL):
            out = B.select(flip, B.reverse(out, 2), out)
        if self.mode in (VERTICAL, HORIZONTAL_AND_VERTICAL):
            out = B.select(flip, B.reverse(out, 1), out)
        return out

    def get_config(self):
        return {**super().get_config(), "mode": self.mode}
