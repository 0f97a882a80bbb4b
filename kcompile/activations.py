"""Keras activations, written as IR. ``get`` resolves a name, a callable, a serialized
dict or None.

Each activation is written once over IR values (a layer's ``call`` hands it one); called
on an array, a traced tensor or a symbolic tensor it runs as a ``keras.ops`` op would
(eagerly on numpy, into the traced step, or as a node of a functional model). They are
compositions of IR primitives, so their gradients come from the primitives' rules.
"""

from __future__ import annotations

import functools
import math
import weakref
from collections.abc import Callable
from typing import Any

from kcompile.backend.symbolic import TracedTensor
from kcompile.ir import DType, Value
from kcompile.ir import build as B


def _activation(fn: Callable) -> Callable:
    """``fn`` (over IR values) also callable on arrays and tensors, as Keras's are."""
    as_op: list[Callable] = []

    @functools.wraps(fn)
    def activation(x: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(x, Value):
            return fn(x, *args, **kwargs)
        if not as_op:
            # Deferred: ``kcompile.ops`` imports this module to define its activations.
            from kcompile.ops.core import op, val

            def on_operand(x, *args, **kwargs):
                return fn(val(x, DType.f32), *args, **kwargs)

            on_operand.__name__ = on_operand.__qualname__ = fn.__name__
            as_op.append(op(on_operand))
        return as_op[0](x, *args, **kwargs)

    return activation


@_activation
def linear(x: Value) -> Value:
    return x


# Each activation's derivative at its kinks is the one Keras's JAX backend gives
# (jax.nn): relu'(0) = 0, relu6'(0) = relu6'(6) = 0, leaky_relu'(0) = 1, elu'(0) = alpha,
# softplus'(0) = 1/2. A select on the strict comparison puts the kink where jax puts it.


@_activation
def relu(
    x: Value, negative_slope: float = 0.0, max_value: float | None = None, threshold: float = 0.0
) -> Value:
    """max(x, 0), NaN kept (as jax.nn.relu); with Keras's options, Keras's composition."""
    if negative_slope == 0 and max_value is None and threshold == 0:
        return _relu(x)
    if negative_slope != 0 and max_value is None and threshold == 0:
        return leaky_relu(x, negative_slope)
    out = B.select(B.gt(x, float(threshold)), x, 0.0) if threshold != 0 else None
    if out is None:
        out = relu6(x) if max_value == 6 else _relu(x)
    if max_value is not None and (threshold != 0 or max_value != 6):
        out = B.minimum(B.maximum(out, 0.0), float(max_value))
    if negative_slope != 0:
        out = out - negative_slope * _relu(float(threshold) - x)
    return out


def _relu(x: Value) -> Value:
    # Zero where x <= 0 (derivative 0 at the kink); NaN compares false, so it stays NaN.
    return B.select(B.le(x, 0.0), 0.0, x)


@_activation
def relu6(x: Value) -> Value:
    return B.select(B.le(x, 0.0), 0.0, B.select(B.ge(x, 6.0), 6.0, x))


# The pre-activation of each sigmoid or softmax output traced, per graph: a cross-entropy
# of that output uses the logits instead, as Keras caches ``_keras_logits`` for its losses.
# Front-end state, kept beside the graph rather than on its values.
_LOGITS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _remember_logits(out: Value, kind: str, logits: Value) -> Value:
    _LOGITS.setdefault(out.graph, {})[out] = (kind, logits)
    return out


def logits_of(value: Value) -> tuple[str, Value] | None:
    """("sigmoid" | "softmax", the pre-activation) when ``value`` is such an output."""
    return _LOGITS.get(value.graph, {}).get(value)


@_activation
def sigmoid(x: Value) -> Value:
    return _remember_logits(B.logistic(x), "sigmoid", x)


@_activation
def tanh(x: Value) -> Value:
    return B.tanh(x)


@_activation
def softmax(x: Value, axis: int = -1) -> Value:
    shift = B.stop_gradient(B.reduce_max(x, axis, keepdims=True))
    e = B.exp(x - shift)
    out = e / B.reduce_sum(e, axis, keepdims=True)
    return _remember_logits(out, "softmax", x) if axis in (-1, x.rank - 1) else out


@_activation
def log_softmax(x: Value, axis: int = -1) -> Value:
    shifted = x - B.stop_gradient(B.reduce_max(x, axis, keepdims=True))
    return shifted - B.log(B.reduce_sum(B.exp(shifted), axis, keepdims=True))


@_activation
def elu(x: Value, alpha: float = 1.0) -> Value:
    positive = B.gt(x, 0.0)
    # exp of the negative part only (no overflow), with derivative 1 at x = 0.
    return B.select(positive, x, alpha * (B.exp(B.select(positive, 0.0, x)) - 1.0))


_SELU_ALPHA = 1.6732632423543772848170429916717
_SELU_SCALE = 1.0507009873554804934193349852946


@_activation
def selu(x: Value) -> Value:
    return _SELU_SCALE * elu(x, _SELU_ALPHA)


@_activation
def gelu(x: Value, approximate: bool = False) -> Value:
    if approximate:
        inner = math.sqrt(2.0 / math.pi) * (x + 0.044715 * x * x * x)
        return 0.5 * x * (1.0 + B.tanh(inner))
    return B.gelu(x)


@_activation
def softplus(x: Value) -> Value:
    # log(1 + exp(x)) without overflow for large x; max's tie rule gives 1/2 at x = 0.
    return B.maximum(x, 0.0) + B.log1p(B.exp(-B.abs(x)))


@_activation
def softsign(x: Value) -> Value:
    return x / (B.abs(x) + 1.0)


@_activation
def silu(x: Value) -> Value:
    return x * B.logistic(x)


@_activation
def leaky_relu(x: Value, negative_slope: float = 0.2) -> Value:
    return B.select(B.ge(x, 0.0), x, negative_slope * x)


@_activation
def hard_sigmoid(x: Value) -> Value:
    return relu6(x + 3.0) * (1.0 / 6.0)


@_activation
def hard_silu(x: Value) -> Value:
    return x * hard_sigmoid(x)


@_activation
def exponential(x: Value) -> Value:
    return B.exp(x)


@_activation
def mish(x: Value) -> Value:
    return x * B.tanh(softplus(x))


@_activation
def celu(x: Value, alpha: float = 1.0) -> Value:
    return B.maximum(x, 0.0) + alpha * (B.exp(B.minimum(x, 0.0) / alpha) - 1.0)


@_activation
def glu(x: Value, axis: int = -1) -> Value:
    """The first half along ``axis`` gated by the sigmoid of the second half."""
    axis = axis % x.rank
    size = x.shape[axis]
    if not isinstance(size, int) or size % 2:
        raise ValueError(f"glu: the size of axis {axis} must be even, got shape {x.shape}")
    half = size // 2
    first = B.slice_(x, *_window(x, axis, 0, half))
    second = B.slice_(x, *_window(x, axis, half, size))
    return first * B.logistic(second)


def _window(x: Value, axis: int, start: int, stop: int) -> tuple[tuple, tuple]:
    begin = tuple(start if i == axis else 0 for i in range(x.rank))
    end = tuple(stop if i == axis else d for i, d in enumerate(x.shape))
    return begin, end


@_activation
def hard_shrink(x: Value, threshold: float = 0.5) -> Value:
    return B.select(B.gt(B.abs(x), float(threshold)), x, 0.0)


@_activation
def hard_tanh(x: Value) -> Value:
    return B.select(B.gt(x, 1.0), 1.0, B.select(B.lt(x, -1.0), -1.0, x))


@_activation
def log_sigmoid(x: Value) -> Value:
    return -softplus(-x)


@_activation
def soft_shrink(x: Value, threshold: float = 0.5) -> Value:
    t = float(threshold)
    return B.select(B.gt(x, t), x - t, B.select(B.lt(x, -t), x + t, 0.0))


@_activation
def sparse_plus(x: Value) -> Value:
    return B.select(B.le(x, -1.0), 0.0, B.select(B.ge(x, 1.0), x, B.square(x + 1.0) * 0.25))


@_activation
def sparse_sigmoid(x: Value) -> Value:
    # jax.nn's 0.5·clip(x + 1, 0, 2): the derivative at ±1 is max's and min's tie share.
    return B.minimum(B.maximum(x + 1.0, 0.0), 2.0) * 0.5


@_activation
def squareplus(x: Value, b: float = 4) -> Value:
    return (x + B.sqrt(B.square(x) + float(b))) * 0.5


@_activation
def tanh_shrink(x: Value) -> Value:
    return x - B.tanh(x)


@_activation
def threshold(x: Value, threshold: float, default_value: float) -> Value:
    """x where x > threshold, else ``default_value``."""
    return B.select(B.gt(x, float(threshold)), x, float(default_value))


@_activation
def sparsemax(x: Value, axis: int = -1) -> Value:
    """Keras's sparsemax, its formula as every Keras 3.15 backend computes it: with the
    logits sorted in descending order, cumulative sums S_p and the support the p with
    z_p - (S_p - 1) / p > 0 (k of them), tau = (sum of S_p over the support - 1) / k and
    the output max(z - tau, 0). (Martins & Astudillo's sparsemax takes S_k rather than
    the sum of the S_p; the two agree when the support has one element or the S_p of
    the support add up to S_k, and Keras's is kept here so programs compute as there.)

    Written without a sort: an element's rank p counts the elements greater than it and
    its equals at or before it (a stable sort's order), and S_p sums them, from an n × n
    comparison per row along ``axis``."""
    axis = axis % x.rank
    if axis != x.rank - 1:
        perm = (*(i for i in range(x.rank) if i != axis), axis)
        back = tuple(perm.index(i) for i in range(x.rank))
        return B.transpose(sparsemax(B.transpose(x, perm), -1), back)
    n = x.shape[-1]
    rows = B.reshape(x, (*x.shape, 1))  # [..., n, 1]: z_j down the rows
    cols = B.reshape(x, (*x.shape[:-1], 1, n))  # [..., 1, n]: z_i along the columns
    at_or_before = B.const_array(
        x.graph, [float(i <= j) for j in range(n) for i in range(n)], DType.f32, (n, n)
    )
    ahead = B.cast(B.gt(cols, rows), DType.f32) + B.cast(B.eq(cols, rows), DType.f32) * (
        at_or_before
    )  # [..., j, i]: z_i comes before z_j (or is z_j) in the sorted order
    rank = B.reduce_sum(ahead, -1)
    cumsum = B.reduce_sum(ahead * cols, -1)
    support = B.cast(B.gt(x - (cumsum - 1.0) / rank, 0.0), DType.f32)
    k = B.reduce_sum(support, -1, keepdims=True)
    tau = (B.reduce_sum(support * cumsum, -1, keepdims=True) - 1.0) / k
    return B.maximum(x - tau, 0.0)


_ALL: dict[str, Callable[[Value], Value]] = {
    "linear": linear,
    "relu": relu,
    "relu6": relu6,
    "sigmoid": sigmoid,
    "tanh": tanh,
    "softmax": softmax,
    "log_softmax": log_softmax,
    "elu": elu,
    "selu": selu,
    "gelu": gelu,
    "softplus": softplus,
    "softsign": softsign,
    "silu": silu,
    "swish": silu,
    "leaky_relu": leaky_relu,
    "hard_sigmoid": hard_sigmoid,
    "hard_silu": hard_silu,
    "hard_swish": hard_silu,
    "exponential": exponential,
    "mish": mish,
    "celu": celu,
    "glu": glu,
    "hard_shrink": hard_shrink,
    "hard_tanh": hard_tanh,
    "log_sigmoid": log_sigmoid,
    "soft_shrink": soft_shrink,
    "sparse_plus": sparse_plus,
    "sparse_sigmoid": sparse_sigmoid,
    "sparsemax": sparsemax,
    "squareplus": squareplus,
    "tanh_shrink": tanh_shrink,
    "threshold": threshold,
}
swish = silu
hard_swish = hard_silu


def get(identifier: Any) -> Callable:
    """An activation from a name, a serialized dict, a callable or None (linear). A
    callable of the user's gets traced tensors, so it may use ``keras.ops``."""
    if identifier is None:
        return linear
    if isinstance(identifier, dict):
        return deserialize(identifier)
    if isinstance(identifier, str) and identifier in _ALL:
        return _ALL[identifier]
    if callable(identifier):
        return identifier if _is_ours(identifier) else _users(identifier)
    raise ValueError(
        f"unknown activation {identifier!r}; known activations: {', '.join(sorted(_ALL))}"
    )


def _is_ours(fn: Callable) -> bool:
    return any(fn is f for f in _ALL.values()) or getattr(fn, "_kcompile_activation", False)


def _users(fn: Callable) -> Callable:
    """A user's activation, called on IR values by kcompile's layers: it sees a traced
    tensor instead, as ``keras.ops`` expects, and what it returns goes back to IR."""

    @functools.wraps(fn)
    def activation(x: Any, *args: Any, **kwargs: Any) -> Any:
        if not isinstance(x, Value):
            return fn(x, *args, **kwargs)
        out = fn(TracedTensor(x), *args, **kwargs)
        return out.value if isinstance(out, TracedTensor) else out

    activation._kcompile_activation = True  # type: ignore[attr-defined]
    return activation


def serialize(activation: Callable) -> str:
    """The name of an activation (Keras's name for it: ``swish`` is ``silu``)."""
    for name, f in _ALL.items():
        if f is activation:
            return name
    return getattr(activation, "__name__", repr(activation))


def deserialize(config: Any, custom_objects: dict | None = None) -> Callable:
    """An activation from its name or from Keras's serialized form
    (``{"class_name": "function", "config": "relu", ...}``)."""
    name = config
    if isinstance(config, dict):
        name = config.get("config", config.get("class_name"))
        if isinstance(name, dict):  # a layer-like config: {"name": ...}
            name = name.get("name")
    if custom_objects and name in custom_objects:
        return custom_objects[name]
    if isinstance(name, str) and name in _ALL:
        return _ALL[name]
    raise ValueError(
        f"could not deserialize activation {config!r}: known activations are "
        f"{', '.join(sorted(_ALL))}"
    )
