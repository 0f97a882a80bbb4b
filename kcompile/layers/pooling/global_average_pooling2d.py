"""Keras's ``GlobalAveragePooling2D``."""

from __future__ import annotations

import math

from kcompile.ir import build as B
from kcompile.layers.pooling.base_global_pooling import BaseGlobalPooling


class GlobalAveragePooling2D(BaseGlobalPooling):
    def call(self, ctx, x):
        axes = self.axes(x)
        return B.reduce_sum(x, axes, self.keepdims) * (1.0 / math.prod(x.shape[a] for a in axes))


GlobalAvgPool2D = GlobalAveragePooling2D  # Keras's other name for it
