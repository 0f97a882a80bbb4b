"""Keras's ``SpatialDropout3D`` (Keras keeps it in spatial_dropout.py, beside the 1-D and
2-D ones): one draw per (sample, channel) of a batch of volumes."""

from __future__ import annotations

from typing import Any

from kcompile.ir import build as B
from kcompile.layers.regularization.spatial_dropout import SpatialDropout1D
from kcompile.layers.reshaping.volume_arguments import data_format_of


class SpatialDropout3D(SpatialDropout1D):
    """Keras's noise shape (batch, 1, 1, 1, channels), or (batch, channels, 1, 1, 1)
    channels first."""

    rank = 5

    def __init__(
        self, rate: float, data_format: str | None = None, seed: int | None = None, **kwargs: Any
    ) -> None:
        super().__init__(rate, seed=seed, **kwargs)
        self.data_format = data_format_of(self, data_format)

    def call(self, ctx, x):
        if self.data_format == "channels_last":
            return super().call(ctx, x)
        if x.rank != self.rank:
            raise ValueError(f"SpatialDropout3D '{self.name}' expects inputs of rank 5")
        if not ctx.training or self.rate == 0:
            return x
        shape = (x.shape[0], x.shape[1], 1, 1, 1)
        keep = B.ge(B.random_uniform(ctx.step_counter(), shape, self.seed), self.rate)
        return B.select(keep, x * (1.0 / (1.0 - self.rate)), 0.0)

    def get_config(self):
        # Keras's keys (its SpatialDropout3D takes no ``trainable``, so its config has none)
        config = {**super().get_config(), "data_format": self.data_format}
        config.pop("trainable", None)
        return config
