"""Keras's ``Conv3DTranspose`` (computed channels last): as Conv2DTranspose, the input
times the kernel's transpose gives one patch per input voxel ([N, d, h, w, KD*KH*KW*F]), and
``conv_nd.fold_nd`` (three 1-D col2im) adds each patch into the full output volume,
which is then cut, or padded with zeros at its end, to Keras's size along each axis
(``conv2d_transpose.transpose_geometry``: Keras's JAX padding rule, ``output_padding``
included)."""

from __future__ import annotations

import math
from typing import Any

from kcompile import activations
from kcompile.ir import Value
from kcompile.ir import build as B
from kcompile.layers.convolutional.base_conv import as_tuple, set_window
from kcompile.layers.convolutional.conv2d_transpose import transpose_geometry
from kcompile.layers.convolutional.conv_nd import (
    channels_back,
    channels_last,
    check_conv_args,
    fold_nd,
    standard_data_format,
)
from kcompile.layers.layer import Layer, TraceContext
from kcompile.layers.weight_arguments import (
    activity_config,
    set_weight_arguments,
    weight_config,
)


class Conv3DTranspose(Layer):
    """Keras's weights ``kernel`` (KD, KH, KW, F, C) and ``bias`` (F)."""

    rank = 3

    def __init__(
        self,
        filters: int,
        kernel_size: Any,
        strides: Any = (1, 1, 1),
        padding: str = "valid",
        data_format: str | None = None,
        output_padding: Any = None,
        dilation_rate: Any = (1, 1, 1),
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
        self.filters = int(filters)
        self.data_format = standard_data_format(data_format)
        set_window(self, self.rank, kernel_size, strides, dilation_rate, padding, None)
        self.output_padding = (
            None
            if output_padding is None
            else as_tuple(output_padding, self.rank, "output_padding")
        )
        check_conv_args(self, self.filters)
        for i, (op, s) in enumerate(zip(self.output_padding or (), self.strides)):
            if op >= s:
                raise ValueError(
                    "`output_padding` must be strictly less than `strides` for all "
                    f"dimensions. At dimension {i}, `output_padding` is {op} but `strides` "
                    f"is {s}. Received: output_padding={self.output_padding}, "
                    f"strides={self.strides}"
                )
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
            (*self.kernel_size, self.filters, channels),
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
        sizes, c = x.shape[1:-1], x.shape[-1]
        window = (self.kernel_size, self.strides, self.dilation_rate)
        paddings = self.output_padding or (None,) * self.rank
        geometry = [
            transpose_geometry(size, k, s, d, self.padding, p)
            for size, k, s, d, p in zip(sizes, *window, paddings)
        ]
        full = tuple((size - 1) * s + (k - 1) * d + 1 for size, k, s, d in zip(sizes, *window))
        taps = math.prod(self.kernel_size) * self.filters
        kernel = B.reshape(ctx.weight(self.kernel), (taps, c))
        patches = B.matmul(x, kernel, transpose_b=True)  # [N, d, h, w, KD*KH*KW*F]
        y = _window(fold_nd(patches, full, *window), geometry, full)
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
            "output_padding": self.output_padding,
            "data_format": self.data_format,
            "dilation_rate": self.dilation_rate,
            "activation": activations.serialize(self.activation),
            "use_bias": self.use_bias,
            **weight_config(self, "kernel", "bias"),
            **activity_config(self),
        }


def _window(y: Value, geometry: list[tuple[int, int]], full: tuple[int, ...]) -> Value:
    """Each spatial axis's [offset, offset + size) of the full fold; past its end, zeros."""
    begin = [0] + [offset for _, offset in geometry] + [0]
    end = [y.shape[0]]
    end += [min(offset + size, f) for (size, offset), f in zip(geometry, full)]
    end += [y.shape[-1]]
    if (begin, end) != ([0] * y.rank, list(y.shape)):
        y = B.slice_(y, begin, end)
    short = [size - (e - b) for (size, _), b, e in zip(geometry, begin[1:-1], end[1:-1])]
    if any(short):
        y = B.pad(y, (0,) * y.rank, (0, *short, 0))
    return y


Convolution3DTranspose = Conv3DTranspose  # Keras's other name for it
