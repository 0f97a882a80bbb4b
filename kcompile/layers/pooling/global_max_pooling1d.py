"""Keras's ``GlobalMaxPooling1D``."""

from __future__ import annotations

from kcompile.layers.pooling.global_max_pooling2d import GlobalMaxPooling2D


class GlobalMaxPooling1D(GlobalMaxPooling2D):
    pass


GlobalMaxPool1D = GlobalMaxPooling1D  # Keras's other name for it
