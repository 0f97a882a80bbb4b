"""Keras's ``BatchNormalization`` over the last axis."""

from __future__ import annotations

from typing import Any

from kcompile import distribution
from kcompile.ir import build as B
from kcompile.layers.layer import Layer


class BatchNormalization(Layer):
    """Batch statistics (biased variance) in training, moving statistics otherwise;
    ``moving = moving * momentum + batch * (1 - momentum)`` in the train step.

    In a data-parallel job (``kcompile.distribution``), or with ``synchronized=True``,
    the batch statistics are the global batch's: sums over the replicas
    (``replica_sum``), as under Keras's DataParallel on JAX, where the batch axis is one
    sharded array."""

    propagates_mask = True

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
        synchronized: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.synchronized = bool(synchronized)
        if axis not in (-1,):
            raise NotImplementedError(f"BatchNormalization '{self.name}': axis=-1 only")
        self.axis, self.momentum, self.epsilon = axis, float(momentum), float(epsilon)
        self.center, self.scale = center, scale
        self.initializers = (
            gamma_initializer,
            beta_initializer,
            moving_mean_initializer,
            moving_variance_initializer,
        )

    def build(self, input_shape):
        c = (input_shape[-1],)
        gamma, beta, mean, var = self.initializers
        self.gamma = self.add_weight(c, gamma, name="gamma") if self.scale else None
        self.beta = self.add_weight(c, beta, name="beta") if self.center else None
        self.moving_mean = self.add_weight(c, mean, name="moving_mean", trainable=False)
        self.moving_variance = self.add_weight(c, var, name="moving_variance", trainable=False)

    def call(self, ctx, x):
        if ctx.training:
            axes = tuple(range(x.rank - 1))
            if self.synchronized or distribution.active() is not None:
                count = B.replica_sum(B.numel(x, axes))
                mean = B.replica_sum(B.reduce_sum(x, axes)) / count
                variance = B.replica_sum(B.reduce_sum(B.square(x - mean), axes)) / count
            else:
                mean = B.mean(x, axes)
                variance = B.mean(B.square(x - mean), axes)
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
        y = (x - mean) * inv
        return y + ctx.weight(self.beta) if self.beta is not None else y

    def get_config(self):
        return {
            **super().get_config(),
            "axis": self.axis,
            "momentum": self.momentum,
            "epsilon": self.epsilon,
            "center": self.center,
            "scale": self.scale,
            "synchronized": self.synchronized,
        }
