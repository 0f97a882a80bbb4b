"""Keras's ``Flatten``: (batch, ...) to (batch, features)."""

from __future__ import annotations

import math

from kcompile.ir import build as B
from kcompile.layers.layer import Layer


class Flatten(Layer):
    def call(self, ctx, x):
        rest = math.prod(d for d in x.shape[1:])
        return B.reshape(x, (x.shape[0], rest))
