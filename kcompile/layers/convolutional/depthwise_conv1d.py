"""Keras's ``DepthwiseConv1D``: ``depth_multiplier`` filters per input channel over
[N, L, C], from the 1-D patches a Conv1D reads (``conv_nd.patches_nd``)."""

from __future__ import annotations

from typing import Any

from kcompile import activations
from kcompile.ir import Value
from kcompile.ir import build as B
from kcompile.layers.convolutional.base_conv import set_window, window_padding
from kcompile.layers.convolutional.conv3d import (
    check_output_size,
)
from kcompile.layers.convolutional.conv_nd import (
    channels_back,
    channels_last,
    patches_nd,
    standard_data_format,
)
from kcompile.layers.layer import Layer, TraceContext
from kcompile.layers.weight_arguments import (
    activity_config,
    set_weight_arguments,
    weight_config,
)


class DepthwiseConv1D(Layer):
    """Keras's weights ``kernel`` (K, C, depth_multiplier) and ``bias`` (C*M); output
    channel ``c*M + m`` is input channel c convolved with its m-th filter."""

    def __init__(
        self,
        kernel_size: Any,
        strides: Any = 1,
        padding: str = "valid",
        depth_multiplier: int = 1,
        data_format: str | None = None,
        dilation_rate: Any = 1,
        activation: Any = None,
        use_bias: bool = True,
        depthwise_initializer: Any = "glorot_uniform",
        bias_initializer: Any = "zeros",
        depthwise_regularizer: Any = None,
        bias_regularizer: Any = None,
        depthwise_constraint: Any = None,
        bias_constraint: Any = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.data_format = standard_data_format(data_format)
        set_window(self, 1, kernel_size, strides, dilation_rate, padding, None)
        self.depth_multiplier = int(depth_multiplier)
        if self.depth_multiplier <= 0:
            raise ValueError(
                "Invalid value for argument `depth_multiplier`. Expected a strictly positive "
                f"value. Received depth_multiplier={depth_multiplier}."
            )
        if not all(self.kernel_size):
            raise ValueError(
                "The argument `kernel_size` cannot contain 0. Received "
                f"kernel_size={self.kernel_size}."
            )
        if not all(self.strides):
            raise ValueError(
                f"The argument `strides` cannot contains 0. Received strides={self.strides}"
            )
        self.activation = activations.get(activation)
        self.use_bias = bool(use_bias)
        set_weight_arguments(
            self,
            depthwise_initializer=depthwise_initializer,
            bias_initializer=bias_initializer,
            depthwise_regularizer=depthwise_regularizer,
            bias_regularizer=bias_regularizer,
            depthwise_constraint=depthwise_constraint,
            bias_constraint=bias_constraint,
        )

    def build(self, input_shape):
        if len(input_shape) != 3:
            raise ValueError(
                f"DepthwiseConv1D '{self.name}' expects inputs of rank 3 (batch, steps, "
                f"channels), got shape {tuple(input_shape)}"
            )
        c = input_shape[1 if self.data_format == "channels_first" else -1]
        m = self.depth_multiplier
        self.kernel = self.add_weight(
            (*self.kernel_size, c, m),
            self.depthwise_initializer,
            name="kernel",
            regularizer=self.depthwise_regularizer,
            constraint=self.depthwise_constraint,
        )
        self.bias = (
            self.add_weight(
                (c * m,),
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
        n, _, c = x.shape
        kernel = ctx.weight(self.kernel)
        check_output_size(self, x, kernel.shape)
        pads = window_padding(
            self.padding,
            x.shape[1:2],
            self.kernel_size,
            self.strides,
            self.dilation_rate,
            self.name,
        )
        p = patches_nd(x, self.kernel_size, self.strides, self.dilation_rate, pads)
        (k,), m, steps = self.kernel_size, self.depth_multiplier, p.shape[1]
        y = B.reduce_sum(B.reshape(p, (n, steps, k, c, 1)) * kernel, 2)
        y = B.reshape(y, (n, steps, c * m))
        if self.bias is not None:
            y = y + ctx.weight(self.bias)
        return channels_back(self.activation(y), self.data_format)

    def get_config(self):
        return {
            **super().get_config(),
            "depth_multiplier": self.depth_multiplier,
            "kernel_size": self.kernel_size,
            "strides": self.strides,
            "padding": self.padding,
            "data_format": self.data_format,
            "dilation_rate": self.dilation_rate,
            "activation": activations.serialize(self.activation),
            "use_bias": self.use_bias,
            **weight_config(self, "depthwise", "bias"),
            **activity_config(self),
        }
