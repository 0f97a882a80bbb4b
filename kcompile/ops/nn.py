"""``keras.ops.nn``: activations, softmax, one-hot, cross-entropies, moments, normalize.

The activations are kcompile's own (``kcompile.activations``), so a custom layer's
``ops.relu`` has the same derivative at its kink as ``Dense(activation="relu")``.
"""

from __future__ import annotations

from kcompile import activations as A
from kcompile import losses as L
from kcompile.ir import DType
from kcompile.ir import build as B
from kcompile.ir.types import normalize_axes
from kcompile.ops.core import op, unsupported, val
from kcompile.ops.numpy import _axes, _named, _unary, one_hot


def _float(x):
    return val(x, DType.f32)


relu = _unary("relu", A.relu)
relu6 = _unary("relu6", A.relu6)
sigmoid = _unary("sigmoid", A.sigmoid)
tanh = _unary("tanh", A.tanh)
silu = _unary("silu", A.silu)
swish = silu
softplus = _unary("softplus", A.softplus)
softsign = _unary("softsign", A.softsign)
selu = _unary("selu", A.selu)
hard_sigmoid = _unary("hard_sigmoid", A.hard_sigmoid)
hard_silu = _unary("hard_silu", A.hard_silu)
hard_swish = hard_silu
mish = _unary("mish", A.mish)
gelu = _named("gelu", lambda x, approximate=True: A.gelu(_float(x), approximate))
elu = _named("elu", lambda x, alpha=1.0: A.elu(_float(x), alpha))
leaky_relu = _named(
    "leaky_relu", lambda x, negative_slope=0.2: A.leaky_relu(_float(x), negative_slope)
)


@op
def softmax(x, axis=-1):
    v = _float(x)
    return A.softmax(v, normalize_axes(axis, v.rank)[0])


@op
def log_softmax(x, axis=-1):
    v = _float(x)
    return A.log_softmax(v, normalize_axes(axis, v.rank)[0])


@op
def moments(x, axes, keepdims=False, synchronized=False):
    v = _float(x)
    axes = _axes(v, axes)
    mean = B.mean(v, axes, keepdims=True)
    variance = B.mean(B.square(v - mean), axes, keepdims=True)
    if keepdims:
        return mean, variance
    kept = tuple(d for i, d in enumerate(v.shape) if i not in axes)
    return B.reshape(mean, kept), B.reshape(variance, kept)


@op
def normalize(x, axis=-1, order=2, epsilon=None):
    if order != 2:
        raise unsupported("nn.normalize", f"order={order}")
    v = _float(x)
    axes = _axes(v, axis)
    eps = 1e-12 if epsilon is None else epsilon
    return v / B.sqrt(B.maximum(B.reduce_sum(B.square(v), axes, keepdims=True), eps * eps))


def _loss(cls, **fixed):
    def fn(target, output, from_logits=False, axis=-1):
        if axis != -1:
            raise unsupported(f"nn.{cls.default_name}", "axis other than -1")
        per = cls(from_logits=from_logits, reduction="none", **fixed).per_sample
        return per(val(target), _float(output))

    fn.__name__ = cls.default_name
    return op(fn)


categorical_crossentropy = _loss(L.CategoricalCrossentropy)
sparse_categorical_crossentropy = _loss(L.SparseCategoricalCrossentropy)
binary_crossentropy = _named(
    "binary_crossentropy",
    lambda target, output, from_logits=False: _binary_per_element(target, output, from_logits),
)


def _binary_per_element(target, output, from_logits):
    # Keras's ops.binary_crossentropy keeps every element (no mean over the last axis).
    t, x = _float(target), _float(output)
    if from_logits:
        return B.maximum(x, 0.0) - x * t + B.log1p(B.exp(-B.abs(x)))
    eps = 1e-7
    q = B.minimum(B.maximum(x, eps), 1.0 - eps)
    return -(t * B.log(q) + (1.0 - t) * B.log(1.0 - q))


__all__ = [
    "binary_crossentropy",
    "categorical_crossentropy",
    "elu",
    "gelu",
    "hard_sigmoid",
    "hard_silu",
    "hard_swish",
    "leaky_relu",
    "log_softmax",
    "mish",
    "moments",
    "normalize",
    "one_hot",
    "relu",
    "relu6",
    "selu",
    "sigmoid",
    "silu",
    "softmax",
    "softplus",
    "softsign",
    "sparse_categorical_crossentropy",
    "swish",
    "tanh",
]
