"""What the convolution layers share, as Keras's ``BaseConv`` holds it: the window
arguments checked and standardized (``set_window``), "same" padding, the config entries
and the bias."""

from __future__ import annotations

import math
from typing import Any

from kcompile import activations
from kcompile.layers.layer import Layer
from kcompile.layers.weight_arguments import activity_config, weight_config


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
        "data_format": getattr(layer, "data_format", "channels_last"),
        "dilation_rate": layer.dilation_rate,
        "activation": activations.serialize(layer.activation),
        "use_bias": layer.use_bias,
    }


def conv_config(layer: Layer, *weights: str) -> dict[str, Any]:
    """Keras's ``BaseConv`` config entries: the window, then the initializer, regularizer
    and constraint of each of ``weights`` (``"kernel"``, ``"bias"``...) and the activity
    regularizer."""
    return {**window_config(layer), **weight_config(layer, *weights), **activity_config(layer)}


def bias_weight(layer: Layer, units: int, initializer: Any):
    """The layer's bias of ``units`` (with its regularizer and constraint, where the layer
    takes them), or None when it uses none."""
    if not layer.use_bias:
        return None
    return layer.add_weight(
        (units,),
        initializer,
        name="bias",
        regularizer=getattr(layer, "bias_regularizer", None),
        constraint=getattr(layer, "bias_constraint", None),
    )
