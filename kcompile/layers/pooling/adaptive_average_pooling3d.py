"""Keras's ``AdaptiveAveragePooling3D`` (see base_adaptive_pooling for the bins)."""

from __future__ import annotations

from kcompile.layers.pooling.base_adaptive_pooling import BaseAdaptiveAveragePooling


class AdaptiveAveragePooling3D(BaseAdaptiveAveragePooling):
    rank = 3
