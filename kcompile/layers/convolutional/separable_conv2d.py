"""Keras's ``SeparableConv2D``: a depthwise convolution, then a pointwise (1x1) one."""

from __future__ import annotations

import math
from typing import Any

from kcompile import activations
from kcompile.ir import build as B
from kcompile.layers.convolutional.base_conv import (
    bias_weight,
    conv_config,
    set_window,
    window_padding,
)
from kcompile.layers.layer import Layer
from kcompile.layers.weight_arguments import set_weight_arguments


class SeparableConv2D(Layer):
    """A depthwise convolution (``depth_multiplier`` maps per channel) followed by a 1x1
    (pointwise) convolution to ``filters``, then bias and activation; Keras's weights
    ``depthwise_kernel`` (KH, KW, C, M), ``pointwise_kernel`` (1, 1, C*M, F), ``bias``."""

    rank = 2

    def __init__(
        self,
        filters: int,
        kernel_size: Any,
        strides: Any = 1,
        padding: str = "valid",
        data_format: str | None = None,
        dilation_rate: Any = 1,
        depth_multiplier: int = 1,
        activation: Any = None,
        use_bias: bool = True,
        depthwise_initializer: Any = "glorot_uniform",
        pointwise_initializer: Any = "glorot_uniform",
        bias_initializer: Any = "zeros",
        depthwise_regularizer: Any = None,
        pointwise_regularizer: Any = None,
        bias_regularizer: Any = None,
        depthwise_constraint: Any = None,
        pointwise_constraint: Any = None,
        bias_constraint: Any = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        set_weight_arguments(
            self,
            depthwise_initializer=depthwise_initializer,
            pointwise_initializer=pointwise_initializer,
            bias_initializer=bias_initializer,
            depthwise_regularizer=depthwise_regularizer,
            pointwise_regularizer=pointwise_regularizer,
            bias_regularizer=bias_regularizer,
            depthwise_constraint=depthwise_constraint,
            pointwise_constraint=pointwise_constraint,
            bias_constraint=bias_constraint,
        )
        self.filters = int(filters)
        set_window(self, self.rank, kernel_size, strides, dilation_rate, padding, data_format)
        self.depth_multiplier = int(depth_multiplier)
        self.activation = activations.get(activation)
        self.use_bias = use_bias

    def build(self, input_shape):
        if len(input_shape) != self.rank + 2:
            raise ValueError(
                f"{type(self).__name__} '{self.name}' expects inputs of rank {self.rank + 2}, "
                f"got shape {input_shape}"
            )
        c, m = input_shape[-1], self.depth_multiplier
        self.depthwise_kernel = self.add_weight(
            (*self.kernel_size, c, m),
            self.depthwise_initializer,
            name="depthwise_kernel",
            regularizer=self.depthwise_regularizer,
            constraint=self.depthwise_constraint,
        )
        self.pointwise_kernel = self.add_weight(
            (*[1] * self.rank, c * m, self.filters),
            self.pointwise_initializer,
            name="pointwise_kernel",
            regularizer=self.pointwise_regularizer,
            constraint=self.pointwise_constraint,
        )
        self.bias = bias_weight(self, self.filters, self.bias_initializer)

    def _separable(self, ctx, x, kernel_size, strides, dilation):
        n, _, _, c = x.shape
        pads = window_padding(self.padding, x.shape[1:3], kernel_size, strides, dilation, self.name)
        p = B.extract_patches(x, kernel_size, strides, dilation, pads)
        taps, m = math.prod(kernel_size), self.depth_multiplier
        oh, ow = p.shape[1], p.shape[2]
        p = B.reshape(p, (n, oh, ow, taps, c, 1))
        depthwise = B.reshape(ctx.weight(self.depthwise_kernel), (taps, c, m))
        y = B.reshape(B.reduce_sum(p * depthwise, 3), (n, oh, ow, c * m))
        pointwise = B.reshape(ctx.weight(self.pointwise_kernel), (c * m, self.filters))
        y = B.matmul(y, pointwise)
        if self.bias is not None:
            y = y + ctx.weight(self.bias)
        return self.activation(y)

    def call(self, ctx, x):
        return self._separable(ctx, x, self.kernel_size, self.strides, self.dilation_rate)

    def get_config(self):
        return {
            **super().get_config(),
            "filters": self.filters,
            "depth_multiplier": self.depth_multiplier,
            **conv_config(self, "depthwise", "pointwise", "bias"),
        }


SeparableConvolution2D = SeparableConv2D  # Keras's other name for it
