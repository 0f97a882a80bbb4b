"""Regularization layers active in training only: SpatialDropout1D/2D, GaussianNoise,
GaussianDropout; and ActivityRegularization, which adds its penalty to the loss.

Their random numbers come from the step's counter-based generator (``random_uniform``,
and ``kcompile.random.standard_normal`` for normal draws), keyed by the layer's seed.
"""

from __future__ import annotations

import math
from typing import Any

from kcompile.backend import session as backend
from kcompile.ir import build as B
from kcompile.layers.layer import Layer
from kcompile.random import standard_normal


def _seed(seed: int | None) -> int:
    return backend.draw_seed() if seed is None else int(seed)


class SpatialDropout1D(Layer):
    """Dropout of whole feature maps: one draw per (sample, channel) of (batch, steps,
    channels), as Keras's noise shape (batch, 1, channels)."""

    propagates_mask = True

    rank = 3

    def __init__(self, rate: float, seed: int | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if not 0 <= rate < 1:
            raise ValueError(f"{type(self).__name__} '{self.name}': rate must be in [0, 1)")
        self.rate, self.seed = float(rate), _seed(seed)

    def call(self, ctx, x):
        if x.rank != self.rank:
            raise ValueError(
                f"{type(self).__name__} '{self.name}' expects inputs of rank {self.rank}"
            )
        if not ctx.training or self.rate == 0:
            return x
        shape = (x.shape[0], *[1] * (x.rank - 2), x.shape[-1])
        keep = B.ge(B.random_uniform(ctx.step_counter(), shape, self.seed), self.rate)
        return B.select(keep, x * (1.0 / (1.0 - self.rate)), 0.0)

    def get_config(self):
        return {**super().get_config(), "rate": self.rate, "seed": self.seed}


class SpatialDropout2D(SpatialDropout1D):
    """One draw per (sample, channel) of (batch, height, width, channels)."""

    rank = 4

    def __init__(self, rate: float, data_format: Any = None, seed: int | None = None, **kwargs):
        if data_format not in (None, "channels_last"):
            raise NotImplementedError("SpatialDropout2D: only channels_last")
        super().__init__(rate, seed=seed, **kwargs)


class GaussianNoise(Layer):
    """Adds N(0, stddev²) noise in training."""

    propagates_mask = True

    def __init__(self, stddev: float, seed: int | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.stddev, self.seed = float(stddev), _seed(seed)

    def call(self, ctx, x):
        if not ctx.training or self.stddev == 0:
            return x
        u = B.random_uniform(ctx.step_counter(), x.shape, self.seed)
        return x + standard_normal(u) * self.stddev

    def get_config(self):
        return {**super().get_config(), "stddev": self.stddev, "seed": self.seed}


class GaussianDropout(Layer):
    """Multiplies by N(1, rate / (1 - rate)) noise in training."""

    propagates_mask = True

    def __init__(self, rate: float, seed: int | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if not 0 <= rate < 1:
            raise ValueError(f"GaussianDropout '{self.name}': rate must be in [0, 1)")
        self.rate, self.seed = float(rate), _seed(seed)

    def call(self, ctx, x):
        if not ctx.training or self.rate == 0:
            return x
        stddev = math.sqrt(self.rate / (1.0 - self.rate))
        u = B.random_uniform(ctx.step_counter(), x.shape, self.seed)
        return x * (standard_normal(u) * stddev + 1.0)

    def get_config(self):
        return {**super().get_config(), "rate": self.rate, "seed": self.seed}


class ActivityRegularization(Layer):
    """Identity that adds l1·sum|x| + l2·sum(x²) of its input to the loss."""

    propagates_mask = True

    def __init__(self, l1: float = 0.0, l2: float = 0.0, **kwargs: Any) -> None:
        from kcompile import regularizers

        super().__init__(activity_regularizer=regularizers.L1L2(l1=l1, l2=l2), **kwargs)
        self.l1, self.l2 = float(l1), float(l2)

    def call(self, ctx, x):
        return x

    def get_config(self):
        config = {**super().get_config(), "l1": self.l1, "l2": self.l2}
        config.pop("activity_regularizer", None)
        return config
