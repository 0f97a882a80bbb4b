"""Convolutions, channels last: Conv2D, Conv1D, DepthwiseConv2D.

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
from kcompile.layers.layer import Layer, TraceContext


def as_tuple(value: Any, n: int, what: str) -> tuple[int, ...]:
    if isinstance(value, int):
        return (value,) * n
    value = tuple(int(v) for v in value)
    if len(value) != n:
        raise ValueError(f"{what} must be an int or {n} ints, got {value}")
    return value


def same_padding(size: int, k: int, stride: int, dilation: int) -> tuple[int, int]:
    """TensorFlow's "same": out = ceil(size / stride), the extra pixel at the end."""
    span = dilation * (k - 1) + 1
    out = math.ceil(size / stride)
    total = max((out - 1) * stride + span - size, 0)
    return total // 2, total - total // 2


def window_padding(
    padding: str, spatial: tuple[int, ...], kernel, strides, dilation, layer
) -> tuple[int, ...]:
    """(top, bottom, left, right) for "valid", "same" (and "causal" in 1-D)."""
    if padding == "valid":
        return (0,) * (2 * len(spatial))
    if padding == "same":
        pads = []
        for size, k, s, d in zip(spatial, kernel, strides, dilation):
            pads.extend(same_padding(size, k, s, d))
        return tuple(pads)
    raise ValueError(f"layer '{layer}': padding must be 'valid' or 'same', got {padding!r}")


def set_window(
    layer: Layer,
    rank: int,
    kernel_size: Any,
    strides: Any,
    dilation_rate: Any,
    padding: str,
    data_format: str | None,
) -> None:
    """A convolution's window settings on ``layer``, checked as Keras checks them."""
    kind = type(layer).__name__
    if data_format not in (None, "channels_last"):
        raise NotImplementedError(f"{kind} '{layer.name}': only channels_last is supported")
    layer.kernel_size = as_tuple(kernel_size, rank, "kernel_size")
    layer.strides = as_tuple(strides, rank, "strides")
    layer.dilation_rate = as_tuple(dilation_rate, rank, "dilation_rate")
    layer.padding = str(padding).lower()
    if layer.padding not in ("valid", "same"):
        raise ValueError(
            f"{kind} '{layer.name}': padding must be 'valid' or 'same', got {padding!r}"
        )


def window_config(layer: Layer) -> dict[str, Any]:
    """The settings ``set_window`` made, with the activation and bias, as Keras names them."""
    return {
        "kernel_size": layer.kernel_size,
        "strides": layer.strides,
        "padding": layer.padding,
        "dilation_rate": layer.dilation_rate,
        "activation": activations.serialize(layer.activation),
        "use_bias": layer.use_bias,
    }


def bias_weight(layer: Layer, units: int, initializer: Any):
    """The layer's bias of ``units``, or None when it uses none."""
    return layer.add_weight((units,), initializer, name="bias") if layer.use_bias else None


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


class Conv1D(Conv2D):
    """A 1-D convolution over [N, L, C]: a Conv2D of height 1."""

    def __init__(
        self,
        filters: int,
        kernel_size: Any,
        strides: Any = 1,
        padding: str = "valid",
        dilation_rate: Any = 1,
        **kwargs: Any,
    ) -> None:
        self.causal = str(padding).lower() == "causal"
        super().__init__(
            filters,
            (1, as_tuple(kernel_size, 1, "kernel_size")[0]),
            (1, as_tuple(strides, 1, "strides")[0]),
            "valid" if self.causal else padding,
            dilation_rate=(1, as_tuple(dilation_rate, 1, "dilation_rate")[0]),
            **kwargs,
        )

    def build(self, input_shape):
        if len(input_shape) != 3:
            raise ValueError(
                f"Conv1D '{self.name}' expects inputs of rank 3 (batch, steps, "
                f"channels), got shape {input_shape}"
            )
        self.kernel = self.add_weight(
            (self.kernel_size[1], input_shape[-1], self.filters),
            self.kernel_initializer,
            name="kernel",
        )
        self.bias = bias_weight(self, self.filters, self.bias_initializer)

    def call(self, ctx, x):
        n, length, c = x.shape
        k = self.kernel_size[1]
        image = B.reshape(x, (n, 1, length, c))
        if self.causal:
            pads = (0, 0, self.dilation_rate[1] * (k - 1), 0)
            patches = B.extract_patches(
                image, self.kernel_size, self.strides, self.dilation_rate, pads
            )
        else:
            patches = self.patches(image)
        y = B.matmul(patches, B.reshape(ctx.weight(self.kernel), (k * c, self.filters)))
        return self.finish(ctx, B.reshape(y, (n, y.shape[2], self.filters)))

    def get_config(self):
        config = super().get_config()
        config.update(
            kernel_size=self.kernel_size[1],
            strides=self.strides[1],
            dilation_rate=self.dilation_rate[1],
            padding="causal" if self.causal else self.padding,
        )
        return config


class DepthwiseConv2D(Layer):
    def __init__(
        self,
        kernel_size: Any,
        strides: Any = 1,
        padding: str = "valid",
        depth_multiplier: int = 1,
        dilation_rate: Any = 1,
        activation: Any = None,
        use_bias: bool = True,
        depthwise_initializer: Any = "glorot_uniform",
        bias_initializer: Any = "zeros",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
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
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.filters = int(filters)
        set_window(self, self.rank, kernel_size, strides, dilation_rate, padding, data_format)
        self.depth_multiplier = int(depth_multiplier)
        self.activation = activations.get(activation)
        self.use_bias = use_bias
        self.depthwise_initializer = depthwise_initializer
        self.pointwise_initializer = pointwise_initializer
        self.bias_initializer = bias_initializer

    def build(self, input_shape):
        if len(input_shape) != self.rank + 2:
            raise ValueError(
                f"{type(self).__name__} '{self.name}' expects inputs of rank {self.rank + 2}, "
                f"got shape {input_shape}"
            )
        c, m = input_shape[-1], self.depth_multiplier
        self.depthwise_kernel = self.add_weight(
            (*self.kernel_size, c, m), self.depthwise_initializer, name="depthwise_kernel"
        )
        self.pointwise_kernel = self.add_weight(
            (*[1] * self.rank, c * m, self.filters),
            self.pointwise_initializer,
            name="pointwise_kernel",
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
            **window_config(self),
        }


class SeparableConv1D(SeparableConv2D):
    """A separable convolution over [N, L, C]: a SeparableConv2D of height 1."""

    rank = 1

    def call(self, ctx, x):
        n, length, c = x.shape
        image = B.reshape(x, (n, 1, length, c))
        y = self._separable(
            ctx, image, (1, *self.kernel_size), (1, *self.strides), (1, *self.dilation_rate)
        )
        return B.reshape(y, (n, y.shape[2], self.filters))
