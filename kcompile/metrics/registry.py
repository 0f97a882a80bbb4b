"""Keras's metrics by name: the names ``keras.metrics.get`` resolves (and the class names
of saved configs), and the metrics whose state is a vector, which artifacts rebuild by
class name."""

from __future__ import annotations

from typing import Any

from kcompile import losses
from kcompile.backend import session as backend
from kcompile.ir import TensorType
from kcompile.metrics.accuracy_metrics import (
    Accuracy,
    BinaryAccuracy,
    CategoricalAccuracy,
    SparseCategoricalAccuracy,
    SparseTopKCategoricalAccuracy,
    TopKCategoricalAccuracy,
)
from kcompile.metrics.confusion_metrics import (
    AUC,
    FalseNegatives,
    FalsePositives,
    Precision,
    Recall,
    TrueNegatives,
    TruePositives,
)
from kcompile.metrics.f_score_metrics import F1Score, FBetaScore
from kcompile.metrics.hinge_metrics import CategoricalHinge, Hinge, SquaredHinge
from kcompile.metrics.metric import Metric
from kcompile.metrics.probabilistic_metrics import KLDivergence, Poisson
from kcompile.metrics.reduction_metrics import MeanMetricWrapper
from kcompile.metrics.regression_metrics import (
    CosineSimilarity,
    LogCoshError,
    MeanAbsoluteError,
    MeanAbsolutePercentageError,
    MeanSquaredError,
    MeanSquaredLogarithmicError,
)

# Metrics whose statistics are vectors (counts per threshold or per class).
VECTOR_METRICS = {cls.__name__: cls for cls in (AUC, FBetaScore, F1Score)}

# Every metric class, by class name, for saved configs ({"class_name": ..., "config": ...}).
_BY_CLASS_NAME = {
    cls.__name__: cls
    for cls in (
        Metric,
        MeanMetricWrapper,
        Accuracy,
        BinaryAccuracy,
        CategoricalAccuracy,
        SparseCategoricalAccuracy,
        TopKCategoricalAccuracy,
        SparseTopKCategoricalAccuracy,
        Precision,
        Recall,
        TruePositives,
        FalsePositives,
        TrueNegatives,
        FalseNegatives,
        MeanSquaredError,
        MeanAbsoluteError,
        MeanAbsolutePercentageError,
        MeanSquaredLogarithmicError,
        CosineSimilarity,
        LogCoshError,
        KLDivergence,
        Poisson,
        Hinge,
        SquaredHinge,
        CategoricalHinge,
        *VECTOR_METRICS.values(),
    )
}

_CLASSES = {
    "binary_accuracy": BinaryAccuracy,
    "categorical_accuracy": CategoricalAccuracy,
    "sparse_categorical_accuracy": SparseCategoricalAccuracy,
    "precision": Precision,
    "recall": Recall,
    "mse": MeanSquaredError,
    "mean_squared_error": MeanSquaredError,
    "mae": MeanAbsoluteError,
    "mean_absolute_error": MeanAbsoluteError,
    "mape": MeanAbsolutePercentageError,
    "mean_absolute_percentage_error": MeanAbsolutePercentageError,
    "msle": MeanSquaredLogarithmicError,
    "mean_squared_logarithmic_error": MeanSquaredLogarithmicError,
    "cosine_similarity": CosineSimilarity,
    "logcosh": LogCoshError,
    "log_cosh_error": LogCoshError,
    "kl_divergence": KLDivergence,
    "kld": KLDivergence,
    "poisson": Poisson,
    "hinge": Hinge,
    "squared_hinge": SquaredHinge,
    "categorical_hinge": CategoricalHinge,
    "top_k_categorical_accuracy": TopKCategoricalAccuracy,
    "sparse_top_k_categorical_accuracy": SparseTopKCategoricalAccuracy,
    "true_positives": TruePositives,
    "false_positives": FalsePositives,
    "true_negatives": TrueNegatives,
    "false_negatives": FalseNegatives,
    "auc": AUC,
    "f1_score": F1Score,
    "fbeta_score": FBetaScore,
}

_LOSS_METRICS = (
    "binary_crossentropy",
    "categorical_crossentropy",
    "sparse_categorical_crossentropy",
)


def get(
    identifier: Any, y_true: TensorType | None = None, y_pred: TensorType | None = None
) -> Metric:
    """Resolve a metric; "accuracy"/"acc" is chosen from the label and prediction shapes."""
    if isinstance(identifier, Metric):
        return identifier
    if isinstance(identifier, type) and issubclass(identifier, Metric):
        return identifier()
    if isinstance(identifier, dict) and "class_name" in identifier:  # a saved config
        cls = _BY_CLASS_NAME.get(identifier["class_name"])
        if cls is None:
            raise ValueError(f"unknown metric class {identifier['class_name']!r}")
        config = {k: v for k, v in identifier.get("config", {}).items() if k != "dtype"}
        return cls(**config)
    if isinstance(identifier, str):
        if identifier.lower() in ("accuracy", "acc"):
            return _resolve_accuracy(identifier, y_true, y_pred)
        key = identifier if identifier in _CLASSES else backend.snake_case(identifier)
        if key in _CLASSES:
            return _CLASSES[key](name=identifier)
        if key in _LOSS_METRICS:
            metric = MeanMetricWrapper(losses.get(key).per_sample, name=identifier, ir=True)
            metric.direction = "down"
            return metric
    elif callable(identifier):
        return MeanMetricWrapper(identifier)
    known = sorted([*_CLASSES, *_LOSS_METRICS, "accuracy", "acc"])
    raise ValueError(f"unknown metric {identifier!r}; known metrics: {', '.join(known)}")


def _resolve_accuracy(name: str, y_true: TensorType | None, y_pred: TensorType | None) -> Metric:
    if y_true is None or y_pred is None:
        raise ValueError(
            f"metric {name!r} is resolved from the label and prediction shapes, "
            "which are not known here"
        )
    is_binary = y_pred.shape[-1] == 1
    is_sparse = y_true.rank < y_pred.rank or (y_true.shape[-1] == 1 and y_pred.shape[-1] != 1)
    if is_binary:
        return BinaryAccuracy(name=name)
    if is_sparse:
        return SparseCategoricalAccuracy(name=name)
    return CategoricalAccuracy(name=name)
