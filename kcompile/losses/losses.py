"""Keras's losses written as IR (mean squared and absolute error, the cross-entropies),
their functional forms, and ``FunctionLoss`` around a user's function.

Cross-entropies on probabilities clip to [1e-7, 1 - 1e-7] as Keras does. When
the prediction comes straight from a softmax or sigmoid activation, the loss
is computed from that activation's logits instead: this is what Keras's
default (TensorFlow) backend does, through ``_keras_logits``, and it is also
the numerically stable form.
"""

from __future__ import annotations

from typing import Any

from kcompile import activations
from kcompile.backend import session as backend
from kcompile.backend.keras_tensor import keras_shape
from kcompile.ir import DType, TensorType, Value
from kcompile.ir import build as B
from kcompile.losses.loss import Loss, _float, squeeze_or_expand_to_same_rank, traced_call


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
            # Keras's (JAX backend) form, as in categorical_crossentropy: normalize the
            # probabilities, clip, take the log.
            eps = backend.epsilon()
            q = x / B.reduce_sum(x, -1, keepdims=True)
            return -B.reduce_sum(onehot * B.log(B.minimum(B.maximum(q, eps), 1.0 - eps)), -1)
        return -B.reduce_sum(onehot * activations.log_softmax(x), -1)


def _per_sample_function(cls: type[Loss]):
    """Keras's functional form: ``keras.losses.mse(y_true, y_pred)`` -> per-sample losses."""

    def fn(y_true, y_pred, axis=-1, **options):
        if axis != -1:
            raise NotImplementedError(f"keras.losses.{cls.default_name}: axis=-1 only")
        return cls(reduction="none", **options)(y_true, y_pred)

    fn.__name__ = cls.default_name
    fn.loss_class = cls
    return fn


mean_squared_error = mse = _per_sample_function(MeanSquaredError)
mean_absolute_error = mae = _per_sample_function(MeanAbsoluteError)
binary_crossentropy = _per_sample_function(BinaryCrossentropy)
categorical_crossentropy = _per_sample_function(CategoricalCrossentropy)
sparse_categorical_crossentropy = _per_sample_function(SparseCategoricalCrossentropy)


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
