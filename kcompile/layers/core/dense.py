"""Keras's ``Dense``: a matrix product with the kernel, plus bias, then the activation."""

from __future__ import annotations

from typing import Any

from kcompile import activations, constraints
from kcompile.ir import DType, Value
from kcompile.ir import build as B
from kcompile.layers.layer import Layer, TraceContext
from kcompile.utils.config_serialization import serialize_optional


class Dense(Layer):
    propagates_mask = True

    def __init__(
        self,
        units: int,
        activation: Any = None,
        use_bias: bool = True,
        kernel_initializer: Any = "glorot_uniform",
        bias_initializer: Any = "zeros",
        kernel_regularizer: Any = None,
        bias_regularizer: Any = None,
        kernel_constraint: Any = None,
        bias_constraint: Any = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.kernel_regularizer, self.bias_regularizer = kernel_regularizer, bias_regularizer
        self.kernel_constraint = constraints.get(kernel_constraint)
        self.bias_constraint = constraints.get(bias_constraint)
        if not isinstance(units, int) or units <= 0:
            raise ValueError(
                f"Dense '{self.name}': units must be a positive integer, got {units!r}"
            )
        self.units = units
        self.activation = activations.get(activation)
        self.use_bias = use_bias
        self.kernel_initializer = kernel_initializer
        self.bias_initializer = bias_initializer

    def build(self, input_shape):
        if input_shape[-1] is None:
            raise ValueError(
                f"Dense '{self.name}': the last dimension of the input must be "
                f"known, got shape {input_shape}"
            )
        self.kernel = self.add_weight(
            (input_shape[-1], self.units),
            self.kernel_initializer,
            name="kernel",
            regularizer=self.kernel_regularizer,
            constraint=self.kernel_constraint,
        )
        self.bias = (
            self.add_weight(
                (self.units,),
                self.bias_initializer,
                name="bias",
                regularizer=self.bias_regularizer,
                constraint=self.bias_constraint,
            )
            if self.use_bias
            else None
        )

    def call(self, ctx: TraceContext, x: Value) -> Value:
        if not x.dtype.is_float:  # Keras's matmul promotes integers to the kernel's float
            x = B.cast(x, DType.f32)
        y = B.matmul(x, ctx.weight(self.kernel))
        if self.bias is not None:
            y = y + ctx.weight(self.bias)
        return self.activation(y)

    def get_config(self):
        return {
            **super().get_config(),
            "units": self.units,
            "use_bias": self.use_bias,
            "activation": activations.serialize(self.activation),
            "kernel_constraint": serialize_optional(constraints, self.kernel_constraint),
            "bias_constraint": serialize_optional(constraints, self.bias_constraint),
        }
