"""Keras's ``Masking``: masks (and zeroes) the steps whose features all equal a value."""

from __future__ import annotations

from typing import Any

from kcompile.ir import Value
from kcompile.ir import build as B
from kcompile.layers.layer import Layer


class Masking(Layer):
    """Keras's Masking: a step whose features all equal ``mask_value`` is masked for
    the layers after it, and zeroed."""

    def __init__(self, mask_value: float = 0.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.mask_value = float(mask_value)

    def _kept(self, x: Value) -> Value:
        differs = B.cast(B.ne(x, self.mask_value), x.dtype)
        return B.gt(B.reduce_max(differs, -1), 0.0)  # any over the features

    def call(self, ctx, x):
        kept = B.cast(self._kept(x), x.dtype)
        return x * B.reshape(kept, (*kept.shape, 1))

    def compute_mask(self, inputs, previous_mask):
        return self._kept(inputs)

    def get_config(self):
        return {**super().get_config(), "mask_value": self.mask_value}
