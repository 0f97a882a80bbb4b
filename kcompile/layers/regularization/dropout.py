"""Keras's ``Dropout``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from kcompile.backend import session as backend
from kcompile.ir import build as B
from kcompile.layers.layer import Layer


class Dropout(Layer):
    """Inverted dropout: in training, zero each element with probability ``rate``
    and scale the rest by 1/(1-rate); identity in evaluation and prediction.

    The mask comes from the IR's counter-based random op keyed by this layer's
    seed and the optimizer's step counter, so training is reproducible.
    """

    propagates_mask = True

    def __init__(
        self,
        rate: float,
        noise_shape: Sequence[int | None] | None = None,
        seed: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if not 0 <= rate < 1:
            raise ValueError(f"Dropout '{self.name}': rate must be in [0, 1), got {rate}")
        self.rate = float(rate)
        self.noise_shape = tuple(noise_shape) if noise_shape is not None else None
        self.seed = backend.draw_seed() if seed is None else int(seed)
        self._given_seed = seed  # (the config's, as Keras's: None draws anew)

    def call(self, ctx, x):
        if not ctx.training or self.rate == 0:
            return x
        shape = x.shape
        if self.noise_shape is not None:
            if len(self.noise_shape) != x.rank:
                raise ValueError(
                    f"Dropout '{self.name}': noise_shape {self.noise_shape} does "
                    f"not match the input rank {x.rank}"
                )
            shape = tuple(d if n is None else n for n, d in zip(self.noise_shape, x.shape))
        u = B.random_uniform(ctx.step_counter(), shape, self.seed)
        keep = B.ge(u, self.rate)
        return B.select(keep, x * (1.0 / (1.0 - self.rate)), 0.0)

    def get_config(self):
        return {
            **super().get_config(),
            "rate": self.rate,
            "seed": self._given_seed,
            "noise_shape": self.noise_shape,
        }
