"""Keras's ``DepthwiseConv2D``: ``depth_multiplier`` filters per input channel, from the
same patches as a Conv2D."""

from __future__ import annotations

import math
from typing import Any

from kcompile import activations
from kcompile.ir import build as B
from kcompile.layers.convolutional.base_conv import as_tuple
from kcompile.layers.convolutional.conv2d import Conv2D
from kcompile.layers.layer import Layer


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
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
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
        self.depthwise_initializer, self.bias_initializer = depthwise_initializer, bias_initializer

    def build(self, input_shape):
        if len(input_shape) != 4:
            raise ValueError(
                f"DepthwiseConv2D '{self.name}' expects inputs of rank 4, got shape {input_shape}"
            )
        c = input_shape[-1]
        self.kernel = self.add_weight(
            (*self.kernel_size, c, self.depth_multiplier), self.depthwise_initializer, name="kernel"
        )
        self.bias = (
            self.add_weight((c * self.depth_multiplier,), self.bias_initializer, name="bias")
            if self.use_bias
            else None
        )

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
            "kernel_size": self.kernel_size,
            "strides": self.strides,
            "padding": self.padding,
            "depth_multiplier": self.depth_multiplier,
            "dilation_rate": self.dilation_rate,
            "activation": activations.serialize(self.activation),
            "use_bias": self.use_bias,
        }
