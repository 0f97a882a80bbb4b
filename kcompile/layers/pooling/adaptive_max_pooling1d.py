"""Keras's ``AdaptiveMaxPooling1D`` (see base_adaptive_pooling for the bins)."""

from __future__ import annotations

from kcompile.layers.pooling.base_adaptive_pooling import BaseAdaptiveMaxPooling


class AdaptiveMaxPooling1D(BaseAdaptiveMaxPooling):
    rank = 1
