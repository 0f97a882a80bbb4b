"""Keras's ``Conv2D``, channels last.

A convolution is the IR's ``conv2d``: the product of the image patches and the kernel
reshaped to [KH*KW*Cin, Cout], which codegen computes without the patches (an implicit
GEMM) and whose bias and activation fuse into its epilogue. Grouped convolutions are
patches (``extract_patches``, im2col) times each group's kernel.

Beyond Keras, ``quantize("int8", convolutions=True)`` makes the kernel int8 per filter
and each call an int8 convolution (``int8_conv``); plain ``quantize("int8")`` leaves the
layer in float with Keras's warning, as Keras does.
"""

from __future__ import annotations

import math
from typing import Any

from kcompile import activations
from kcompile.ir import Value
from kcompile.ir import build as B
from kcompile.layers.convolutional import int8_conv
from kcompile.layers.convolutional.base_conv import (
    bias_weight,
    conv_config,
    set_window,
    window_padding,
)
from kcompile.layers.layer import Layer, TraceContext
from kcompile.layers.weight_arguments import set_weight_arguments


class Conv2D(int8_conv.Int8Convolution, Layer):
    QUANTIZES_TO_INT8 = True  # (int8_conv.quantizable: this class, not its subclasses)

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
        kernel_regularizer: Any = None,
        bias_regularizer: Any = None,
        kernel_constraint: Any = None,
        bias_constraint: Any = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        set_weight_arguments(
            self,
            kernel_initializer=kernel_initializer,
            bias_initializer=bias_initializer,
            kernel_regularizer=kernel_regularizer,
            bias_regularizer=bias_regularizer,
            kernel_constraint=kernel_constraint,
            bias_constraint=bias_constraint,
        )
        self.filters, self.groups = int(filters), int(groups)
        if self.groups <= 0:
            raise ValueError(
                f"The number of groups must be a positive integer. Received: groups={groups}."
            )
        if self.filters % self.groups:
            raise ValueError(
                "The number of filters must be evenly divisible by the number of groups. "
                f"Received: groups={groups}, filters={filters}."
            )
        set_window(self, 2, kernel_size, strides, dilation_rate, padding, data_format)
        self.activation = activations.get(activation)
        self.use_bias = use_bias

    def build(self, input_shape):
        if len(input_shape) != 4:
            raise ValueError(
                f"Conv2D '{self.name}' expects inputs of rank 4 (batch, height, "
                f"width, channels), got shape {input_shape}"
            )
        self.make_kernel((*self.kernel_size, self.group_channels(input_shape), self.filters))
        self.bias = bias_weight(self, self.filters, self.bias_initializer)

    def make_kernel(self, shape: tuple[int, ...]) -> None:
        """The float kernel, or under a quantized policy (a quantized layer loaded from its
        config) the int8 one and its scale."""
        if self.quantization_mode is not None:
            self.quantized_build(shape, self.quantization_mode)
            return
        self.kernel = self.add_weight(
            shape,
            self.kernel_initializer,
            name="kernel",
            regularizer=self.kernel_regularizer,
            constraint=self.kernel_constraint,
        )

    def group_channels(self, input_shape) -> int:
        """The input channels each group sees (all of them without groups)."""
        channels = input_shape[-1]
        if channels is None:  # Keras's words
            raise ValueError(
                f"layer '{self.name}' ({type(self).__name__}): the channel dimension of the "
                f"inputs should be defined. The input_shape received is {tuple(input_shape)}, "
                "where axis -1 (0-based) is the channel dimension, which found to be `None`."
            )
        if channels % self.groups:
            raise ValueError(
                "The number of input channels must be evenly divisible by the number of "
                f"groups. Received groups={self.groups}, but the input has {channels} "
                f"channels (full input shape is {tuple(input_shape)})."
            )
        return channels // self.groups

    def call(self, ctx: TraceContext, x: Value) -> Value:
        if self.int8_quantized:
            return self.finish(ctx, self.int8_convolve(ctx, x, self.pads(x)))
        kernel = ctx.weight(self.kernel)
        if self.groups == 1:  # an implicit GEMM: no patch matrix
            return self.finish(ctx, self.convolve(x, kernel, self.pads(x)))
        return self.finish(ctx, self.product(self.patches(x), kernel))

    def convolve(self, image: Value, kernel: Value, pads: tuple[int, ...]) -> Value:
        """``conv2d`` of an image [N, H, W, C] with a kernel [KH, KW, C, F]."""
        return B.conv2d(image, kernel, self.strides, self.dilation_rate, pads)

    def product(self, patches: Value, kernel: Value) -> Value:
        """The patches [..., taps * channels] times the kernel [*window, channels per
        group, filters]: one matrix product; with groups, each group's channels times its
        filters (a depthwise product where each group has one channel)."""
        taps, per_group = math.prod(kernel.shape[:-2]), kernel.shape[-2]
        if self.groups == 1:
            return B.matmul(patches, B.reshape(kernel, (taps * per_group, self.filters)))
        lead, g, f = patches.shape[:-1], self.groups, self.filters // self.groups
        p = B.reshape(patches, (*lead, taps, g, per_group))
        k = B.reshape(kernel, (taps, per_group, g, f))
        if per_group == 1:  # depthwise: [..., taps, g, 1] * [taps, g, f], summed over taps
            y = B.reduce_sum(p * B.reshape(k, (taps, g, f)), len(lead))
            return B.reshape(y, (*lead, self.filters))
        outs = []
        for i in range(g):
            pi = B.slice_(p, [0] * (len(lead) + 1) + [i, 0], [*lead, taps, i + 1, per_group])
            ki = B.slice_(k, [0, 0, i, 0], [taps, per_group, i + 1, f])
            pi = B.reshape(pi, (*lead, taps * per_group))
            outs.append(B.matmul(pi, B.reshape(ki, (taps * per_group, f))))
        return B.concat(outs, len(lead))

    def pads(self, x: Value) -> tuple[int, ...]:
        """(top, bottom, left, right) padding of ``x`` for this layer's window."""
        return window_padding(
            self.padding,
            x.shape[1:3],
            self.kernel_size,
            self.strides,
            self.dilation_rate,
            self.name,
        )

    def patches(self, x: Value) -> Value:
        """The receptive fields of ``x`` for this layer's window (im2col)."""
        pads = Conv2D.pads(self, x)  # DepthwiseConv2D borrows this method
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
            "groups": self.groups,
            **conv_config(self, "kernel", "bias"),
        }


Convolution2D = Conv2D  # Keras's other name for it
