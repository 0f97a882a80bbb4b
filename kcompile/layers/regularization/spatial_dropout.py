"""Keras's ``SpatialDropout1D`` and ``SpatialDropout2D``: dropout of whole feature maps,
in training only."""

from __future__ import annotations

from typing import Any

from kcompile.ir import build as B
from kcompile.layers.layer import Layer
from kcompile.layers.regularization.layer_seed import layer_seed


class SpatialDropout1D(Layer):
    """Dropout of whole feature maps: one draw per (sample, channel) of (batch, steps,
    channels), as Keras's noise shape (batch, 1, channels)."""

    propagates_mask = True

    rank = 3

    def __init__(self, rate: float, seed: int | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if not 0 <= rate < 1:
            raise ValueError(f"{type(self).__name__} '{self.name}': rate must be in [0, 1)")
        self.rate, self.seed = float(rate), layer_seed(seed)
        self._given_seed = seed  # (the config's, as Keras's: None draws anew)

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
        # Keras's keys: its spatial dropouts take no ``trainable``, so a config with one
        # would not load there, and write the policy by its name
        config = {**super().get_config(), "rate": self.rate, "seed": self._given_seed}
        config.pop("trainable", None)
        config["dtype"] = self.dtype_policy.name
        return config


class SpatialDropout2D(SpatialDropout1D):
    """One draw per (sample, channel) of (batch, height, width, channels)."""

    rank = 4

    def __init__(self, rate: float, data_format: Any = None, seed: int | None = None, **kwargs):
        if data_format not in (None, "channels_last"):
            raise NotImplementedError("SpatialDropout2D: only channels_last")
        super().__init__(rate, seed=seed, **kwargs)

    def get_config(self):
        return {**super().get_config(), "data_format": "channels_last"}
