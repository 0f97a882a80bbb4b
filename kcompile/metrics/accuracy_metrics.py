"""Keras's accuracy metrics: exact, binary, categorical, sparse categorical and top-k,
each the running mean of a per-sample function."""

from __future__ import annotations

from typing import Any

from kcompile.ir import Value
from kcompile.ir import build as B
from kcompile.losses.loss import squeeze_or_expand_to_same_rank
from kcompile.metrics.metric import _f
from kcompile.metrics.reduction_metrics import MeanMetricWrapper, _mean_of


def accuracy(y_true: Value, y_pred: Value) -> Value:
    t, p = squeeze_or_expand_to_same_rank(_f(y_true), y_pred)
    return _f(B.eq(t, p))


def binary_accuracy(y_true: Value, y_pred: Value, threshold: float = 0.5) -> Value:
    t, p = squeeze_or_expand_to_same_rank(_f(y_true), y_pred)
    return _f(B.eq(t, _f(B.gt(p, threshold))))


def categorical_accuracy(y_true: Value, y_pred: Value) -> Value:
    return _f(B.eq(B.argmax(y_true, -1), B.argmax(y_pred, -1)))


def sparse_categorical_accuracy(y_true: Value, y_pred: Value) -> Value:
    if y_true.rank == y_pred.rank and y_true.shape[-1] == 1:
        y_true = B.reshape(y_true, y_true.shape[:-1])
    # Keras compares in the prediction's float dtype.
    return _f(B.eq(_f(y_true), _f(B.argmax(y_pred, -1))))


class Accuracy(MeanMetricWrapper):
    def __init__(self, name: str = "accuracy", **kwargs: Any) -> None:
        super().__init__(accuracy, name, ir=True, **kwargs)


class BinaryAccuracy(MeanMetricWrapper):
    def __init__(self, name: str = "binary_accuracy", threshold: float = 0.5, **kwargs: Any):
        self.threshold = threshold
        super().__init__(lambda t, p: binary_accuracy(t, p, threshold), name, ir=True, **kwargs)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "threshold": self.threshold}


class CategoricalAccuracy(MeanMetricWrapper):
    def __init__(self, name: str = "categorical_accuracy", **kwargs: Any) -> None:
        super().__init__(categorical_accuracy, name, ir=True, **kwargs)


class SparseCategoricalAccuracy(MeanMetricWrapper):
    def __init__(self, name: str = "sparse_categorical_accuracy", **kwargs: Any) -> None:
        super().__init__(sparse_categorical_accuracy, name, ir=True, **kwargs)


def top_k_categorical_accuracy(y_true, y_pred, k=5):
    """Whether the true class (one-hot) is among the k highest predictions (ops.in_top_k:
    rank = 1 + the number of strictly higher scores)."""
    from kcompile import ops

    return sparse_top_k_categorical_accuracy(ops.argmax(y_true, axis=-1), y_pred, k)


def sparse_top_k_categorical_accuracy(y_true, y_pred, k=5):
    from kcompile import ops

    labels = ops.cast(y_true, "int32")
    if len(labels.shape) == len(y_pred.shape):
        labels = ops.squeeze(labels, -1)
    at_label = ops.take_along_axis(y_pred, ops.expand_dims(labels, -1), axis=-1)
    rank = 1 + ops.sum(ops.cast(ops.greater(y_pred, at_label), "int32"), axis=-1)
    return ops.cast(ops.less_equal(rank, k), "float32")


TopKCategoricalAccuracy = _mean_of(
    "TopKCategoricalAccuracy", top_k_categorical_accuracy, "top_k_categorical_accuracy", "up", k=5
)
SparseTopKCategoricalAccuracy = _mean_of(
    "SparseTopKCategoricalAccuracy",
    sparse_top_k_categorical_accuracy,
    "sparse_top_k_categorical_accuracy",
    "up",
    k=5,
)
