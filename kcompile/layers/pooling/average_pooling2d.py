"""Keras's ``AveragePooling2D``, channels last (with "same" padding, the mean of the
real pixels of each window, as TensorFlow's)."""

from __future__ import annotations

import math

import numpy as np

from kcompile.ir import build as B
from kcompile.ir.ops.patches import _ref_extract
from kcompile.ir.registry import RefContext
from kcompile.layers.pooling.base_pooling import BasePooling2D


class AveragePooling2D(BasePooling2D):
    def call(self, ctx, x):
        tiles = self._tiles(x)
        if tiles is not None:
            return B.reduce_sum(tiles, (2, 4)) * (1.0 / math.prod(self.pool_size))
        windows, pads = self._windows(x, 0.0)
        total = B.reduce_sum(windows, 3)
        if not any(pads):
            return total * (1.0 / math.prod(self.pool_size))
        # "same": TensorFlow divides by the number of real (unpadded) elements.
        h, w = x.shape[1:3]
        ones = np.ones((1, h, w, 1), np.float32)
        attrs = {
            "kernel": self.pool_size,
            "strides": self.strides,
            "dilation": (1, 1),
            "padding": pads,
            "value": 0.0,
        }
        counts = _ref_extract(RefContext(None), [ones], attrs)[0].sum(-1)[0]
        inverse = B.const_array(
            x.graph, (1.0 / counts).reshape(-1).tolist(), total.dtype, (*counts.shape, 1)
        )
        return total * inverse


AvgPool2D = AveragePooling2D  # Keras's other name for it
