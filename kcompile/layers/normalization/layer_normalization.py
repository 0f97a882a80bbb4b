"""Keras's ``LayerNormalization`` over the last axis."""

from __future__ import annotations

from typing import Any

from kcompile.ir import build as B
from kcompile.layers.layer import Layer
from kcompile.layers.normalization.scale_and_shift import scale_and_shift


class LayerNormalization(Layer):
    propagates_mask = True

    def __init__(
        self,
        axis: int = -1,
        epsilon: float = 1e-3,
        center: bool = True,
        scale: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if isinstance(axis, list | tuple) and len(axis) == 1:
            axis = axis[0]  # Keras's configs hold the axes as a list
        if axis != -1:
            raise NotImplementedError(f"LayerNormalization '{self.name}': axis=-1 only")
        self.axis, self.epsilon, self.center, self.scale = axis, float(epsilon), center, scale

    def build(self, input_shape):
        c = (input_shape[-1],)
        self.gamma = self.add_weight(c, "ones", name="gamma") if self.scale else None
        self.beta = self.add_weight(c, "zeros", name="beta") if self.center else None

    def call(self, ctx, x):
        return scale_and_shift(ctx, self, B.layer_norm(x, self.epsilon))

    def get_config(self):
        return {
            **super().get_config(),
            "axis": self.axis,
            "epsilon": self.epsilon,
            "center": self.center,
            "scale": self.scale,
        }
