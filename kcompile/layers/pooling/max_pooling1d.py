"""Keras's ``MaxPooling1D``: a MaxPooling2D of height 1."""

from __future__ import annotations

from kcompile.layers.pooling.base_pooling import BasePooling1D
from kcompile.layers.pooling.max_pooling2d import MaxPooling2D


class MaxPooling1D(BasePooling1D):
    pool_2d = MaxPooling2D


MaxPool1D = MaxPooling1D  # Keras's other name for it
