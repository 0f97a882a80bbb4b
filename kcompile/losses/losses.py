"""Keras losses, written as IR, with Keras's reduction and clipping.

Cross-entropies on probabilities clip to [1e-7, 1 - 1e-7] as Keras does. When
the prediction comes straight from a softmax or sigmoid activation, the loss
is computed from that activation's logits instead: this is what Keras's
default (TensorFlow) backend does, through ``_keras_logits``, and it is also
the numerically stable form.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from kcompile import activations
from kcompile.backend import session as backend
from kcompile.backend.keras_tensor import keras_shape
from kcompile.backend.symbolic import TracedTensor
from kcompile.ir import BATCH, DType, Graph, Interpreter, TensorType, Value
from kcompile.ir import build as B

REDUCTIONS = ("sum_over_batch_size", "sum", "mean", "none")


def squeeze_or_expand_to_same_rank(a: Value, b: Value) -> tuple[Value, Value]:
    """Keras's rank alignment of y_true and y_pred (a trailing 1 is added or dropped)."""
    if a.rank == b.rank + 1 and a.shape[-1] == 1:
        return (a, B.reshape(b, (*b.shape, 1))) if b.rank == 1 else (B.reshape(a, a.shape[:-1]), b)
    if b.rank == a.rank + 1 and b.shape[-1] == 1:
        return (B.reshape(a, (*a.shape, 1)), b) if a.rank == 1 else (a, B.reshape(b, b.shape[:-1]))
    return a, b


class Loss:
    """A loss: ``per_sample`` in IR, then Keras's reduction. A user's subclass defines
    Keras's ``call(y_true, y_pred)`` with ``keras.ops`` instead, which is traced."""

    default_name = "loss"

    def __init__(
        self, name: str | None = None, reduction: str = "sum_over_batch_size", dtype: Any = None
    ) -> None:
        if reduction not in REDUCTIONS:
            raise ValueError(f"unknown reduction {reduction!r}; expected one of {REDUCTIONS}")
        self.name = name or self.default_name
        self.reduction = reduction

    def per_sample(self, y_true: Value, y_pred: Value) -> Value:
        if type(self).call is Loss.call:
            raise NotImplementedError(
                f"loss {type(self).__name__} defines neither call nor per_sample"
            )
        return traced_call(self.call, y_true, y_pred)

    def call(self, y_true: Any, y_pred: Any) -> Any:
        """Keras's per-sample loss of a user's subclass, written with ``keras.ops``."""
        raise NotImplementedError

    def check_shapes(self, y_true: Value, y_pred: Value) -> None:
        a, b = squeeze_or_expand_to_same_rank(y_true, y_pred)
        if a.shape != b.shape:
            raise ValueError(
                f"loss {self.name}: labels of shape {keras_shape(y_true.shape)} do not "
                f"match predictions of shape {keras_shape(y_pred.shape)}"
            )

    def label_type(self, pred: TensorType) -> TensorType:
        """The labels this loss expects for predictions of type ``pred``."""
        return TensorType(DType.f32, pred.shape)

    def reduce(self, values: Value, sample_weight: Value | None = None) -> Value:
        """Keras's reduction; with sample weights, sum(values · weights) over the number
        of values (``sum_over_batch_size``), or over the weights' sum (``mean``)."""
        if sample_weight is not None:
            values = values * _broadcast_weights(sample_weight, values)
        if self.reduction == "none":
            return values
        total = B.reduce_sum(values)
        if self.reduction == "sum":
            return total
        if self.reduction == "mean" and sample_weight is not None:
            weights = B.broadcast_to(_broadcast_weights(sample_weight, values), values.shape)
            return total / B.maximum(B.reduce_sum(weights), 1e-30)
        return total / B.numel(values)

    def ir(
        self,
        y_true: Value,
        y_pred: Value,
        sample_weight: Value | None = None,
        mask: Value | None = None,
    ) -> Value:
        """The loss of a batch; ``mask`` (the prediction's Keras mask) leaves the masked
        values out, as Keras's ``apply_mask`` does."""
        self.check_shapes(y_true, y_pred)
        return self.reduce(
            self.per_sample(y_true, y_pred), apply_mask(sample_weight, mask, self.reduction)
        )

    def __call__(self, y_true, y_pred) -> Any:
        """Eager use (``loss_fn(y_true, y_pred)``), on the reference interpreter; inside
        traced code (a custom loss calling a built-in one) it adds IR."""
        if isinstance(y_true, TracedTensor) or isinstance(y_pred, TracedTensor):
            t, p = (_as_traced(y, y_pred if y is y_true else y_true) for y in (y_true, y_pred))
            return TracedTensor(self.ir(t.value, _float(p.value)))
        y_true, y_pred = np.asarray(y_true), np.asarray(y_pred, dtype=np.float32)
        g = Graph(self.name)
        t_dtype = DType.i32 if y_true.dtype.kind in "iub" else DType.f32
        t = g.add_input("y_true", TensorType(t_dtype, (BATCH, *y_true.shape[1:])))
        p = g.add_input("y_pred", TensorType(DType.f32, (BATCH, *y_pred.shape[1:])))
        g.set_outputs([("loss", self.ir(t, p))])
        out = Interpreter(g).run({"y_true": y_true.astype(t_dtype.numpy), "y_pred": y_pred})
        return out["loss"]

    def get_config(self) -> dict[str, Any]:
        return {"name": self.name, "reduction": self.reduction}


