"""Keras's ``AdaptiveAveragePooling1D`` (see base_adaptive_pooling for the bins)."""

from __future__ import annotations

from kcompile.layers.pooling.base_adaptive_pooling import BaseAdaptiveAveragePooling


class AdaptiveAveragePooling1D(BaseAdaptiveAveragePooling):
    rank = 1
