"""Keras's ``GaussianNoise``, in training only."""

from __future__ import annotations

from typing import Any

from kcompile.ir import build as B
from kcompile.layers.layer import Layer
from kcompile.layers.regularization.layer_seed import layer_seed
from kcompile.random import standard_normal


class GaussianNoise(Layer):
    """Adds N(0, stddev²) noise in training."""

    propagates_mask = True

    def __init__(self, stddev: float, seed: int | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.stddev, self.seed = float(stddev), layer_seed(seed)
        self._given_seed = seed  # (the config's, as Keras's: None draws anew)

    def call(self, ctx, x):
        if not ctx.training or self.stddev == 0:
            return x
        u = B.random_uniform(ctx.step_counter(), x.shape, self.seed)
        return x + B.cast(standard_normal(u), x.dtype) * self.stddev

    def get_config(self):
        return {**super().get_config(), "stddev": self.stddev, "seed": self._given_seed}
