"""Keras's ``AveragePooling3D``, channels last: three AveragePooling2D of height 1."""

from __future__ import annotations

from kcompile.layers.pooling.average_pooling2d import AveragePooling2D
from kcompile.layers.pooling.base_pooling import BasePooling3D


class AveragePooling3D(BasePooling3D):
    pool_2d = AveragePooling2D


AvgPool3D = AveragePooling3D  # Keras's other name for it
