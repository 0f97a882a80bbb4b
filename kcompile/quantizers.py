"""Keras's ``keras.quantizers`` and the machinery of ``model.quantize("int8")`` and
``model.quantize("int4")``.

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

``"int4"`` is weight-only (the inputs stay float): the kernel, flattened to (summed
rows, other columns), is quantized per channel (``abs_max_quantize`` to [-8, 7], a
divisor per column) or, Keras's default, in groups of ``block_size`` rows
(``abs_max_quantize_grouped_with_zero_point``: a multiplier and an int8 zero point per
group and column), then two values a byte along the columns (``pack_int4``). A call
reads the kernel through ``dequantize_int4`` (``dequantize_int4_in_graph``) and
multiplies in float; compiled, the product unpacks the nibbles as it packs B.

``"float8"`` (delayed scaling with amax histories updated by gradients) and
``"gptq"``/``"awq"`` (calibration algorithms) are refused by ``refuse_mode`` with the
reason.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from kcompile.dtype_policies import QUANTIZATION_MODES
from kcompile.ir import DType, Value
from kcompile.ir import build as B
from kcompile.ir.ops import int4 as int4_ops

EPSILON = 1e-7  # keras.backend.epsilon(), the default of every AbsMaxQuantizer
INT8_RANGE = (-127, 127)

_REFUSED = {
    "float8": "float8 training keeps amax histories that Keras overwrites with gradients "
    "(delayed scaling) and has no float8 products on CPUs; kcompile compiles int8 and int4 only",
    "gptq": "GPTQ needs a calibration dataset, a GPTQConfig and its layer-by-layer "
    "solver, which kcompile does not implement; kcompile compiles int8 and int4 only",
    "awq": "AWQ needs a calibration dataset, an AWQConfig and its activation-aware "
    "search, which kcompile does not implement; kcompile compiles int8 and int4 only",
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


class QuantizationConfig:
    """Keras's base of the quantization configs: a weight quantizer and an activation
    quantizer; the subclasses name their ``mode``."""

    def __init__(self, weight_quantizer: Any = None, activation_quantizer: Any = None) -> None:
        self.weight_quantizer = weight_quantizer
        self.activation_quantizer = activation_quantizer

    @property
    def mode(self) -> str:
        raise NotImplementedError(
            "Subclasses must implement this property. Do not instantiate "
            "QuantizationConfig directly."
        )

    def get_config(self) -> dict:
        return {
            "weight_quantizer": _serialize_quantizer(self.weight_quantizer),
            "activation_quantizer": _serialize_quantizer(self.activation_quantizer),
        }

    @classmethod
    def from_config(cls, config: dict) -> QuantizationConfig:
        return cls(
            weight_quantizer=_deserialize_quantizer(config.get("weight_quantizer")),
            activation_quantizer=_deserialize_quantizer(config.get("activation_quantizer")),
        )

    @staticmethod
    def weight_quantizer_or_default(config: Any, default: Any) -> Any:
        if config is not None and config.weight_quantizer is not None:
            return config.weight_quantizer
        return default

    @staticmethod
    def activation_quantizer_or_default(config: Any, default: Any) -> Any:
        return config.activation_quantizer if config is not None else default


class Int8QuantizationConfig(QuantizationConfig):
    """Keras's ``Int8QuantizationConfig`` with its defaults (no weight quantizer of its
    own: per-channel abs-max; inputs by ``AbsMaxQuantizer()``), the only int8 config
    kcompile compiles. Written into a quantized layer's config as Keras writes it."""

    mode = "int8"

    def __init__(self, weight_quantizer: Any = None, activation_quantizer: Any = "default"):
        if activation_quantizer == "default":
            activation_quantizer = AbsMaxQuantizer()
        super().__init__(weight_quantizer, activation_quantizer)


