"""Keras's ``DepthwiseConv2D``: ``depth_multiplier`` filters per input channel, from the
same patches as a Conv2D."""

from __future__ import annotations

import math
from typing import Any

from kcompile import activations
from kcompile.ir import build as B
from kcompile.layers.convolutional.base_conv import as_tuple, bias_weight, conv_config
from kcompile.layers.convolutional.conv2d import Conv2D
from kcompile.layers.layer import Layer
from kcompile.layers.weight_arguments import set_weight_arguments


class DepthwiseConv2D(Layer):
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
        set_weight_arguments(
            self,
            depthwise_initializer=depthwise_initializer,
            bias_initializer=bias_initializer,
            depthwise_regularizer=depthwise_regularizer,
            bias_regularizer=bias_regularizer,
            depthwise_constraint=depthwise_constraint,
            bias_constraint=bias_constraint,
        )
        if data_format not in (None, "channels_last"):
            raise NotImplementedError(
                f"DepthwiseConv2D '{self.name}': only channels_last is supported"
            )
        self.kernel_size = as_tuple(kernel_size, 2, "kernel_size")
        self.strides = as_tuple(strides, 2, "strides")
        self.dilation_rate = as_tuple(dilation_rate, 2, "dilation_rate")
        self.padding = padding.lower()
        self.depth_multiplier = int(depth_multiplier)
        self.activation = activations.get(activation)
        self.use_bias = use_bias

    def build(self, input_shape):
        if len(input_shape) != 4:
            raise ValueError(
                f"DepthwiseConv2D '{self.name}' expects inputs of rank 4, got shape {input_shape}"
            )
        c = input_shape[-1]
        self.kernel = self.add_weight(
            (*self.kernel_size, c, self.depth_multiplier),
            self.depthwise_initializer,
            name="kernel",
            regularizer=self.depthwise_regularizer,
            constraint=self.depthwise_constraint,
        )
        self.bias = bias_weight(self, c * self.depth_multiplier, self.bias_initializer)

    def call(self, ctx, x):
        n, _, _, c = x.shape
        p = Conv2D.patches(self, x)
        taps = math.prod(self.kernel_size)
        oh, ow = p.shape[1], p.shape[2]
        p = B.reshape(p, (n, oh, ow, taps, c, 1))
        kernel = B.reshape(ctx.weight(self.kernel), (taps, c, self.depth_multiplier))
        y = B.reduce_sum(p * kernel, 3)
        y = B.reshape(y, (n, oh, ow, c * self.depth_multiplier))
        return Conv2D.finish(self, ctx, y)

    def get_config(self):
        return {
            **super().get_config(),
            "depth_multiplier": self.depth_multiplier,
            **conv_config(self, "depthwise", "bias"),
        }
