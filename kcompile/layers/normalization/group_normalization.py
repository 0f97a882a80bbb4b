"""Keras's ``GroupNormalization`` over the last axis."""

from __future__ import annotations

from typing import Any

from kcompile.ir import build as B
from kcompile.layers.layer import Layer
from kcompile.layers.normalization.scale_and_shift import scale_and_shift
from kcompile.layers.weight_arguments import scale_weight, set_weight_arguments, weight_config


class GroupNormalization(Layer):
    """Keras's GroupNormalization over the last axis: its channels split into ``groups``,
    each normalized over every other axis but the batch, then scaled and shifted per
    channel."""

    propagates_mask = True

    computes_in_float32 = True  # as Keras: statistics in float32 under a mixed policy

    def __init__(
        self,
        groups: int = 32,
        axis: int = -1,
        epsilon: float = 1e-3,
        center: bool = True,
        scale: bool = True,
        beta_initializer: Any = "zeros",
        gamma_initializer: Any = "ones",
        beta_regularizer: Any = None,
        gamma_regularizer: Any = None,
        beta_constraint: Any = None,
        gamma_constraint: Any = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        set_weight_arguments(
            self,
            beta_initializer=beta_initializer,
            gamma_initializer=gamma_initializer,
            beta_regularizer=beta_regularizer,
            gamma_regularizer=gamma_regularizer,
            beta_constraint=beta_constraint,
            gamma_constraint=gamma_constraint,
        )
        if axis != -1:
            raise NotImplementedError(f"GroupNormalization '{self.name}': axis=-1 only")
        self.groups, self.axis, self.epsilon = int(groups), axis, float(epsilon)
        self.center, self.scale = center, scale

    def build(self, input_shape):
        channels = input_shape[-1]
        if channels is None or channels % self.groups:
            raise ValueError(
                f"GroupNormalization '{self.name}': {channels} channels cannot be split into "
                f"{self.groups} groups"
            )
        self.gamma = scale_weight(self, "gamma", (channels,)) if self.scale else None
        self.beta = scale_weight(self, "beta", (channels,)) if self.center else None

    def call(self, ctx, x):
        channels = x.shape[-1]
        grouped = B.reshape(x, (*x.shape[:-1], self.groups, channels // self.groups))
        axes = tuple(a for a in range(1, grouped.rank) if a != grouped.rank - 2)
        mean = B.mean(grouped, axes, keepdims=True)
        variance = B.mean(B.square(grouped - mean), axes, keepdims=True)
        inverse = 1.0 / B.sqrt(variance + self.epsilon)
        return scale_and_shift(ctx, self, B.reshape((grouped - mean) * inverse, x.shape))

    def get_config(self):
        return {
            **super().get_config(),
            "groups": self.groups,
            "axis": self.axis,
            "epsilon": self.epsilon,
            "center": self.center,
            "scale": self.scale,
            **weight_config(self, "beta", "gamma"),
        }
