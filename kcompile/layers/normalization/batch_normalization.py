"""Keras's ``BatchNormalization``: statistics per channel of ``axis`` (the last by default)."""

from __future__ import annotations

from typing import Any

import numpy as np

from kcompile import distribution
from kcompile.ir import build as B
from kcompile.layers.layer import Layer
from kcompile.layers.weight_arguments import (
    initializer_config,
    scale_weight,
    set_weight_arguments,
    weight_config,
)


class BatchNormalization(Layer):
    """Batch statistics (biased variance) in training, moving statistics otherwise;
    ``moving = moving * momentum + batch * (1 - momentum)`` in the train step.

    In a data-parallel job (``kcompile.distribution``), or with ``synchronized=True``,
    the batch statistics are the global batch's: sums over the replicas
    (``replica_sum``), as under Keras's DataParallel on JAX, where the batch axis is one
    sharded array."""

    propagates_mask = True

    computes_in_float32 = True  # as Keras: statistics in float32 under a mixed policy

    def __init__(
        self,
        axis: int = -1,
        momentum: float = 0.99,
        epsilon: float = 1e-3,
        center: bool = True,
        scale: bool = True,
        beta_initializer: Any = "zeros",
        gamma_initializer: Any = "ones",
        moving_mean_initializer: Any = "zeros",
        moving_variance_initializer: Any = "ones",
        beta_regularizer: Any = None,
        gamma_regularizer: Any = None,
        beta_constraint: Any = None,
        gamma_constraint: Any = None,
        synchronized: bool = False,
        renorm: bool = False,
        renorm_clipping: Any = None,
        renorm_momentum: float = 0.99,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.synchronized = bool(synchronized)
        if renorm or renorm_clipping is not None:
            raise NotImplementedError(
                f"BatchNormalization '{self.name}': renorm=True (batch renormalization, "
                "renorm_clipping) is not supported by kcompile"
            )
        # (Keras reads renorm_momentum only under renorm: kept for the config)
        self.renorm, self.renorm_clipping = False, None
        self.renorm_momentum = float(renorm_momentum)
        if not isinstance(axis, int | np.integer):
            raise NotImplementedError(
                f"BatchNormalization '{self.name}': axis must be one int, got {axis!r}"
            )
        self.axis, self.momentum, self.epsilon = axis, float(momentum), float(epsilon)
        self.center, self.scale = center, scale
        set_weight_arguments(
            self,
            beta_initializer=beta_initializer,
            gamma_initializer=gamma_initializer,
            moving_mean_initializer=moving_mean_initializer,
            moving_variance_initializer=moving_variance_initializer,
            beta_regularizer=beta_regularizer,
            gamma_regularizer=gamma_regularizer,
            beta_constraint=beta_constraint,
            gamma_constraint=gamma_constraint,
        )

    def _axis(self, rank: int) -> int:
        if not -rank <= self.axis < rank:
            raise ValueError(
                f"BatchNormalization '{self.name}': axis {self.axis} is out of range for "
                f"inputs of rank {rank}"
            )
        return self.axis % rank

    def build(self, input_shape):
        c = (input_shape[self._axis(len(input_shape))],)
        self.gamma = scale_weight(self, "gamma", c) if self.scale else None
        self.beta = scale_weight(self, "beta", c) if self.center else None
        self.moving_mean = self.add_weight(
            c, self.moving_mean_initializer, name="moving_mean", trainable=False
        )
        self.moving_variance = self.add_weight(
            c, self.moving_variance_initializer, name="moving_variance", trainable=False
        )

    def call(self, ctx, x):
        axis = self._axis(x.rank)
        axes = tuple(i for i in range(x.rank) if i != axis)
        # The per-channel statistics broadcast against x: (C,) then a 1 for each axis
        # after the channel axis ((C, 1, 1) for channels first).
        shape = (x.shape[axis],) + (1,) * (x.rank - 1 - axis)

        def channels(v):
            return B.reshape(v, shape)

        if ctx.training:
            if self.synchronized or distribution.active() is not None:
                count = B.replica_sum(B.numel(x, axes))
                mean = B.replica_sum(B.reduce_sum(x, axes)) / count
                variance = B.replica_sum(B.reduce_sum(B.square(x - channels(mean)), axes)) / count
            else:
                mean = B.mean(x, axes)
                variance = B.mean(B.square(x - channels(mean)), axes)
            m = self.momentum
            ctx.state_updates[self.moving_mean] = ctx.weight(self.moving_mean) * m + mean * (
                1.0 - m
            )
            ctx.state_updates[self.moving_variance] = ctx.weight(
                self.moving_variance
            ) * m + variance * (1.0 - m)
        else:
            mean, variance = ctx.weight(self.moving_mean), ctx.weight(self.moving_variance)
        inv = 1.0 / B.sqrt(variance + self.epsilon)
        if self.gamma is not None:
            inv = inv * ctx.weight(self.gamma)
        y = (x - channels(mean)) * channels(inv)
        return y + channels(ctx.weight(self.beta)) if self.beta is not None else y

    def get_config(self):
        return {
            **super().get_config(),
            "axis": self.axis,
            "momentum": self.momentum,
            "epsilon": self.epsilon,
            "center": self.center,
            "scale": self.scale,
            **weight_config(self, "beta", "gamma"),
            "moving_mean_initializer": initializer_config(self.moving_mean_initializer),
            "moving_variance_initializer": initializer_config(self.moving_variance_initializer),
            "synchronized": self.synchronized,
            "renorm": self.renorm,
            "renorm_clipping": self.renorm_clipping,
            "renorm_momentum": self.renorm_momentum,
        }
