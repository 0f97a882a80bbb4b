"""Keras's ``Conv2DTranspose``, channels last.

A transposed convolution is the data gradient of a convolution: the input times the
kernel's transpose gives one patch per input pixel ([N, h, w, KH*KW*F]), and
``fold_patches`` (col2im) adds each patch into the output image. The output's size
and alignment are Keras's (its JAX backend's padding rule, ``output_padding``
included): the folded image is cut, or padded with zeros at its end, to that size.
"""

from __future__ import annotations

from typing import Any

from kcompile import activations
from kcompile.ir import Value
from kcompile.ir import build as B
from kcompile.layers.convolutional.base_conv import (
    as_tuple,
    bias_weight,
    conv_config,
    set_window,
)
from kcompile.layers.layer import Layer, TraceContext
from kcompile.layers.weight_arguments import set_weight_arguments


def transpose_geometry(
    size: int, k: int, stride: int, dilation: int, padding: str, output_padding: int | None
) -> tuple[int, int]:
    """(output size, offset of the output in the full fold) along one axis, from Keras's
    JAX padding rule (``backend_utils._convert_conv_transpose_padding_args_from_keras_to_jax``):
    output = (size - 1)·stride - span + 2 + left + right, and output pixel o gathers
    input pixel i through tap j where o = i·stride + j·dilation - (span - 1 - left)."""
    span = (k - 1) * dilation + 1
    if padding == "valid":
        extra = max(span, stride) - span if output_padding is None else output_padding
        left, right = span - 1, span - 1 + extra
    else:
        if output_padding is None:
            total = stride + span - 2
        else:
            total = span + span % 2 - 2 + output_padding
        left = min(total // 2 + total % 2, span - 1)
        right = total - left
    return (size - 1) * stride - span + 2 + left + right, span - 1 - left


class Conv2DTranspose(Layer):
    rank = 2  # of the window; Conv1DTranspose's is 1

    def __init__(
        self,
        filters: int,
        kernel_size: Any,
        strides: Any = (1, 1),
        padding: str = "valid",
        output_padding: Any = None,
        data_format: str | None = None,
        dilation_rate: Any = (1, 1),
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
        kind = type(self).__name__
        rank = self.rank
        self.filters = int(filters)
        set_window(self, rank, kernel_size, strides, dilation_rate, padding, data_format)
        self.output_padding = (
            None if output_padding is None else as_tuple(output_padding, rank, "output_padding")
        )
        if self.output_padding is not None and any(
            p >= s for p, s in zip(self.output_padding, self.strides)
        ):
            raise ValueError(
                f"{kind} '{self.name}': output_padding {self.output_padding} must be smaller "
                f"than strides {self.strides}"
            )
        self.activation = activations.get(activation)
        self.use_bias = use_bias

    def build(self, input_shape):
        rank = len(self.kernel_size) + 2
        if len(input_shape) != rank:
            raise ValueError(
                f"{type(self).__name__} '{self.name}' expects inputs of rank {rank}, got "
                f"shape {input_shape}"
            )
        self.kernel = self.add_weight(
            (*self.kernel_size, self.filters, input_shape[-1]),
            self.kernel_initializer,
            name="kernel",
            regularizer=self.kernel_regularizer,
            constraint=self.kernel_constraint,
        )
        self.bias = bias_weight(self, self.filters, self.bias_initializer)

    def call(self, ctx: TraceContext, x: Value) -> Value:
        return self._transpose(ctx, x, self.kernel_size, self.strides, self.dilation_rate)

    def _transpose(self, ctx, x: Value, kernel_size, strides, dilation) -> Value:
        h, w, c = x.shape[1:]
        kh, kw = kernel_size
        paddings = self.output_padding or (None,) * len(self.kernel_size)
        if len(paddings) == 1:
            paddings = (None, *paddings)
        sizes = (h, w)
        geometry = [
            transpose_geometry(size, k, s, d, self.padding, p)
            for size, k, s, d, p in zip(sizes, kernel_size, strides, dilation, paddings)
        ]
        full = [
            (size - 1) * s + (k - 1) * d + 1
            for size, k, s, d in zip(sizes, kernel_size, strides, dilation)
        ]
        kernel = B.reshape(ctx.weight(self.kernel), (kh * kw * self.filters, c))
        patches = B.matmul(x, kernel, transpose_b=True)  # [N, h, w, KH*KW*F]
        y = B.fold_patches(patches, tuple(full), kernel_size, strides, dilation)
        y = _window(y, geometry, full)
        if self.bias is not None:
            y = y + ctx.weight(self.bias)
        return self.activation(y)

    def get_config(self):
        return {
            **super().get_config(),
            "filters": self.filters,
            "output_padding": self.output_padding,
            **conv_config(self, "kernel", "bias"),
        }


def _window(y: Value, geometry: list[tuple[int, int]], full: list[int]) -> Value:
    """Rows and columns [offset, offset + size) of the full fold; past its end, zeros."""
    (oh, ah), (ow, aw) = geometry
    begin = [0, ah, aw, 0]
    end = [y.shape[0], min(ah + oh, full[0]), min(aw + ow, full[1]), y.shape[3]]
    if (begin, end) != ([0, 0, 0, 0], list(y.shape)):
        y = B.slice_(y, begin, end)
    short = (oh - (end[1] - begin[1]), ow - (end[2] - begin[2]))
    if any(short):
        y = B.pad(y, (0, 0, 0, 0), (0, short[0], short[1], 0))
    return y


Convolution2DTranspose = Conv2DTranspose  # Keras's other name for it
