"""Keras's ``Equalization``."""

from __future__ import annotations

from typing import Any

import numpy as np

from kcompile.ir import DType, Value
from kcompile.ir import build as B
from kcompile.ir.ops.row_gather import scatter_rows
from kcompile.layers.preprocessing.image_preprocessing.base_image_preprocessing_layer import (
    BaseImagePreprocessingLayer,
)
from kcompile.layers.preprocessing.image_preprocessing.value_range import value_range_of
from kcompile.ops.image_sampling import constant


class Equalization(BaseImagePreprocessingLayer):
    """In training, histogram equalization of each channel, as Keras's: the values go to
    [0, 255], fall into ``bins`` bins, and each is replaced by round(255·(cdf − cdf_min)
    / (total − cdf_min)) of its bin (a channel whose histogram has one bin or none is
    kept). As Keras's, a channel's histogram counts the pixels of every image of the
    batch together. Not random: ``seed`` is not taken."""

    def __init__(
        self, value_range: Any = (0, 255), bins: int = 256, data_format: Any = None, **kwargs: Any
    ) -> None:
        super().__init__(data_format=data_format, **kwargs)
        self.bins = int(bins)
        self.value_range = value_range_of(f"Equalization '{self.name}'", value_range)

    def call(self, ctx, x):
        x = self.images(x)
        if not ctx.training:
            return x
        return self.equalize(x)

    def equalize(self, x: Value) -> Value:
        n, h, w, c = x.shape
        bins = self.bins
        low, high = (float(v) for v in self.value_range)
        identity = (low, high) == (0.0, 255.0)
        scale = 255.0 / (high - low)
        scaled = x if identity else x * scale + (0.0 - low * scale)  # Keras's _scale_values
        top = float(bins - 1)
        # Keras bins the histogram as v·(bins − 1)/255 and looks up (v/255)·(bins − 1):
        # two roundings, kept apart
        counted = B.floor(B.minimum(B.maximum(scaled * top / 255.0, 0.0), top))
        looked_up = B.floor(B.minimum(B.maximum(scaled / 255.0 * top, 0.0), top))
        offsets = constant(x, (np.arange(c) * bins).reshape(1, 1, 1, c))

        def flat(index: Value) -> Value:  # [N, H·W·C]: the bin of each value's channel
            return B.cast(B.reshape(index + offsets, (n, h * w * c)), DType.i32)

        ones = B.broadcast_to(B.const(x.graph, 1.0, DType.f32, (1, 1, 1)), (n, h * w * c, 1))
        counts = B.reduce_sum(scatter_rows(flat(counted), ones, c * bins), (0,))  # [C·bins, 1]
        hist = B.reshape(counts, (c, bins))
        cdf = cumulative(hist)  # [C, bins]: counts up to each bin
        used = B.gt(hist, 0.0)
        # cdf at the first used bin: the smallest cdf among used bins
        cdf_min = -B.reduce_max(B.select(used, -cdf, -3.0e38), (1,), True)
        total = B.slice_(cdf, [0, bins - 1], [c, bins])
        spread = total - cdf_min
        spread = B.select(B.eq(spread, 0.0), spread * 0.0 + 1.0, spread)
        table = B.minimum(B.maximum(B.round_((cdf - cdf_min) * 255.0 / spread), 0.0), 255.0)
        equalized = B.take(B.reshape(table, (c * bins, 1)), flat(looked_up))  # [N, H·W·C, 1]
        equalized = B.reshape(equalized, (n, h, w, c))
        several = B.gt(B.reduce_sum(B.cast(used, DType.f32), (1,)), 1.0)  # [C]
        out = B.select(B.broadcast_to(B.reshape(several, (1, 1, 1, c)), x.shape), equalized, scaled)
        return out if identity else out * ((high - low) / 255.0) + low

    def get_config(self):
        config = super().get_config()
        config.pop("seed", None)
        return {**config, "value_range": list(self.value_range), "bins": self.bins}


def cumulative(x: Value) -> Value:
    """Running sums along the last axis, in log2(K) shifted additions (exact for the
    integer counts below 2^24 that a histogram holds)."""
    *lead, k = x.shape
    zeros = [0] * len(lead)
    shift = 1
    while shift < k:
        moved = B.pad(B.slice_(x, [*zeros, 0], [*lead, k - shift]), [*zeros, shift], [*zeros, 0])
        x = x + moved
        shift *= 2
    return x
