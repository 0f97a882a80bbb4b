"""Keras activations, written as IR. ``get`` resolves a name, a callable or None."""

from __future__ import annotations

import math
import weakref
from collections.abc import Callable

from kcompile.ir import Value
from kcompile.ir import build as B


def linear(x: Value) -> Value:
    return x


# Each activation's derivative at its kinks is the one Keras's JAX backend gives
# (jax.nn): relu'(0) = 0, relu6'(0) = relu6'(6) = 0, leaky_relu'(0) = 1, elu'(0) = alpha,
# softplus'(0) = 1/2. A select on the strict comparison puts the kink where jax puts it.


def relu(x: Value) -> Value:
    return B.select(B.gt(x, 0.0), x, 0.0)


def relu6(x: Value) -> Value:
    return B.select(B.gt(x, 0.0), B.select(B.lt(x, 6.0), x, 6.0), 0.0)


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


def sigmoid(x: Value) -> Value:
    return _remember_logits(B.logistic(x), "sigmoid", x)


def tanh(x: Value) -> Value:
    return B.tanh(x)


def softmax(x: Value, axis: int = -1) -> Value:
    shift = B.stop_gradient(B.reduce_max(x, axis, keepdims=True))
    e = B.exp(x - shift)
    out = e / B.reduce_sum(e, axis, keepdims=True)
    return _remember_logits(out, "softmax", x) if axis in (-1, x.rank - 1) else out


def log_softmax(x: Value, axis: int = -1) -> Value:
    shifted = x - B.stop_gradient(B.reduce_max(x, axis, keepdims=True))
    return shifted - B.log(B.reduce_sum(B.exp(shifted), axis, keepdims=True))


def elu(x: Value, alpha: float = 1.0) -> Value:
    positive = B.gt(x, 0.0)
    # exp of the negative part only (no overflow), with derivative 1 at x = 0.
    return B.select(positive, x, alpha * (B.exp(B.select(positive, 0.0, x)) - 1.0))


_SELU_ALPHA = 1.6732632423543772848170429916717
_SELU_SCALE = 1.0507009873554804934193349852946


def selu(x: Value) -> Value:
    return _SELU_SCALE * elu(x, _SELU_ALPHA)


def gelu(x: Value, approximate: bool = False) -> Value:
    if approximate:
        inner = math.sqrt(2.0 / math.pi) * (x + 0.044715 * x * x * x)
        return 0.5 * x * (1.0 + B.tanh(inner))
    return B.gelu(x)


def softplus(x: Value) -> Value:
    # log(1 + exp(x)) without overflow for large x; max's tie rule gives 1/2 at x = 0.
    return B.maximum(x, 0.0) + B.log1p(B.exp(-B.abs(x)))


def softsign(x: Value) -> Value:
    return x / (B.abs(x) + 1.0)


def silu(x: Value) -> Value:
    return x * B.logistic(x)


def leaky_relu(x: Value, negative_slope: float = 0.2) -> Value:
    return B.select(B.ge(x, 0.0), x, negative_slope * x)


def hard_sigmoid(x: Value) -> Value:
    return relu6(x + 3.0) * (1.0 / 6.0)


def hard_silu(x: Value) -> Value:
    return x * hard_sigmoid(x)


def exponential(x: Value) -> Value:
    return B.exp(x)


def mish(x: Value) -> Value:
    return x * B.tanh(softplus(x))


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
}


def get(identifier: str | Callable | None) -> Callable[[Value], Value]:
    if identifier is None:
        return linear
    if callable(identifier):
        return identifier
    if isinstance(identifier, str) and identifier in _ALL:
        return _ALL[identifier]
    raise ValueError(
        f"unknown activation {identifier!r}; known activations: {', '.join(sorted(_ALL))}"
    )


def serialize(fn: Callable) -> str:
    for name, f in _ALL.items():
        if f is fn:
            return name
    return getattr(fn, "__name__", repr(fn))
