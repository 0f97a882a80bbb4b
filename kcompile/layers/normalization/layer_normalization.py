"""Keras's ``LayerNormalization`` over any axis or axes but the batch's.

The normalized axes are moved last and joined into one (a view when they are last
already), so the row-local ``layer_norm`` primitive does the work whatever the axes."""

from __future__ import annotations

import math
from typing import Any

from kcompile.ir import Value
from kcompile.ir import build as B
from kcompile.layers.layer import Layer
from kcompile.layers.weight_arguments import scale_weight, set_weight_arguments, weight_config


class LayerNormalization(Layer):
    propagates_mask = True

    computes_in_float32 = True  # as Keras: statistics in float32 under a mixed policy

    def __init__(
        self,
        axis: int | list[int] = -1,
        epsilon: float = 1e-3,
        center: bool = True,
        scale: bool = True,
        beta_initializer: Any = "zeros",
        gamma_initializer: Any = "ones",
        beta_regularizer: Any = None,
        gamma_regularizer: Any = None,
        beta_constraint: Any = None,
        gamma_constraint: Any = None,
        rms_scaling: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if rms_scaling:  # (deprecated in Keras, which points to RMSNormalization)
            raise NotImplementedError(
                f"LayerNormalization '{self.name}': rms_scaling=True is not supported by "
                "kcompile; use keras.layers.RMSNormalization"
            )
        self.rms_scaling = False
        if isinstance(axis, list | tuple):
            axis = [int(a) for a in axis]
        elif not isinstance(axis, int):
            raise TypeError(
                f"LayerNormalization '{self.name}': expected an int or a list/tuple of ints "
                f"for the argument 'axis', but received: {axis!r}"
            )
        self.axis, self.epsilon, self.center, self.scale = axis, float(epsilon), center, scale
        set_weight_arguments(
            self,
            beta_initializer=beta_initializer,
            gamma_initializer=gamma_initializer,
            beta_regularizer=beta_regularizer,
            gamma_regularizer=gamma_regularizer,
            beta_constraint=beta_constraint,
            gamma_constraint=gamma_constraint,
        )

    def build(self, input_shape):
        rank = len(input_shape)
        axes = sorted(self.axis) if isinstance(self.axis, list) else [self.axis]
        for a in axes:
            if not -rank <= a < rank or a % rank == 0:
                raise ValueError(
                    f"LayerNormalization '{self.name}': axis {a} is not an axis of the "
                    f"features of inputs of shape {tuple(input_shape)} (the batch axis "
                    "cannot be normalized over)"
                )
        self.axis = axes  # Keras keeps the axes as a sorted list once built
        shape = tuple(input_shape[a] for a in axes)
        self.gamma = scale_weight(self, "gamma", shape) if self.scale else None
        self.beta = scale_weight(self, "beta", shape) if self.center else None

    def call(self, ctx, x):
        axes = sorted({a % x.rank for a in self.axis})
        y = normalize_over(x, axes, self.epsilon)
        spread = tuple(x.shape[i] if i in axes else 1 for i in range(1, x.rank))
        for weight, combine in ((self.gamma, B.mul), (self.beta, B.add)):
            if weight is not None:
                w = ctx.weight(weight)
                y = combine(y, w if w.shape == spread[-w.rank :] else B.reshape(w, spread))
        return y

    def get_config(self):
        return {
            **super().get_config(),
            "axis": self.axis,
            "epsilon": self.epsilon,
            "center": self.center,
            "scale": self.scale,
            "rms_scaling": self.rms_scaling,
            **weight_config(self, "beta", "gamma"),
        }


def normalize_over(x: Value, axes: list[int], epsilon: float) -> Value:
    """``(x - mean) / sqrt(variance + epsilon)`` over ``axes`` (batch axis excluded)."""
    if axes == [x.rank - 1]:
        return B.layer_norm(x, epsilon)
    rest = [i for i in range(x.rank) if i not in axes]
    order = rest + axes
    moved = x if order == list(range(x.rank)) else B.transpose(x, tuple(order))
    kept = moved.shape[: len(rest)]
    rows = B.reshape(moved, (*kept, math.prod(moved.shape[len(rest) :])))
    y = B.reshape(B.layer_norm(rows, epsilon), moved.shape)
    if moved is x:
        return y
    back = tuple(order.index(i) for i in range(x.rank))
    return B.transpose(y, back)
