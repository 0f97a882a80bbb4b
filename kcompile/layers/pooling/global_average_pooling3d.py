"""Keras's ``GlobalAveragePooling3D``: GlobalAveragePooling2D's reduction over three axes."""

from __future__ import annotations

from kcompile.layers.pooling.global_average_pooling2d import GlobalAveragePooling2D


class GlobalAveragePooling3D(GlobalAveragePooling2D):
    pass


GlobalAvgPool3D = GlobalAveragePooling3D  # Keras's other name for it