class Int4QuantizationConfig(QuantizationConfig):
    """Keras's ``Int4QuantizationConfig``: weight-only by default (no activation
    quantizer), ``block_size`` rows a group (128; None or -1: per channel). kcompile
    computes its defaults (any block size); quantizers of one's own, which Keras allows
    per channel only, are refused by ``layer_config``."""

    mode = "int4"

    def __init__(
        self,
        weight_quantizer: Any = None,
        activation_quantizer: Any = "default",
        block_size: int | None = 128,
    ) -> None:
        if activation_quantizer == "default":
            activation_quantizer = None  # (Keras's int4 is weight-only by default)
        if block_size is not None and block_size != -1 and block_size <= 0:
            raise ValueError(
                "block_size must be None, -1, or a positive integer. "
                f"Received: block_size={block_size}"
            )
        sub_channel = block_size is not None and block_size > 0
        if sub_channel and (weight_quantizer is not None or activation_quantizer is not None):
            raise ValueError(
                "Int4 sub-channel quantization (block_size > 0) does not support custom "
                "quantizers. Either set block_size to None or -1 for per-channel "
                "quantization, or remove the custom quantizer arguments. Received: "
                f"block_size={block_size}"
            )
        if weight_quantizer is not None and tuple(weight_quantizer.value_range) != (-8, 7):
            raise ValueError(
                "Int4QuantizationConfig requires a weight_quantizer with value_range=(-8, "
                f"7). Received: value_range={weight_quantizer.value_range}"
            )
        super().__init__(weight_quantizer, activation_quantizer)
        self.block_size = block_size

    def get_config(self) -> dict:
        return {**super().get_config(), "block_size": self.block_size}

    @classmethod
    def from_config(cls, config: dict) -> Int4QuantizationConfig:
        # (Keras: a config saved before block_size existed is per channel)
        return cls(
            _deserialize_quantizer(config.get("weight_quantizer")),
            _deserialize_quantizer(config.get("activation_quantizer")),
            block_size=config.get("block_size"),
        )


_CONFIGS = {
    "Int8QuantizationConfig": Int8QuantizationConfig,
    "Int4QuantizationConfig": Int4QuantizationConfig,
}


def default_config(mode: str) -> Int8QuantizationConfig | Int4QuantizationConfig:
    """Keras's ``validate_and_resolve_config`` for a mode given alone."""
    return Int4QuantizationConfig() if mode == "int4" else Int8QuantizationConfig()


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


def serialize_config(config: Int8QuantizationConfig | Int4QuantizationConfig | None) -> dict | None:
    """A quantization config as Keras writes it in a layer's config."""
    if config is None:
        return None
    return {
        "module": "keras.quantizers",
        "class_name": type(config).__name__,
        "config": config.get_config(),
        "registered_name": None,
    }


