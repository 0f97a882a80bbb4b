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
    PrecisionAtRecall,
    Recall,
    RecallAtPrecision,
    SensitivityAtSpecificity,
    SpecificityAtSensitivity,
    TrueNegatives,
    TruePositives,
)
from kcompile.metrics.correlation_metrics import ConcordanceCorrelation, PearsonCorrelation
from kcompile.metrics.f_score_metrics import F1Score, FBetaScore
from kcompile.metrics.hinge_metrics import CategoricalHinge, Hinge, SquaredHinge
from kcompile.metrics.iou_metrics import BinaryIoU, IoU, MeanIoU, OneHotIoU, OneHotMeanIoU
from kcompile.metrics.metric import Metric
from kcompile.metrics.probabilistic_metrics import (
    BinaryCrossentropy,
    CategoricalCrossentropy,
    KLDivergence,
    Poisson,
    SparseCategoricalCrossentropy,
)
from kcompile.metrics.reduction_metrics import Mean, MeanMetricWrapper, Sum
from kcompile.metrics.regression_metrics import (
    CosineSimilarity,
    LogCoshError,
    MeanAbsoluteError,
    MeanAbsolutePercentageError,
    MeanSquaredError,
    MeanSquaredLogarithmicError,
    R2Score,
    RootMeanSquaredError,
)

# Metrics whose result is computed from their summed statistics by ``result_from``
# (statistics that are vectors: counts per threshold or per class; or a root, a score),
# which artifacts rebuild by class name.
VECTOR_METRICS = {
    cls.__name__: cls
    for cls in (
        AUC,
        FBetaScore,
        F1Score,
        IoU,
        BinaryIoU,
        MeanIoU,
        OneHotIoU,
        OneHotMeanIoU,
        R2Score,
        RootMeanSquaredError,
        PrecisionAtRecall,
        RecallAtPrecision,
        SensitivityAtSpecificity,
        SpecificityAtSensitivity,
    )
}

# Every metric class, by class name, for saved configs ({"class_name": ..., "config": ...}).
_BY_CLASS_NAME = {
    cls.__name__: cls
    for cls in (
        Metric,
        Mean,
        Sum,
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
        BinaryCrossentropy,
        CategoricalCrossentropy,
        SparseCategoricalCrossentropy,
        PearsonCorrelation,
        ConcordanceCorrelation,
        *VECTOR_METRICS.values(),
    )
}

_CLASSES = {
    "mean": Mean,
    "sum": Sum,
    "r2_score": R2Score,
    "root_mean_squared_error": RootMeanSquaredError,
    "pearson_correlation": PearsonCorrelation,
    "concordance_correlation": ConcordanceCorrelation,
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
    if isinstance(identifier, dict):  # a saved config
        return deserialize(identifier)
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


def serialize(metric: Metric) -> dict[str, Any]:
    """Keras's form of a metric: {"module", "class_name", "config", "registered_name"}."""
    if not isinstance(metric, Metric):
        raise ValueError(f"keras.metrics.serialize: expected a Metric, got {metric!r}")
    return {
        "module": "keras.metrics",
        "class_name": type(metric).__name__,
        "config": metric.get_config(),
        "registered_name": None,
    }


def deserialize(config: Any, custom_objects: dict | None = None) -> Metric:
    """A metric from ``serialize``'s form (or a name ``get`` knows)."""
    if isinstance(config, str):
        return get(config)
    if not (isinstance(config, dict) and "class_name" in config):
        raise ValueError(f"keras.metrics.deserialize: expected a config dict, got {config!r}")
    name = config["class_name"]
    cls = (custom_objects or {}).get(name) or _BY_CLASS_NAME.get(name)
    if cls is None or cls is Metric or cls is MeanMetricWrapper:
        raise ValueError(
            f"unknown metric class {name!r}"
            + (" (its function is not in the config)" if cls is MeanMetricWrapper else "")
        )
    options = dict(config.get("config", {}))
    if "dtype" in options and not _takes_dtype(cls):
        del options["dtype"]
    return cls(**options)


def _takes_dtype(cls: type) -> bool:
    import inspect

    parameters = inspect.signature(cls.__init__).parameters
    return "dtype" in parameters or any(p.kind is p.VAR_KEYWORD for p in parameters.values())
