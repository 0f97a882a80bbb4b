"""Keras's ``MaxPooling3D``, channels last: three MaxPooling2D of height 1."""

from __future__ import annotations

from kcompile.layers.pooling.base_pooling import BasePooling3D
from kcompile.layers.pooling.max_pooling2d import MaxPooling2D


class MaxPooling3D(BasePooling3D):
    pool_2d = MaxPooling2D


MaxPool3D = MaxPooling3D  # Keras's other name for it