def apply_mask(sample_weight: Value | None, mask: Value | None, reduction: str) -> Value | None:
    """Keras's ``apply_mask``: the mask as weights (for a mean, each kept value weighs
    ``count / kept``, so the mean is over the kept values), times the sample weights."""
    if mask is None:
        return sample_weight
    weights = _float(mask)
    if reduction in ("mean", "sum_over_batch_size"):
        kept = B.reduce_sum(weights)
        weights = weights * (B.numel(weights) / B.maximum(kept, 1.0))
    if sample_weight is None:
        return weights
    return _broadcast_weights(sample_weight, weights) * weights


def _broadcast_weights(weights: Value, values: Value) -> Value:
    """Per-sample weights [N] (or [N, 1]) shaped to broadcast against ``values``."""
    weights = B.cast(weights, DType.f32)
    if weights.rank > values.rank and weights.shape[-1] == 1:
        weights = B.reshape(weights, weights.shape[:-1])
    if weights.rank < values.rank:
        weights = B.reshape(weights, (*weights.shape, *[1] * (values.rank - weights.rank)))
    return weights


def _float(y: Value) -> Value:
    return B.cast(y, DType.f32)


class MeanSquaredError(Loss):
    default_name = "mean_squared_error"

    def per_sample(self, y_true, y_pred):
        t, p = squeeze_or_expand_to_same_rank(_float(y_true), y_pred)
        return B.mean(B.square(p - t), -1)


class MeanAbsoluteError(Loss):
    default_name = "mean_absolute_error"

    def per_sample(self, y_true, y_pred):
        t, p = squeeze_or_expand_to_same_rank(_float(y_true), y_pred)
        return B.mean(B.abs(p - t), -1)


def _logits_of(y_pred: Value, kind: str, from_logits: bool) -> tuple[Value, bool]:
    logits = activations.logits_of(y_pred)
    if not from_logits and logits is not None and logits[0] == kind:
        return logits[1], True
    return y_pred, from_logits


class BinaryCrossentropy(Loss):
    default_name = "binary_crossentropy"

    def __init__(self, from_logits: bool = False, label_smoothing: float = 0.0, **kwargs: Any):
        super().__init__(**kwargs)
        self.from_logits = from_logits
        self.label_smoothing = float(label_smoothing)

    def get_config(self):
        return {
            **super().get_config(),
            "from_logits": self.from_logits,
            "label_smoothing": self.label_smoothing,
        }

    def per_sample(self, y_true, y_pred):
        t, p = squeeze_or_expand_to_same_rank(_float(y_true), y_pred)
        if self.label_smoothing:
            t = t * (1.0 - self.label_smoothing) + 0.5 * self.label_smoothing
        x, logits = _logits_of(p, "sigmoid", self.from_logits)
        if logits:
            # max(x, 0) - x*t + log(1 + exp(-|x|)): tf.nn.sigmoid_cross_entropy_with_logits
            per = B.maximum(x, 0.0) - x * t + B.log1p(B.exp(-B.abs(x)))
        else:
            eps = backend.epsilon()
            q = B.minimum(B.maximum(x, eps), 1.0 - eps)
            per = -(t * B.log(q) + (1.0 - t) * B.log(1.0 - q))
        return B.mean(per, -1)


