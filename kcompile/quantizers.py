"""Keras's ``keras.quantizers`` and the machinery of ``model.quantize("int8")``.

As Keras 3.15.1 (``keras/src/quantizers/quantizers.py``, ``layers/core/dense.py``):

- a kernel is quantized once, in numpy, per output channel: ``scale = 127 / (max|w| +
  epsilon)`` over the kernel's reduced axes, ``q = clip(round(w * scale), -127, 127)``
  as int8 (round half to even), in float32 throughout (``abs_max_quantize``,
  ``to_numpy=True``);
- each call quantizes its inputs the same way per row, in the graph
  (``quantize_in_graph``), multiplies int8 by int8 into int32, casts to the compute
  dtype and divides by ``kernel_scale * inputs_scale``;
- the input's gradient is that of the float product with the dequantized kernel
  (``kernel / kernel_scale``): Keras's custom gradient, the IR's ``gradient_via``.

Only ``"int8"`` is compiled. ``"int4"`` (Keras 3.15.1's default is sub-channel: groups of
128 input rows with zero points, weight-only), ``"float8"`` (delayed scaling with amax
histories updated by gradients) and ``"gptq"``/``"awq"`` (calibration algorithms) are
refused by ``refuse_mode`` with the reason.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from kcompile.dtype_policies import QUANTIZATION_MODES
from kcompile.ir import DType, Value
from kcompile.ir import build as B

EPSILON = 1e-7  # keras.backend.epsilon(), the default of every AbsMaxQuantizer
INT8_RANGE = (-127, 127)

_REFUSED = {
    "int4": "Keras 3.15.1 quantizes int4 weight-only in sub-channel groups of 128 input "
    "rows with int8 zero points and packed nibbles (Int4QuantizationConfig(block_size="
    "128)); kcompile compiles int8 only so far",
    "float8": "float8 training keeps amax histories that Keras overwrites with gradients "
    "(delayed scaling) and has no float8 products on CPUs; kcompile compiles int8 only",
    "gptq": "GPTQ needs a calibration dataset, a GPTQConfig and its layer-by-layer "
    "solver, which kcompile does not implement; kcompile compiles int8 only",
    "awq": "AWQ needs a calibration dataset, an AWQConfig and its activation-aware "
    "search, which kcompile does not implement; kcompile compiles int8 only",
}


class QuantizationNotSupported(NotImplementedError):
    """A quantization Keras does and kcompile does not: raised through a model's
    ``quantize`` (which turns a layer's plain NotImplementedError, Keras's "does not
    have a `quantize` method", into a warning), so no model is left half quantized."""


class Quantizer:
    """Keras's base quantizer: ``__call__`` returns its input."""

    def __init__(self, output_dtype: str = "int8") -> None:
        self.output_dtype = output_dtype

    def __call__(self, x: Any) -> Any:
        return x

    @classmethod
    def from_config(cls, config: dict) -> Quantizer:
        return cls(**config)

    def get_config(self) -> dict:
        raise NotImplementedError(f"{self} does not implement get_config()")


def abs_max_quantize(
    inputs: Any,
    axis: int | Sequence[int],
    value_range: tuple[int, int] = INT8_RANGE,
    dtype: str = "int8",
    epsilon: float = EPSILON,
    to_numpy: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Keras's ``abs_max_quantize`` on arrays (its ``to_numpy=True`` path, which Keras
    takes for every kernel): ``(quantized, scale)``, the scale kept with its reduced axes
    (size 1) and in the input's float dtype."""
    inputs = np.asarray(getattr(inputs, "value", inputs))
    original = inputs.dtype if inputs.dtype.kind == "f" else np.dtype(np.float32)
    axis = tuple(axis) if isinstance(axis, Sequence) else axis
    scale = np.divide(
        value_range[1], np.add(np.max(np.abs(inputs), axis=axis, keepdims=True), epsilon)
    )
    outputs = np.multiply(inputs, scale)
    outputs = np.clip(np.round(outputs), value_range[0], value_range[1]).astype(dtype)
    return outputs, scale.astype(original)


class AbsMaxQuantizer(Quantizer):
    """Keras's ``AbsMaxQuantizer`` (on arrays; a quantized layer quantizes its inputs in
    the graph with ``quantize_in_graph``, the same arithmetic)."""

    def __init__(
        self,
        axis: int | Sequence[int] | None = None,
        value_range: tuple[int, int] = INT8_RANGE,
        epsilon: float = EPSILON,
        output_dtype: str = "int8",
    ) -> None:
        super().__init__(output_dtype=output_dtype)
        self.axis = None if axis is None else tuple([axis] if isinstance(axis, int) else axis)
        self.value_range = tuple(value_range)
        self.epsilon = epsilon
        if output_dtype == "int8" and (value_range[0] < -128 or value_range[1] > 127):
            raise ValueError(
                "Quantizer with output_dtype='int8' requires value_range to be within the "
                f"interval [-128, 127]. Received: value_range={value_range}"
            )

    def __call__(self, x: Any, axis: Any = None, to_numpy: bool = False) -> tuple:
        axis = self.axis if axis is None else axis
        axis = -1 if axis is None else axis
        return abs_max_quantize(x, axis, self.value_range, self.output_dtype, self.epsilon)

    def get_config(self) -> dict:
        config = {
            "value_range": self.value_range,
            "epsilon": self.epsilon,
            "output_dtype": self.output_dtype,
        }
        if self.axis is not None:
            config["axis"] = self.axis
        return config


class Int8QuantizationConfig:
    """Keras's ``Int8QuantizationConfig`` with its defaults (no weight quantizer of its
    own: per-channel abs-max; inputs by ``AbsMaxQuantizer()``), the only int8 config
    kcompile compiles. Written into a quantized layer's config as Keras writes it."""

    mode = "int8"

    def __init__(self, weight_quantizer: Any = None, activation_quantizer: Any = "default"):
        if activation_quantizer == "default":
            activation_quantizer = AbsMaxQuantizer()
        self.weight_quantizer = weight_quantizer
        self.activation_quantizer = activation_quantizer

    def get_config(self) -> dict:
        return {
            "weight_quantizer": _serialize_quantizer(self.weight_quantizer),
            "activation_quantizer": _serialize_quantizer(self.activation_quantizer),
        }

    @classmethod
    def from_config(cls, config: dict) -> Int8QuantizationConfig:
        return cls(
            _deserialize_quantizer(config.get("weight_quantizer")),
            _deserialize_quantizer(config.get("activation_quantizer")),
        )


def _serialize_quantizer(quantizer: Any) -> dict | None:
    if quantizer is None:
        return None
    return {
        "module": "keras.quantizers",
        "class_name": type(quantizer).__name__,
        "config": quantizer.get_config(),
        "registered_name": None,
    }


def _deserialize_quantizer(config: Any) -> Any:
    if config is None or isinstance(config, Quantizer):
        return config
    if isinstance(config, dict) and config.get("class_name") == "AbsMaxQuantizer":
        inner = dict(config.get("config", {}))
        if "value_range" in inner:
            inner["value_range"] = tuple(inner["value_range"])
        return AbsMaxQuantizer(**inner)
    raise NotImplementedError(
        f"quantizer {config!r}: kcompile's quantized layers take Keras's AbsMaxQuantizer only"
    )


def serialize_config(config: Int8QuantizationConfig | None) -> dict | None:
    """A quantization config as Keras writes it in a layer's config."""
    if config is None:
        return None
    return {
        "module": "keras.quantizers",
        "class_name": type(config).__name__,
        "config": config.get_config(),
        "registered_name": None,
    }


def layer_config(layer: Any, config: Any) -> Int8QuantizationConfig | None:
    """A layer's ``quantization_config`` argument (None, a config, or Keras's serialized
    dict, as a ``.keras`` file holds it), checked to be one kcompile computes: Keras's
    defaults, whose numbers these layers reproduce."""
    if config is None:
        return None
    if isinstance(config, dict):
        name = config.get("class_name")
        if name != "Int8QuantizationConfig":
            raise NotImplementedError(
                f"{type(layer).__name__} '{layer.name}': quantization_config of class "
                f"{name}: kcompile's quantized layers take Keras's Int8QuantizationConfig"
            )
        config = Int8QuantizationConfig.from_config(config.get("config", {}))
    if not isinstance(config, Int8QuantizationConfig):
        raise NotImplementedError(
            f"{type(layer).__name__} '{layer.name}': quantization_config {config!r}: "
            "kcompile's quantized layers take Keras's Int8QuantizationConfig"
        )
    default = AbsMaxQuantizer().get_config()
    activation = config.activation_quantizer
    if config.weight_quantizer is not None or (
        activation is not None and activation.get_config() != default
    ):
        raise NotImplementedError(
            f"{type(layer).__name__} '{layer.name}': an Int8QuantizationConfig with quantizers "
            "of its own: kcompile quantizes with Keras's defaults only (per-channel abs-max "
            "kernels, per-row abs-max inputs)"
        )
    return config


# --- quantize's checks, as Keras's quantize_wrapper makes them -----------------------------


def resolve_mode(mode: Any, config: Any = None) -> str:
    """Keras's ``validate_and_resolve_config``: the mode, from ``mode`` or ``config``;
    Keras's ValueErrors for unknown modes and for none. Modes kcompile does not compile
    are refused here, before any layer changes (``refuse_mode``)."""
    if isinstance(config, str):
        mode, config = config, None
    if mode is None and config is not None:
        mode = getattr(config, "mode", None)
    if mode is not None and mode not in QUANTIZATION_MODES:
        raise ValueError(
            f"Invalid quantization mode. Expected one of {QUANTIZATION_MODES}. "
            f"Received: mode={mode}"
        )
    if mode is None:
        raise ValueError("You must provide either `mode` or `config` to `quantize`.")
    refuse_mode(mode)
    if config is not None and getattr(config, "mode", mode) != mode:
        raise ValueError(f"Contradictory arguments: mode='{mode}' but config.mode='{config.mode}'")
    return mode


def refuse_mode(mode: str, where: str = "quantize") -> None:
    """NotImplementedError naming ``mode`` and why, for the modes kcompile does not
    compile."""
    reason = _REFUSED.get(mode)
    if reason is not None:
        raise QuantizationNotSupported(
            f"{where}: mode {mode!r} is not supported by kcompile: {reason}"
        )


def check_quantize_args(layer: Any, mode: str) -> None:
    """Keras's ``_check_quantize_args``, with its messages."""
    if not layer.built:
        raise ValueError(
            "Cannot quantize a layer that isn't yet built. "
            f"Layer '{layer.name}' (of type '{type(layer).__name__}') is not built yet."
        )
    if getattr(layer, "_is_quantized", False):
        raise ValueError(
            f"Layer '{layer.name}' is already quantized with "
            f"dtype_policy='{layer.dtype_policy.name}'. Received: mode={mode}"
        )
    if mode == "int8" and layer.compute_dtype == "float16":
        raise ValueError(
            f"Quantization mode='{mode}' doesn't work well with compute_dtype='float16'. "
            "Consider loading model/layer with another dtype policy such as "
            "'mixed_bfloat16' or 'mixed_float16' before calling `quantize()`."
        )


def not_implemented(layer: Any, what: str = "quantize") -> NotImplementedError:
    """Keras's ``_not_implemented_error``: a layer that does not quantize (a model's
    ``quantize`` warns with it and leaves the layer in float)."""
    return NotImplementedError(
        f"Layer {type(layer).__name__} does not have a `{what}` method implemented."
    )


def quantized_policy(layer: Any, mode: str) -> Any:
    """The layer's policy after ``quantize(mode)``: ``"<mode>_from_<its policy>"``."""
    from kcompile import dtype_policies

    return dtype_policies.get(f"{mode}_from_{layer.dtype_policy.name}")


def quantize_in_graph(
    x: Value, axes: Sequence[int], value_range: tuple[int, int] = INT8_RANGE
) -> tuple[Value, Value]:
    """Keras's ``abs_max_quantize`` of a call's inputs (its tensor path): per row over
    ``axes``, in ``x``'s dtype, ``scale = 127 / (max|x| + epsilon)``, then
    ``clip(round(x * scale))`` cast to int8 (the cast truncates: the value is already an
    integer in range). Returns (int8 values, scale with the reduced axes kept)."""
    axes = tuple(a % x.rank for a in axes)
    peak = B.reduce_max(B.abs(x), axes, keepdims=True)
    scale = B.div(B.const(x.graph, float(value_range[1]), x.dtype), B.add(peak, EPSILON))
    rounded = B.round_(B.mul(x, scale))
    clipped = B.minimum(B.maximum(rounded, float(value_range[0])), float(value_range[1]))
    return B.cast(clipped, DType.i8), scale


def dequantized(kernel: Value, scale: Value, dtype: DType) -> Value:
    """``kernel / scale`` in ``dtype``: the float kernel Keras's custom gradients use."""
    return B.div(B.cast(kernel, dtype), scale)


def i8_product(ta: str, tb: str, out: str, a: Value, b: Value) -> Value:
    """``einsum(ta,tb->out)`` of two int8 operands as an exact integer product (i32). A
    form that is one matrix product (Dense's, a projection of every position) is an i8
    ``matmul``; any other is computed in f32, exact while every partial sum fits f32's
    24-bit mantissa (checked: 127² times the contracted size), then cast to i32."""
    from kcompile.ops.numpy import _einsum2, _einsum_as_batch_matmul

    try:
        product = _einsum_as_batch_matmul(ta, tb, out, a, b)
    except ValueError:  # (a ShapeError: an i8 batch product or the like)
        product = None
    if product is not None and product.dtype is DType.i32:
        return product
    # (what the failed try emitted is unused: dead code the pipeline drops)
    dims = {**dict(zip(ta, a.shape)), **dict(zip(tb, b.shape))}
    depth = int(np.prod([dims[c] for c in ta if c in tb and c not in out] or [1]))
    if 127 * 127 * depth >= 2**24:
        raise NotImplementedError(
            f"int8 einsum {ta},{tb}->{out} contracts {depth} elements: too many for an "
            "exact f32 product, and the form is not one int8 matrix product"
        )
    af, bf = B.cast(a, DType.f32), B.cast(b, DType.f32)
    return B.cast(_einsum2(ta, tb, out, af, bf), DType.i32)


__all__ = [
    "AbsMaxQuantizer",
    "Int8QuantizationConfig",
    "Quantizer",
    "abs_max_quantize",
]
