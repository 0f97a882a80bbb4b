"""Keras's ``Conv3D``: the patches of a volume (``conv_nd.patches_nd``, three 1-D
extractions) times the kernel reshaped to [KD*KH*KW*C, F], one matrix product whose
gradients are products too, as Conv2D's. It computes channels last; channels first is
a transpose on each side."""

from __future__ import annotations

import math
from typing import Any

from kcompile import activations
from kcompile.backend.keras_tensor import keras_shape
from kcompile.ir import Value
from kcompile.ir import build as B
from kcompile.layers.convolutional.base_conv import set_window, window_padding
from kcompile.layers.convolutional.conv_nd import (
    channels_back,
    channels_last,
    check_conv_args,
    patches_nd,
    standard_data_format,
)
from kcompile.layers.layer import Layer, TraceContext
from kcompile.layers.weight_arguments import (
    activity_config,
    set_weight_arguments,
    weight_config,
)


def check_output_size(layer: Layer, x: Value, kernel_shape: tuple[int, ...]) -> None:
    """Keras's refusal of a "valid" window larger than its input, at the call."""
    if layer.padding != "valid":
        return
    spatial = x.shape[1:-1]
    spans = [(k - 1) * d + 1 for k, d in zip(layer.kernel_size, layer.dilation_rate)]
    if any(size < span for size, span in zip(spatial, spans)):
        raise ValueError(
            f"layer '{layer.name}' ({type(layer).__name__}): Computed output size would be "
            f"zero or negative. Received `inputs shape={keras_shape(x.shape)}`, `kernel "
            f"shape={kernel_shape}`, `dilation_rate={layer.dilation_rate}`, "
            f"`strides={layer.strides}`, `padding={layer.padding}`."
        )


class Conv3D(Layer):
    """A 3-D convolution over [N, D, H, W, C]; Keras's weights ``kernel`` (KD, KH, KW,
    C, F) and ``bias`` (F)."""

    rank = 3

    def __init__(
        self,
        filters: int,
        kernel_size: Any,
        strides: Any = (1, 1, 1),
        padding: str = "valid",
        data_format: str | None = None,
        dilation_rate: Any = (1, 1, 1),
        groups: int = 1,
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
        self.filters, self.groups = int(filters), int(groups)
        self.data_format = standard_data_format(data_format)
        set_window(self, self.rank, kernel_size, strides, dilation_rate, padding, None)
        check_conv_args(self, self.filters, self.groups)
        self.activation = activations.get(activation)
        self.use_bias = bool(use_bias)
        set_weight_arguments(
            self,
            kernel_initializer=kernel_initializer,
            bias_initializer=bias_initializer,
            kernel_regularizer=kernel_regularizer,
            bias_regularizer=bias_regularizer,
            kernel_constraint=kernel_constraint,
            bias_constraint=bias_constraint,
        )

    def build(self, input_shape):
        if len(input_shape) != self.rank + 2:
            raise ValueError(
                f"{type(self).__name__} '{self.name}' expects inputs of rank "
                f"{self.rank + 2} (batch, depth, height, width, channels), got shape "
                f"{tuple(input_shape)}"
            )
        channels = input_shape[1 if self.data_format == "channels_first" else -1]
        self.kernel = self.add_weight(
            (*self.kernel_size, channels, self.filters),
            self.kernel_initializer,
            name="kernel",
            regularizer=self.kernel_regularizer,
            constraint=self.kernel_constraint,
        )
        self.bias = (
            self.add_weight(
                (self.filters,),
                self.bias_initializer,
                name="bias",
                regularizer=self.bias_regularizer,
                constraint=self.bias_constraint,
            )
            if self.use_bias
            else None
        )

    def call(self, ctx: TraceContext, x: Value) -> Value:
        x = channels_last(x, self.data_format)
        kernel = ctx.weight(self.kernel)
        check_output_size(self, x, kernel.shape)
        pads = window_padding(
            self.padding,
            x.shape[1:-1],
            self.kernel_size,
            self.strides,
            self.dilation_rate,
            self.name,
        )
        p = patches_nd(x, self.kernel_size, self.strides, self.dilation_rate, pads)
        y = B.matmul(p, B.reshape(kernel, (math.prod(kernel.shape[:-1]), self.filters)))
        if self.bias is not None:
            y = y + ctx.weight(self.bias)
        return channels_back(self.activation(y), self.data_format)

    def get_config(self):
        return {
            **super().get_config(),
            "filters": self.filters,
            "kernel_size": self.kernel_size,
            "strides": self.strides,
            "padding": self.padding,
            "data_format": self.data_format,
            "dilation_rate": self.dilation_rate,
            "groups": self.groups,
            "activation": activations.serialize(self.activation),
            "use_bias": self.use_bias,
            **weight_config(self, "kernel", "bias"),
            **activity_config(self),
        }


Convolution3D = Conv3D  # Keras's other name for it
