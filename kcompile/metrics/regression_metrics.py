"""Keras's regression metrics: the running mean of an error (squared, absolute,
percentage, squared logarithmic, log-cosh) or of the cosine similarity."""

from __future__ import annotations

from typing import Any

from kcompile import losses
from kcompile.metrics.reduction_metrics import MeanMetricWrapper, _mean_of


class MeanSquaredError(MeanMetricWrapper):
    direction = "down"

    def __init__(self, name: str = "mean_squared_error", **kwargs: Any) -> None:
        super().__init__(losses.MeanSquaredError().per_sample, name, ir=True, **kwargs)


class MeanAbsoluteError(MeanMetricWrapper):
    direction = "down"

    def __init__(self, name: str = "mean_absolute_error", **kwargs: Any) -> None:
        super().__init__(losses.MeanAbsoluteError().per_sample, name, ir=True, **kwargs)


def cosine_similarity(y_true, y_pred, axis=-1):
    """Keras's metric (the cosine itself; the loss is its negative)."""
    return -losses.cosine_similarity(y_true, y_pred, axis=axis)


MeanAbsolutePercentageError = _mean_of(
    "MeanAbsolutePercentageError",
    losses.mean_absolute_percentage_error,
    "mean_absolute_percentage_error",
)
MeanSquaredLogarithmicError = _mean_of(
    "MeanSquaredLogarithmicError",
    losses.mean_squared_logarithmic_error,
    "mean_squared_logarithmic_error",
)
CosineSimilarity = _mean_of(
    "CosineSimilarity", cosine_similarity, "cosine_similarity", "up", axis=-1
)
LogCoshError = _mean_of("LogCoshError", losses.log_cosh, "logcosh")