def layer_config(layer: Any, config: Any) -> Int8QuantizationConfig | Int4QuantizationConfig | None:
    """A layer's ``quantization_config`` argument (None, a config, or Keras's serialized
    dict, as a ``.keras`` file holds it), checked to be one kcompile computes: Keras's
    defaults (any int4 block size), whose numbers these layers reproduce."""
    if config is None:
        return None
    where = f"{type(layer).__name__} '{layer.name}'"
    if isinstance(config, dict):
        name = config.get("class_name")
        if name not in _CONFIGS:
            raise QuantizationNotSupported(
                f"{where}: quantization_config of class {name}: kcompile's quantized layers "
                "take Keras's Int8QuantizationConfig or Int4QuantizationConfig"
            )
        config = _CONFIGS[name].from_config(config.get("config", {}))
    if not isinstance(config, tuple(_CONFIGS.values())):
        raise QuantizationNotSupported(
            f"{where}: quantization_config {config!r}: kcompile's quantized layers take "
            "Keras's Int8QuantizationConfig or Int4QuantizationConfig"
        )
    if isinstance(config, Int4QuantizationConfig):
        if config.weight_quantizer is not None or config.activation_quantizer is not None:
            raise QuantizationNotSupported(
                f"{where}: an Int4QuantizationConfig with quantizers of its own: kcompile "
                "quantizes int4 with Keras's defaults only (weight-only; per-channel abs-max "
                "or grouped with zero points)"
            )
        return config
    default = AbsMaxQuantizer().get_config()
    activation = config.activation_quantizer
    if config.weight_quantizer is not None or (
        activation is not None and activation.get_config() != default
    ):
        raise QuantizationNotSupported(
            f"{where}: an Int8QuantizationConfig with quantizers "
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
    if mode == "int4" and not getattr(layer, "quantizes_int4", False) and _quantizes(layer):
        # (Keras quantizes Embedding and ReversibleEmbedding to int4 too: refused, not
        # left float, so a model is never quantized other than Keras quantizes it)
        raise QuantizationNotSupported(
            f"{type(layer).__name__} '{layer.name}': quantize('int4') is supported by "
            "kcompile for Dense and EinsumDense only (Keras also packs an Embedding's "
            "table to int4; kcompile does not yet)"
        )
    if mode == "int8" and layer.compute_dtype == "float16":
        raise ValueError(
            f"Quantization mode='{mode}' doesn't work well with compute_dtype='float16'. "
            "Consider loading model/layer with another dtype policy such as "
            "'mixed_bfloat16' or 'mixed_float16' before calling `quantize()`."
        )


def _quantizes(layer: Any) -> bool:
    """Whether ``layer``'s own class is one of the built-in quantizing layers (defines
    ``quantize`` itself): a user's subclass inherits it and is left float by Keras's type
    check, with its warning."""
    return "quantize" in type(layer).__dict__


def not_implemented(layer: Any, what: str = "quantize") -> NotImplementedError:
    """Keras's ``_not_implemented_error``: a layer that does not quantize (a model's
    ``quantize`` warns with it and leaves the layer in float)."""
    return NotImplementedError(
        f"Layer {type(layer).__name__} does not have a `{what}` method implemented."
    )


def quantized_policy(layer: Any, mode: str) -> Any:
    """The layer's policy after ``quantize(mode)``: ``"<mode>_from_<its policy>"``."""
    from kcompile import dtype_policies

    if mode == "int4":  # (Keras's name carries the block size; -1 per channel)
        block_size = int4_block_size(layer, layer.quantization_config)
        mode = f"int4/{-1 if block_size is None else block_size}"
    return dtype_policies.get(f"{mode}_from_{layer.dtype_policy.name}")


def saved_order(layer: Any, kernel: Any) -> list | None:
    """A quantized Dense's or EinsumDense's variables in the order Keras's
    ``variable_serialization_spec`` saves them: ``kernel`` (the layer's packed or int8
    one), bias, kernel_scale, then (int4 in groups) kernel_zero and g_idx; None for a
    float layer (saved in the order it made them)."""
    if layer.quantization_mode not in ("int8", "int4"):
        return None
    extra = ()
    if layer.quantization_mode == "int4":
        extra = (getattr(layer, "kernel_zero", None), getattr(layer, "g_idx", None))
    own = (kernel, layer.bias, layer.kernel_scale, *extra)
    return [v for v in own if v is not None]


def add_int4_variables(layer: Any, rows: int, columns: int, grouped: int | None) -> Any:
    """Keras's int4 variables of a ``rows x columns`` kernel, made on ``layer`` in Keras's
    order: the kernel (returned: the layer keeps it as ``_kernel``), (rows, ceil(columns
    / 2)) int8, two values a byte; ``kernel_scale`` per column, or, in groups of
    ``grouped`` rows, a (groups, columns) scale with an int8 ``kernel_zero`` and ``g_idx``
    (each row's group, float32 as Keras keeps it)."""
    kernel = layer.add_weight(
        (rows, (columns + 1) // 2), "zeros", dtype="int8", trainable=False, name="kernel"
    )
    scale_shape = (-(-rows // grouped), columns) if grouped else (columns,)
    layer.kernel_scale = layer.add_weight(scale_shape, "ones", trainable=False, name="kernel_scale")
    if grouped:
        layer.kernel_zero = layer.add_weight(
            scale_shape, "zeros", dtype="int8", trainable=False, name="kernel_zero"
        )
        layer.g_idx = layer.add_weight((rows,), "zeros", trainable=False, name="g_idx")
        layer.g_idx.assign(np.arange(rows, dtype=np.float32) // grouped)
    return kernel


def grouped_block_size(block_size: int | None) -> int | None:
    """The rows of an int4 group, or None per channel (Keras's None and -1)."""
    return block_size if block_size is not None and block_size > 0 else None


def int4_block_size(layer: Any, config: Any = None) -> int | None:
    """Keras's ``get_block_size_for_layer``: the config's block size, else the layer's
    ``Int4DTypePolicy``'s (a layer loaded from a file), else None (per channel, as a
    legacy ``int4_from_...`` policy); -1 from a policy read as None."""
    from kcompile.dtype_policies import Int4DTypePolicy

    if isinstance(config, Int4QuantizationConfig):
        return config.block_size
    if isinstance(layer.dtype_policy, Int4DTypePolicy):
        block_size = layer.dtype_policy.block_size
        return None if block_size == -1 else block_size
    return None


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


# --- int4, as Keras 3.15.1 ------------------------------------------------------------

INT4_RANGE = (-8, 7)


def abs_max_quantize_grouped_with_zero_point(
    inputs: Any,
    block_size: int,
    value_range: tuple[int, int] = INT4_RANGE,
    dtype: str = "int8",
    epsilon: float = EPSILON,
    to_numpy: bool = False,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Keras's grouped asymmetric quantizer of a 2-D kernel (its numpy path, which Keras
    takes for every kernel): rows zero-padded to whole groups of ``block_size``; per
    group and column ``scale = (max - min + epsilon) / (qmax - qmin)``, ``zero =
    clip(round(-min / scale) + qmin)``, ``q = clip(round(w / scale) + zero)``. Returns
    (q as ``dtype``, scale (groups, columns) in the input's float dtype, zero as int8)."""
    inputs = np.asarray(getattr(inputs, "value", inputs))
    original = inputs.dtype if inputs.dtype.kind == "f" else np.dtype(np.float32)
    rows, columns = inputs.shape
    groups = -(-rows // block_size)
    qmin, qmax = value_range
    padded = np.concatenate(
        [inputs, np.zeros((groups * block_size - rows, columns), inputs.dtype)], axis=0
    ).reshape(groups, block_size, columns)
    low = np.min(padded, axis=1, keepdims=True)
    high = np.max(padded, axis=1, keepdims=True)
    scale = np.divide(np.subtract(high, low) + epsilon, qmax - qmin)
    zero = np.clip(np.round(np.divide(-low, scale)) + qmin, qmin, qmax)
    outputs = np.clip(np.round(np.divide(padded, scale)) + zero, qmin, qmax).astype(dtype)
    outputs = outputs.reshape(groups * block_size, columns)[:rows]
    return outputs, np.squeeze(scale, 1).astype(original), np.squeeze(zero, 1).astype("int8")


def pack_int4(arr: Any, axis: int = 0, dtype: str = "int8") -> tuple[np.ndarray, tuple, int]:
    """Keras's ``pack_int4``: values in [-8, 7] two a byte along ``axis`` (padded to an
    even length with a 0), the first of each pair in the low nibble. Returns (packed,
    its shape, the original length)."""
    if dtype not in ("int8", "uint8"):
        raise ValueError(f"Expected dtype to be 'int8' or 'uint8', but got '{dtype}'.")
    arr = np.asarray(arr)
    if arr.dtype != np.dtype(dtype):
        raise TypeError(f"Expected {dtype} tensor for packing, got {arr.dtype}.")
    moved = np.moveaxis(arr, axis % arr.ndim, 0)
    n = moved.shape[0]
    if n % 2:
        moved = np.concatenate([moved, np.zeros((1, *moved.shape[1:]), moved.dtype)])
    mask = np.array(0x0F, dtype)
    packed = np.bitwise_or(
        np.bitwise_and(moved[::2], mask),
        np.left_shift(np.bitwise_and(moved[1::2], mask), np.array(4, dtype)),
    ).astype(dtype)
    packed = np.moveaxis(packed, 0, axis % arr.ndim)
    return packed, tuple(packed.shape), n


def unpack_int4(packed: Any, orig_len: int, axis: int = 0, dtype: str = "int8") -> np.ndarray:
    """Keras's ``unpack_int4``: the inverse of ``pack_int4`` (signed nibbles for int8,
    unsigned for uint8), the padding dropped."""
    if dtype not in ("int8", "uint8"):
        raise ValueError(f"Expected dtype to be 'int8' or 'uint8', but got '{dtype}'.")
    packed = np.asarray(getattr(packed, "value", packed))
    if packed.dtype not in (np.int8, np.uint8):
        raise TypeError(f"Expected int8 or uint8 tensor for unpacking, got {packed.dtype}")
    moved = np.moveaxis(packed, axis % packed.ndim, 0).astype(np.int16)
    low, high = moved & 0x0F, (moved >> 4) & 0x0F
    if dtype == "int8":
        low, high = (low ^ 8) - 8, (high ^ 8) - 8
    pairs = np.stack([low, high], axis=1).reshape(-1, *moved.shape[1:])[:orig_len]
    return np.moveaxis(pairs.astype(dtype), 0, axis % packed.ndim)


def dequantize_grouped(
    values: np.ndarray, scale: np.ndarray, zero: np.ndarray, g_idx: np.ndarray
) -> np.ndarray:
    """Keras's ``dequantize_with_sz_map(values, scale, zero, g_idx, group_axis=0)`` in
    numpy: ``(q - zero) * scale`` with each row's group's zero point and scale (float32)."""
    groups = np.asarray(g_idx).astype(np.int32)
    zeros = np.asarray(zero)[groups].astype(np.float32)
    return ((values.astype(np.float32) - zeros) * np.asarray(scale, np.float32)[groups]).astype(
        np.float32
    )


def dequantize_int4_in_graph(packed: Value, columns: int, grouped: Sequence[Value] = ()) -> Value:
    """Keras's int4 kernel in the graph: ``unpack_int4(packed, columns, axis=-1)`` as f32
    values, or with ``grouped`` = (scale, zero, g_idx) Keras's
    ``dequantize_with_sz_map(..., group_axis=0)``, ``(q - zero) * scale`` with each row's
    group's values, in the scale's dtype. One ``dequantize_int4`` op where the scale is
    f32 (a product reading it then unpacks the nibbles as it packs its panels:
    ``passes.int4_products``); in primitive ops in a narrower compute dtype."""
    if not grouped or all(v.dtype is DType.f32 for v in (grouped[0], grouped[2])):
        return B.dequantize_int4(packed, columns, grouped)
    return int4_ops.expanded(packed, columns, grouped)


def quantize_int4_kernel(
    flat: np.ndarray, block_size: int | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """A (rows, columns) float kernel as Keras's int4 ``quantize`` stores it: (packed
    along the columns, scale, zero point or None). Per channel (``block_size`` None or
    -1): ``abs_max_quantize`` over the rows to [-8, 7], a scale per column; else grouped
    with zero points."""
    if block_size is None or block_size == -1:
        values, scale = abs_max_quantize(flat, axis=0, value_range=INT4_RANGE, to_numpy=True)
        scale, zero = scale.squeeze(0), None
    else:
        values, scale, zero = abs_max_quantize_grouped_with_zero_point(
            flat, block_size, to_numpy=True
        )
    packed, _, _ = pack_int4(values, axis=-1)
    return packed, scale, zero


# --- Keras's serialize / deserialize / get, and its float8 helpers ----------------------


def _objects() -> dict[str, type]:
    """Keras's ``ALL_OBJECTS_DICT``: the classes by name and by snake-case name (the
    float8 and AWQ configs Keras lists kcompile refuses: ``utils.unoffered``)."""
    from kcompile.backend import session as backend

    classes = (Quantizer, AbsMaxQuantizer, QuantizationConfig, *_CONFIGS.values())
    return {
        **{c.__name__: c for c in classes},
        **{backend.snake_case(c.__name__): c for c in classes},
    }


def serialize(quantizer: Any) -> dict | None:
    """Keras's: a quantizer or a quantization config in Keras's serialized form."""
    if isinstance(quantizer, QuantizationConfig):
        return serialize_config(quantizer)
    return _serialize_quantizer(quantizer)


def deserialize(config: Any, custom_objects: dict | None = None) -> Any:
    """Keras's: a quantizer or quantization config from its serialized form."""
    if config is None:
        return None
    if not isinstance(config, dict) or "class_name" not in config:
        raise ValueError(f"could not deserialize quantizer {config!r}: expected a dict "
                         "with 'class_name' and 'config'")  # fmt: skip
    name = config["class_name"]
    cls = (custom_objects or {}).get(name) or _objects().get(name)
    if cls is None:
        from kcompile.utils.unoffered import refuse

        refuse("quantizers", name)  # a Keras class kcompile lacks says why
    return cls.from_config(dict(config.get("config") or {}))


def get(identifier: Any, **kwargs: Any) -> Any:
    """Keras's: a quantizer from an instance, a class, a name or a serialized dict (a
    class or a name made with ``kwargs``)."""
    if identifier is None:
        return None
    if isinstance(identifier, dict):
        obj = deserialize(identifier)
    elif isinstance(identifier, str):
        obj = _objects().get(identifier)
    else:
        obj = identifier
    if callable(obj):
        return obj(**kwargs) if isinstance(obj, type) else obj
    raise ValueError(f"Could not interpret quantizer identifier: {identifier}")


def compute_float8_scale(amax: Any, scale: Any, dtype_max: float, margin: int = 0) -> Any:
    """Keras's: the new float8 scale from an amax (``1 / (dtype_max / amax / 2**margin)``),
    the old scale where amax is zero or not finite."""
    from kcompile import ops

    scale = ops.reciprocal(scale)
    sf = ops.divide(ops.divide(dtype_max, amax), 2**margin)
    sf = ops.where(ops.greater(amax, 0.0), sf, scale)
    sf = ops.where(ops.isfinite(amax), sf, scale)
    return ops.reciprocal(sf)


def compute_float8_amax_history(x: Any, amax_history: Any) -> Any:
    """Keras's: the history rolled one step back, ``max|x|`` at its start."""
    from kcompile import ops

    amax_update = ops.cast(ops.max(ops.abs(x)), "float32")
    rolled = ops.roll(amax_history, shift=-1)
    return ops.scatter_update(rolled, [[0]], ops.reshape(amax_update, [1]))


def quantize_and_dequantize(inputs: Any, scale: Any, quantized_dtype: str, compute_dtype: str):
    """Keras's: ``inputs / scale`` clipped to the quantized dtype's range, cast to it (a
    float8 dtype: ml_dtypes' rounding) and back, times ``scale``. On arrays: kcompile's IR
    has no float8 type, so a traced call is refused."""
    if any(hasattr(v, "value") and not isinstance(v, np.ndarray) for v in (inputs, scale)):
        raise NotImplementedError(
            "keras.quantizers.quantize_and_dequantize inside a compiled step: kcompile's IR "
            "has no float8 type; call it on arrays"
        )
    import ml_dtypes

    quantized = np.dtype(getattr(ml_dtypes, quantized_dtype, quantized_dtype))
    compute = np.dtype(compute_dtype)
    top = compute.type(float(ml_dtypes.finfo(quantized).max))
    x = np.divide(np.asarray(inputs, compute), np.asarray(scale).astype(compute))
    x = np.clip(x, -top, top).astype(quantized)
    return np.multiply(x.astype(compute), np.asarray(scale).astype(compute))


def _adjust_and_nudge(min_range: Any, max_range: Any, num_bits: int, narrow_range: bool):
    """Keras's ``adjust_and_nudge``: the range moved so that zero is a quantization step
    (the zero point rounded), with the step (``scale``) and its inverse."""
    from kcompile import ops

    quant_max = (1 << num_bits) - 1
    quant_min = 1 if narrow_range else 0
    diff_range = ops.subtract(max_range, min_range)
    scale = ops.divide(diff_range, quant_max - quant_min)
    inv_scale = ops.divide(quant_max - quant_min, diff_range)
    zero_point = ops.clip(quant_min - ops.divide(min_range, scale), quant_min, quant_max)
    nudged_zero_point = ops.round(zero_point)
    nudged_min = ops.multiply(ops.subtract(quant_min, nudged_zero_point), scale)
    nudged_max = ops.multiply(ops.subtract(quant_max, nudged_zero_point), scale)
    return nudged_min, nudged_max, scale, inv_scale


def fake_quant_with_min_max_vars(
    inputs: Any,
    min_vals: Any,
    max_vals: Any,
    num_bits: int = 8,
    narrow_range: bool = False,
    axis: int | None = None,
) -> Any:
    """Keras's: ``inputs`` clamped to ``[min_vals, max_vals]`` (nudged so that zero is a
    step), quantized to ``num_bits`` and dequantized; per tensor, or per channel with
    min and max broadcasting against ``inputs`` (``axis`` names the channel axis, as in
    Keras, where the gradients of min and max are summed over the others). Keras's
    custom gradient: the inputs' where they lie within the nudged range (its ends
    included), min's and max's the sums of the gradient where the inputs are at or
    beyond them. In a compiled step the gradient goes through a proxy with exactly
    those derivatives (``gradient_via``)."""
    from kcompile import ops
    from kcompile.backend.keras_tensor import KerasTensor

    if any(isinstance(v, KerasTensor) for v in (inputs, min_vals, max_vals)):
        from kcompile.ops import core  # (a node of the model)

        options = {"num_bits": num_bits, "narrow_range": narrow_range, "axis": axis}
        return core.symbolic_call(
            fake_quant_with_min_max_vars, (inputs, min_vals, max_vals), options
        )
    num_bits = int(num_bits)
    nudged_min, nudged_max, scale, inv_scale = _adjust_and_nudge(
        min_vals, max_vals, num_bits, narrow_range
    )
    quant_zero = ops.floor(ops.add(ops.multiply(ops.negative(nudged_min), inv_scale), 0.5))
    shifted = ops.subtract(ops.clip(inputs, nudged_min, nudged_max), nudged_min)
    steps = ops.floor(ops.add(ops.subtract(ops.multiply(shifted, inv_scale), quant_zero), 0.5))
    result = ops.multiply(steps, scale)
    if not hasattr(result, "value") or isinstance(result, np.ndarray):
        return result  # on arrays: no gradient to give
    # d/dx = [min <= x <= max]; d/dmin = [x <= min]; d/dmax = [x >= max] (summed by the
    # broadcast): x, min and max times those masks, the masks held constant.
    inside = ops.logical_and(
        ops.greater_equal(inputs, nudged_min), ops.less_equal(inputs, nudged_max)
    )
    below = ops.less_equal(inputs, nudged_min)
    above = ops.greater_equal(inputs, nudged_max)
    proxy = ops.add(
        ops.add(
            ops.multiply(inputs, ops.cast(inside, result.dtype)),
            ops.multiply(min_vals, ops.cast(below, result.dtype)),
        ),
        ops.multiply(max_vals, ops.cast(above, result.dtype)),
    )
    from kcompile.backend.symbolic import TracedTensor

    return TracedTensor(B.gradient_via(result.value, ops.convert_to_tensor(proxy).value))


def __getattr__(name: str) -> Any:
    from kcompile.utils.unoffered import refuse

    refuse("quantizers", name)  # a Keras name kcompile lacks: NotImplementedError, why


__all__ = [
    "AbsMaxQuantizer",
    "Int4QuantizationConfig",
    "Int8QuantizationConfig",
    "QuantizationConfig",
    "Quantizer",
    "abs_max_quantize",
    "abs_max_quantize_grouped_with_zero_point",
    "compute_float8_amax_history",
    "compute_float8_scale",
    "deserialize",
    "fake_quant_with_min_max_vars",
    "get",
    "pack_int4",
    "quantize_and_dequantize",
    "serialize",
    "unpack_int4",
]
