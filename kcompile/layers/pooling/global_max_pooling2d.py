"""Keras's ``GlobalMaxPooling2D``."""

from __future__ import annotations

from kcompile.ir import build as B
from kcompile.layers.pooling.base_global_pooling import BaseGlobalPooling


class GlobalMaxPooling2D(BaseGlobalPooling):
    def call(self, ctx, x):
        return B.reduce_max(x, self.axes(x), self.keepdims)


GlobalMaxPool2D = GlobalMaxPooling2D  # Keras's other name for it
