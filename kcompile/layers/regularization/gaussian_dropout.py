"""Keras's ``GaussianDropout``, in training only."""

from __future__ import annotations

import math
from typing import Any

from kcompile.ir import build as B
from kcompile.layers.layer import Layer
from kcompile.layers.regularization.layer_seed import layer_seed
from kcompile.random import standard_normal


class GaussianDropout(Layer):
    """Multiplies by N(1, rate / (1 - rate)) noise in training."""

    propagates_mask = True

    def __init__(self, rate: float, seed: int | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if not 0 <= rate < 1:
            raise ValueError(f"GaussianDropout '{self.name}': rate must be in [0, 1)")
        self.rate, self.seed = float(rate), layer_seed(seed)
        self._given_seed = seed  # (the config's, as Keras's: None draws anew)

    def call(self, ctx, x):
        if not ctx.training or self.rate == 0:
            return x
        stddev = math.sqrt(self.rate / (1.0 - self.rate))
        u = B.random_uniform(ctx.step_counter(), x.shape, self.seed)
        return x * (B.cast(standard_normal(u), x.dtype) * stddev + 1.0)

    def get_config(self):
        return {**super().get_config(), "rate": self.rate, "seed": self._given_seed}
