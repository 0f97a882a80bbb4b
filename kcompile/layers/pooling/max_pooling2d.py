"""Keras's ``MaxPooling2D``, channels last."""

from __future__ import annotations

import math

from kcompile.ir import build as B
from kcompile.layers.pooling.base_pooling import BasePooling2D


class MaxPooling2D(BasePooling2D):
    def call(self, ctx, x):
        tiles = self._tiles(x)
        if tiles is not None:
            return B.reduce_max(tiles, (2, 4))
        windows, _ = self._windows(x, -math.inf)
        return B.reduce_max(windows, 3)


MaxPool2D = MaxPooling2D  # Keras's other name for it
