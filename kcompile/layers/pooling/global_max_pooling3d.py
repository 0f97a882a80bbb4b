"""Keras's ``GlobalMaxPooling3D``: GlobalMaxPooling2D's reduction over three axes."""

from __future__ import annotations

from kcompile.layers.pooling.global_max_pooling2d import GlobalMaxPooling2D


class GlobalMaxPooling3D(GlobalMaxPooling2D):
    pass


GlobalMaxPool3D = GlobalMaxPooling3D  # Keras's other name for it
