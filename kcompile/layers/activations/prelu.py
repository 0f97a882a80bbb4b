"""Keras's ``PReLU``: ``x`` where ``x >= 0``, a learned ``alpha * x`` below, with
``alpha`` one weight per input element (shared along ``shared_axes``)."""

from __future__ import annotations

from typing import Any

from kcompile import initializers, ops, regularizers
from kcompile.layers.input_spec import InputSpec
from kcompile.layers.layer import Layer


class PReLU(Layer):
    propagates_mask = True

    def __init__(
        self,
        alpha_initializer: Any = "Zeros",
        alpha_regularizer: Any = None,
        alpha_constraint: Any = None,
        shared_axes: Any = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if alpha_constraint is not None:
            raise NotImplementedError(
                f"PReLU '{self.name}': alpha_constraint is not supported (kcompile has no "
                "weight constraints yet)"
            )
        self.alpha_initializer = initializers.get(alpha_initializer)
        self.alpha_regularizer = regularizers.get(alpha_regularizer)
        if shared_axes is None:
            self.shared_axes = None
        elif not isinstance(shared_axes, list | tuple):
            self.shared_axes = [shared_axes]
        else:
            self.shared_axes = list(shared_axes)

    def build(self, input_shape):
        param_shape = list(input_shape[1:])
        for i in self.shared_axes or ():
            param_shape[i - 1] = 1
        self.alpha = self.add_weight(
            param_shape,
            self.alpha_initializer,
            name="alpha",
            regularizer=self.alpha_regularizer,
        )
        axes = {}
        if self.shared_axes:
            axes = {
                i: input_shape[i]
                for i in range(1, len(input_shape))
                if i not in self.shared_axes and input_shape[i] is not None
            }
        self.input_spec = InputSpec(ndim=len(input_shape), axes=axes)

    def call(self, inputs):
        # Keras's formula, relu(x) - alpha * relu(-x), so the gradients at 0 are Keras's.
        return ops.relu(inputs) - self.alpha * ops.relu(-inputs)

    def get_config(self):
        return {
            **super().get_config(),
            "alpha_initializer": initializers.serialize(self.alpha_initializer),
            "alpha_regularizer": (
                None
                if self.alpha_regularizer is None
                else regularizers.serialize(self.alpha_regularizer)
            ),
            "alpha_constraint": None,
            "shared_axes": self.shared_axes,
        }
