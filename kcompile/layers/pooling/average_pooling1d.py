"""Keras's ``AveragePooling1D``: an AveragePooling2D of height 1."""

from __future__ import annotations

from kcompile.layers.pooling.average_pooling2d import AveragePooling2D
from kcompile.layers.pooling.base_pooling import BasePooling1D


class AveragePooling1D(BasePooling1D):
    pool_2d = AveragePooling2D


AvgPool1D = AveragePooling1D  # Keras's other name for it
