"""Keras's losses written with ``keras.ops``, as Keras's own are (and so traced into the
step with their gradient from the primitives): huber, log_cosh, kl_divergence, poisson,
cosine_similarity, hinge, squared_hinge, categorical_hinge,
mean_absolute_percentage_error, mean_squared_logarithmic_error and the focal
cross-entropies, each a function of (y_true, y_pred) and a Loss class around it."""

from __future__ import annotations

import functools
import inspect
import math
from typing import Any

import numpy as np

from kcompile import ops
from kcompile.losses.loss import Loss

EPSILON = 1e-7  # keras.config.epsilon()


def _arrays(function):
    """Keras's loss functions take Python lists and numbers too (as arrays: floats as
    float32), besides tensors."""

    @functools.wraps(function)
    def wrapped(y_true, y_pred, *args, **kwargs):
        y_true, y_pred = (_array(y) for y in (y_true, y_pred))
        return function(y_true, y_pred, *args, **kwargs)

    return wrapped


def _array(y):
    if isinstance(y, list | tuple | int | float | np.number):
        y = np.asarray(y)
        return y.astype(np.float32) if y.dtype.kind == "f" else y
    return y


def _aligned(y_true, y_pred):
    """Keras's squeeze_or_expand_to_same_rank on traced tensors, as floats."""
    y_true = ops.cast(y_true, "float32")
    if len(y_true.shape) == len(y_pred.shape) + 1 and y_true.shape[-1] == 1:
        y_true = ops.squeeze(y_true, -1)
    elif len(y_pred.shape) == len(y_true.shape) + 1 and y_pred.shape[-1] == 1:
        y_pred = ops.squeeze(y_pred, -1)
    return y_true, y_pred


def _hinge_labels(y_true):
    """Keras's convert_binary_labels_to_hinge: 0/1 labels become -1/1 (when every label of
    the batch is 0 or 1)."""
    binary = ops.all(ops.logical_or(ops.equal(y_true, 0.0), ops.equal(y_true, 1.0)))
    return ops.where(binary, 2.0 * y_true - 1.0, y_true)


@_arrays
def huber(y_true, y_pred, delta=1.0):
    y_true, y_pred = _aligned(y_true, y_pred)
    error = y_pred - y_true
    magnitude = ops.abs(error)
    quadratic = 0.5 * ops.square(error)
    linear = delta * magnitude - 0.5 * delta * delta
    return ops.mean(ops.where(magnitude <= delta, quadratic, linear), axis=-1)


@_arrays
def log_cosh(y_true, y_pred):
    y_true, y_pred = _aligned(y_true, y_pred)
    x = y_pred - y_true
    return ops.mean(x + ops.softplus(x * -2.0) - math.log(2.0), axis=-1)


@_arrays
def kl_divergence(y_true, y_pred):
    y_true = ops.clip(ops.cast(y_true, "float32"), EPSILON, 1.0)
    y_pred = ops.clip(y_pred, EPSILON, 1.0)
    return ops.sum(y_true * ops.log(y_true / y_pred), axis=-1)


@_arrays
def poisson(y_true, y_pred):
    y_true = ops.cast(y_true, "float32")
    return ops.mean(y_pred - y_true * ops.log(y_pred + EPSILON), axis=-1)


@_arrays
def cosine_similarity(y_true, y_pred, axis=-1):
    """The loss: minus the cosine of the angle (so lower is better)."""
    y_true, y_pred = _aligned(y_true, y_pred)
    return -ops.sum(ops.normalize(y_true, axis=axis) * ops.normalize(y_pred, axis=axis), axis=axis)


@_arrays
def hinge(y_true, y_pred):
    y_true = _hinge_labels(ops.cast(y_true, "float32"))
    return ops.mean(ops.maximum(1.0 - y_true * y_pred, 0.0), axis=-1)


@_arrays
def squared_hinge(y_true, y_pred):
    y_true = _hinge_labels(ops.cast(y_true, "float32"))
    return ops.mean(ops.square(ops.maximum(1.0 - y_true * y_pred, 0.0)), axis=-1)


