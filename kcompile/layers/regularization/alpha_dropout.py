"""Keras's ``AlphaDropout``: in training, dropped elements take SELU's negative
saturation value and an affine map keeps the mean and variance; identity otherwise."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from kcompile.ir import build as B
from kcompile.layers.layer import Layer
from kcompile.layers.regularization.layer_seed import layer_seed

# SELU's constants, as Keras writes them.
_ALPHA = 1.6732632423543772848170429916717
_SCALE = 1.0507009873554804934193349852946


class AlphaDropout(Layer):
    propagates_mask = True

    def __init__(
        self,
        rate: float,
        noise_shape: Sequence[int | None] | None = None,
        seed: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if not 0 <= rate <= 1:
            raise ValueError(
                "Invalid value received for argument `rate`. Expected a float value "
                f"between 0 and 1. Received: rate={rate}"
            )
        self.rate = rate
        self.noise_shape = noise_shape
        self.seed = seed
        # The stream of the step's counter-based generator this layer draws from.
        self._stream = layer_seed(seed)

    def call(self, ctx, x):
        if not ctx.training or self.rate <= 0:
            return x
        shape = x.shape
        if self.noise_shape is not None:
            if len(self.noise_shape) != x.rank:
                raise ValueError(
                    f"AlphaDropout '{self.name}': noise_shape {tuple(self.noise_shape)} does "
                    f"not match the input rank {x.rank}"
                )
            shape = tuple(d if n is None else n for n, d in zip(self.noise_shape, x.shape))
        alpha_p = -_ALPHA * _SCALE
        rate = float(self.rate)
        kept = B.ge(B.random_uniform(ctx.step_counter(), shape, self._stream), rate)
        a = ((1 - rate) * (1 + rate * alpha_p**2)) ** -0.5
        b = -a * alpha_p * rate
        # Keras's x * kept + alpha_p * (1 - kept), then a * x + b
        return B.select(kept, x * a + b, a * alpha_p + b)

    def get_config(self):
        return {
            **super().get_config(),
            "rate": self.rate,
            "seed": self.seed,
            "noise_shape": self.noise_shape,
        }