class CategoricalCrossentropy(Loss):
    default_name = "categorical_crossentropy"

    def __init__(
        self, from_logits: bool = False, label_smoothing: float = 0.0, axis: int = -1, **kwargs: Any
    ):
        super().__init__(**kwargs)
        self.from_logits = from_logits
        self.label_smoothing = float(label_smoothing)
        if axis != -1:
            raise NotImplementedError("categorical cross-entropy supports axis=-1 only")

    def get_config(self):
        return {
            **super().get_config(),
            "from_logits": self.from_logits,
            "label_smoothing": self.label_smoothing,
        }

    def per_sample(self, y_true, y_pred):
        t = _float(y_true)
        if self.label_smoothing:
            t = t * (1.0 - self.label_smoothing) + self.label_smoothing / y_pred.shape[-1]
        x, logits = _logits_of(y_pred, "softmax", self.from_logits)
        if logits:
            return -B.reduce_sum(t * activations.log_softmax(x), -1)
        eps = backend.epsilon()
        q = x / B.reduce_sum(x, -1, keepdims=True)
        q = B.minimum(B.maximum(q, eps), 1.0 - eps)
        return -B.reduce_sum(t * B.log(q), -1)


class SparseCategoricalCrossentropy(Loss):
    default_name = "sparse_categorical_crossentropy"

    def __init__(
        self,
        from_logits: bool = False,
        ignore_class: int | None = None,
        axis: int = -1,
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        self.from_logits = from_logits
        if ignore_class is not None:
            raise NotImplementedError(
                "sparse categorical cross-entropy: ignore_class is not supported yet"
            )
        if axis != -1:
            raise NotImplementedError("sparse categorical cross-entropy supports axis=-1 only")

    def get_config(self):
        return {**super().get_config(), "from_logits": self.from_logits}

    def label_type(self, pred):
        return TensorType(DType.i32, pred.shape[:-1])

    def check_shapes(self, y_true, y_pred):
        labels = (
            y_true.shape[:-1]
            if (y_true.rank == y_pred.rank and y_true.shape[-1] == 1)
            else y_true.shape
        )
        if labels != y_pred.shape[:-1]:
            raise ValueError(
                f"loss {self.name}: expected integer labels of shape "
                f"{keras_shape(y_pred.shape[:-1])} (class indices) for predictions of shape "
                f"{keras_shape(y_pred.shape)}, got labels of shape {keras_shape(y_true.shape)}"
                + (
                    " (one-hot labels need categorical_crossentropy)"
                    if y_true.shape == y_pred.shape
                    else ""
                )
            )

    def per_sample(self, y_true, y_pred):
        if y_true.rank == y_pred.rank and y_true.shape[-1] == 1:
            y_true = B.reshape(y_true, y_true.shape[:-1])
        onehot = B.one_hot(B.cast(y_true, DType.i32), y_pred.shape[-1])
        x, logits = _logits_of(y_pred, "softmax", self.from_logits)
        if not logits:
            # TensorFlow's form: clip, take the log, then a softmax cross-entropy on it,
            # which renormalizes the clipped probabilities.
            eps = backend.epsilon()
            x = B.log(B.minimum(B.maximum(x, eps), 1.0 - eps))
        return -B.reduce_sum(onehot * activations.log_softmax(x), -1)


_ALIASES = {
    "mse": MeanSquaredError,
    "mean_squared_error": MeanSquaredError,
    "mae": MeanAbsoluteError,
    "mean_absolute_error": MeanAbsoluteError,
    "binary_crossentropy": BinaryCrossentropy,
    "bce": BinaryCrossentropy,
    "categorical_crossentropy": CategoricalCrossentropy,
    "cce": CategoricalCrossentropy,
    "sparse_categorical_crossentropy": SparseCategoricalCrossentropy,
}


def _per_sample_function(cls: type[Loss]):
    """Keras's functional form: ``keras.losses.mse(y_true, y_pred)`` -> per-sample losses."""

    def fn(y_true, y_pred):
        return cls(reduction="none")(y_true, y_pred)

    fn.__name__ = cls.default_name
    fn.loss_class = cls
    return fn


mean_squared_error = mse = _per_sample_function(MeanSquaredError)
mean_absolute_error = mae = _per_sample_function(MeanAbsoluteError)
binary_crossentropy = _per_sample_function(BinaryCrossentropy)
categorical_crossentropy = _per_sample_function(CategoricalCrossentropy)
sparse_categorical_crossentropy = _per_sample_function(SparseCategoricalCrossentropy)


def get(identifier: Any) -> Loss:
    if isinstance(identifier, Loss):
        return identifier
    if isinstance(identifier, type) and issubclass(identifier, Loss):
        return identifier()
    if isinstance(identifier, str):
        key = identifier if identifier in _ALIASES else backend.snake_case(identifier)
        if key in _ALIASES:
            return _ALIASES[key]()
    if hasattr(identifier, "loss_class"):
        return identifier.loss_class()
    if callable(identifier):
        return FunctionLoss(identifier)
    raise ValueError(f"unknown loss {identifier!r}; known losses: {', '.join(sorted(_ALIASES))}")


def traced_call(fn, *values: Value) -> Value:
    """``fn`` (user code written with ``keras.ops``) on traced tensors of ``values``."""
    out = fn(*(TracedTensor(v) for v in values))
    if isinstance(out, TracedTensor):
        return out.value
    if isinstance(out, Value):
        return out
    raise TypeError(f"{getattr(fn, '__name__', fn)} returned {out!r}, not a tensor")


def _as_traced(y: Any, other: Any) -> TracedTensor:
    if isinstance(y, TracedTensor):
        return y
    from kcompile.ops.core import Builder

    return TracedTensor(Builder(other.value.graph).value(y))


class FunctionLoss(Loss):
    """A user function ``fn(y_true, y_pred) -> per-sample loss`` written with
    ``keras.ops``, traced into the step."""

    def __init__(self, fn, **kwargs: Any) -> None:
        super().__init__(name=getattr(fn, "__name__", "loss"), **kwargs)
        self.fn = fn

    def check_shapes(self, y_true, y_pred):
        pass

    def per_sample(self, y_true, y_pred):
        return traced_call(self.fn, y_true, y_pred)


# The losses written with keras.ops, and their classes.
from kcompile.losses.ops_losses import (  # noqa: E402
    binary_focal_crossentropy,
    categorical_focal_crossentropy,
    categorical_hinge,
    cosine_similarity,
    hinge,
    huber,
    kl_divergence,
    log_cosh,
    mean_absolute_percentage_error,
    mean_squared_logarithmic_error,
    poisson,
    squared_hinge,
)


class _FunctionOf(Loss):
    """A loss class around one of the functions above, with its keyword arguments."""

    function = staticmethod(huber)
    arguments: tuple[str, ...] = ()

    def __init__(self, reduction: str = "sum_over_batch_size", name: str | None = None, **kw):
        own = {k: kw.pop(k) for k in list(kw) if k in self.arguments}
        super().__init__(name=name, reduction=reduction, **kw)
        self.kwargs = own

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

_MORE_CLASSES = {
    cls.default_name: cls
    for cls in (
        Huber,
        LogCosh,
        KLDivergence,
        Poisson,
        CosineSimilarity,
        Hinge,
        SquaredHinge,
        CategoricalHinge,
        MeanAbsolutePercentageError,
        MeanSquaredLogarithmicError,
        CategoricalFocalCrossentropy,
        BinaryFocalCrossentropy,
    )
}
_ALIASES.update(
    {
        "huber": Huber,
        "logcosh": LogCosh,
        "kld": KLDivergence,
        "kullback_leibler_divergence": KLDivergence,
        "mape": MeanAbsolutePercentageError,
        "msle": MeanSquaredLogarithmicError,
        **_MORE_CLASSES,
    }
)
kld = kl_divergence
mape = mean_absolute_percentage_error
msle = mean_squared_logarithmic_error