@_arrays
def categorical_hinge(y_true, y_pred):
    y_true = ops.cast(y_true, "float32")
    positive = ops.sum(y_true * y_pred, axis=-1)
    negative = ops.max((1.0 - y_true) * y_pred, axis=-1)
    return ops.maximum(negative - positive + 1.0, 0.0)


@_arrays
def mean_absolute_percentage_error(y_true, y_pred):
    y_true, y_pred = _aligned(y_true, y_pred)
    diff = ops.abs((y_true - y_pred) / ops.maximum(ops.abs(y_true), EPSILON))
    return 100.0 * ops.mean(diff, axis=-1)


@_arrays
def mean_squared_logarithmic_error(y_true, y_pred):
    y_true, y_pred = _aligned(y_true, y_pred)
    first = ops.log(ops.maximum(y_pred, EPSILON) + 1.0)
    second = ops.log(ops.maximum(y_true, EPSILON) + 1.0)
    return ops.mean(ops.square(first - second), axis=-1)


@_arrays
def categorical_focal_crossentropy(
    y_true, y_pred, alpha=0.25, gamma=2.0, from_logits=False, label_smoothing=0.0, axis=-1
):
    y_true = ops.cast(y_true, "float32")
    if label_smoothing:
        y_true = y_true * (1.0 - label_smoothing) + label_smoothing / y_pred.shape[axis]
    if from_logits:
        y_pred = ops.softmax(y_pred, axis=axis)
    output = y_pred / ops.sum(y_pred, axis=axis, keepdims=True)
    output = ops.clip(output, EPSILON, 1.0 - EPSILON)
    cce = -y_true * ops.log(output)
    return ops.sum(ops.power(1.0 - output, gamma) * alpha * cce, axis=axis)


@_arrays
def binary_focal_crossentropy(
    y_true,
    y_pred,
    apply_class_balancing=False,
    alpha=0.25,
    gamma=2.0,
    from_logits=False,
    label_smoothing=0.0,
    axis=-1,
):
    """Keras's: the binary cross-entropy of each element times (1 - p_t)^gamma."""
    y_true = ops.cast(y_true, "float32")
    if label_smoothing:
        y_true = y_true * (1.0 - label_smoothing) + 0.5 * label_smoothing
    if from_logits:
        y_pred = ops.sigmoid(y_pred)
    clipped = ops.clip(y_pred, EPSILON, 1.0 - EPSILON)
    bce = -(y_true * ops.log(clipped) + (1.0 - y_true) * ops.log(1.0 - clipped))
    p_t = y_true * y_pred + (1.0 - y_true) * (1.0 - y_pred)
    focal = ops.power(1.0 - p_t, gamma) * bce
    if apply_class_balancing:
        focal = (y_true * alpha + (1.0 - y_true) * (1.0 - alpha)) * focal
    return ops.mean(focal, axis=axis)


@_arrays
def dice(y_true, y_pred, axis=None):
    """Keras's: 1 - the Dice coefficient, over ``axis`` (all axes: one value a batch)."""
    y_pred = ops.cast(y_pred, "float32")
    y_true = ops.cast(y_true, "float32")
    intersection = ops.sum(y_true * y_pred, axis=axis)
    denominator = ops.sum(y_true, axis=axis) + ops.sum(y_pred, axis=axis) + EPSILON
    return 1.0 - 2.0 * intersection / denominator


@_arrays
def tversky(y_true, y_pred, alpha=0.5, beta=0.5, axis=None):
    """Keras's: 1 - the Tversky index, over ``axis`` (all axes: one value a batch)."""
    y_pred = ops.cast(y_pred, "float32")
    y_true = ops.cast(y_true, "float32")
    intersection = ops.sum(y_true * y_pred, axis=axis)
    fp = ops.sum((1.0 - y_pred) * y_true, axis=axis)
    fn = ops.sum(y_pred * (1.0 - y_true), axis=axis)
    return 1.0 - intersection / (intersection + fp * alpha + fn * beta + EPSILON)


