"""Keras's ``Conv2D``, channels last.

A convolution is image patches (``extract_patches``, im2col) times the kernel
reshaped to [KH*KW*Cin, Cout]: one matrix product, whose gradients are
products too, and whose bias and activation fuse into its epilogue.
"""

from __future__ import annotations

import math
from typing import Any

from kcompile import activations
from kcompile.ir import Value
from kcompile.ir import build as B
from kcompile.layers.convolutional.base_conv import (
    bias_weight,
    set_window,
    window_config,
    window_padding,
)
from kcompile.layers.layer import Layer, TraceContext


class Conv2D(Layer):
    def __init__(
        self,
        filters: int,
        kernel_size: Any,
        strides: Any = 1,
        padding: str = "valid",
        data_format: str | None = None,
        dilation_rate: Any = 1,
        groups: int = 1,
        activation: Any = None,
        use_bias: bool = True,
        kernel_initializer: Any = "glorot_uniform",
        bias_initializer: Any = "zeros",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if groups != 1:
            raise NotImplementedError(
                f"{type(self).__name__} '{self.name}': groups > 1 is not supported yet"
            )
        self.filters = int(filters)
        set_window(self, 2, kernel_size, strides, dilation_rate, padding, data_format)
        self.activation = activations.get(activation)
        self.use_bias = use_bias
        self.kernel_initializer, self.bias_initializer = kernel_initializer, bias_initializer

    def build(self, input_shape):
        if len(input_shape) != 4:
            raise ValueError(
                f"Conv2D '{self.name}' expects inputs of rank 4 (batch, height, "
                f"width, channels), got shape {input_shape}"
            )
        self.kernel = self.add_weight(
            (*self.kernel_size, input_shape[-1], self.filters),
            self.kernel_initializer,
            name="kernel",
        )
        self.bias = bias_weight(self, self.filters, self.bias_initializer)

    def call(self, ctx: TraceContext, x: Value) -> Value:
        patches = self.patches(x)
        kernel = ctx.weight(self.kernel)
        y = B.matmul(patches, B.reshape(kernel, (math.prod(kernel.shape[:3]), self.filters)))
        return self.finish(ctx, y)

    def patches(self, x: Value) -> Value:
        """The receptive fields of ``x`` for this layer's window (im2col)."""
        pads = window_padding(
            self.padding,
            x.shape[1:3],
            self.kernel_size,
            self.strides,
            self.dilation_rate,
            self.name,
        )
        return B.extract_patches(x, self.kernel_size, self.strides, self.dilation_rate, pads)

    def finish(self, ctx: TraceContext, y: Value) -> Value:
        """Bias and activation: the epilogue the product fuses."""
        if self.bias is not None:
            y = y + ctx.weight(self.bias)
        return self.activation(y)

    def get_config(self):
        return {
            **super().get_config(),
            "filters": self.filters,
            **window_config(self),
        }


Convolution2D = Conv2D  # Keras's other name for it