@_arrays
def categorical_generalized_cross_entropy(y_true, y_pred, q):
    """Keras's generalized cross-entropy of integer labels: (1 - p_true^q) / q."""
    y_pred = ops.cast(y_pred, "float32")
    onehot = ops.one_hot(ops.cast(y_true, "int32"), y_pred.shape[-1])
    p = ops.sum(y_pred * ops.cast(onehot, "float32"), axis=-1)
    return (1.0 - ops.power(p, q)) / q


class _FunctionOf(Loss):
    """A loss class around one of the functions above, with its keyword arguments."""

    function = staticmethod(huber)
    arguments: tuple[str, ...] = ()

    def __init__(self, reduction: str = "sum_over_batch_size", name: str | None = None, **kw):
        own = {k: kw.pop(k) for k in list(kw) if k in self.arguments}
        super().__init__(name=name, reduction=reduction, **kw)
        defaults = inspect.signature(type(self).function).parameters
        self.kwargs = {a: own.get(a, defaults[a].default) for a in self.arguments}

    def check_shapes(self, y_true, y_pred):
        pass

    def call(self, y_true, y_pred):
        return type(self).function(y_true, y_pred, **self.kwargs)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), **self.kwargs}


def _loss_class(name: str, function, default_name: str, arguments: tuple[str, ...] = ()):
    return type(
        name,
        (_FunctionOf,),
        {
            "function": staticmethod(function),
            "default_name": default_name,
            "arguments": arguments,
            "__doc__": f"Keras's ``{name}`` loss.",
        },
    )


Huber = _loss_class("Huber", huber, "huber_loss", ("delta",))
LogCosh = _loss_class("LogCosh", log_cosh, "log_cosh")
KLDivergence = _loss_class("KLDivergence", kl_divergence, "kl_divergence")
Poisson = _loss_class("Poisson", poisson, "poisson")
CosineSimilarity = _loss_class(
    "CosineSimilarity", cosine_similarity, "cosine_similarity", ("axis",)
)
Hinge = _loss_class("Hinge", hinge, "hinge")
SquaredHinge = _loss_class("SquaredHinge", squared_hinge, "squared_hinge")
CategoricalHinge = _loss_class("CategoricalHinge", categorical_hinge, "categorical_hinge")
MeanAbsolutePercentageError = _loss_class(
    "MeanAbsolutePercentageError",
    mean_absolute_percentage_error,
    "mean_absolute_percentage_error",
)
MeanSquaredLogarithmicError = _loss_class(
    "MeanSquaredLogarithmicError",
    mean_squared_logarithmic_error,
    "mean_squared_logarithmic_error",
)
CategoricalFocalCrossentropy = _loss_class(
    "CategoricalFocalCrossentropy",
    categorical_focal_crossentropy,
    "categorical_focal_crossentropy",
    ("alpha", "gamma", "from_logits", "label_smoothing", "axis"),
)
BinaryFocalCrossentropy = _loss_class(
    "BinaryFocalCrossentropy",
    binary_focal_crossentropy,
    "binary_focal_crossentropy",
    ("apply_class_balancing", "alpha", "gamma", "from_logits", "label_smoothing", "axis"),
)

Dice = _loss_class("Dice", dice, "dice", ("axis",))
Tversky = _loss_class("Tversky", tversky, "tversky", ("alpha", "beta", "axis"))


class CategoricalGeneralizedCrossEntropy(_FunctionOf):
    """Keras's generalized cross-entropy loss (robust to noisy labels), ``q`` in (0, 1)."""

    function = staticmethod(categorical_generalized_cross_entropy)
    arguments = ("q",)
    default_name = "categorical_generalized_cross_entropy"

    def __init__(self, q: float = 0.5, **kwargs: Any) -> None:
        if not 0 < q < 1:
            raise ValueError("q must be in the interval (0, 1)")
        super().__init__(q=q, **kwargs)


kld = kl_divergence
mape = mean_absolute_percentage_error
msle = mean_squared_logarithmic_error
