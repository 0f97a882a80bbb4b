"""Keras's regression metrics: the running mean of an error (squared, absolute,
percentage, squared logarithmic, log-cosh) or of the cosine similarity; the root mean
squared error; the R2 score."""

from __future__ import annotations

from typing import Any

import numpy as np

from kcompile import losses
from kcompile.backend.keras_tensor import keras_shape
from kcompile.ir import Value
from kcompile.ir import build as B
from kcompile.losses.loss import squeeze_or_expand_to_same_rank
from kcompile.metrics.metric import Metric, _f
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


class RootMeanSquaredError(MeanMetricWrapper):
    """Keras's: the square root of the running mean of the squared error."""

    direction = "down"

    def __init__(self, name: str = "root_mean_squared_error", dtype: Any = None) -> None:
        super().__init__(_squared_error, name, dtype, ir=True)

    def ratio(self):
        return None

    def result_from(self, acc: dict[str, float]) -> float:
        count = acc.get("count", 0.0)
        return float(np.sqrt(np.float32(acc["total"] / count if count else 0.0)))


def _squared_error(y_true: Value, y_pred: Value) -> Value:
    t, p = squeeze_or_expand_to_same_rank(_f(y_true), _f(y_pred))
    return B.square(p - t)


R2_AGGREGATIONS = (None, "uniform_average", "variance_weighted_average")


class R2Score(Metric):
    """Keras's ``R2Score``: the coefficient of determination of each output, from sums
    over every sample seen (weighted), then averaged over the outputs as asked."""

    stat_names = ("squared_sum", "sum", "residual", "count", "num_samples")
    default_name = "r2_score"

    def __init__(
        self,
        class_aggregation: str | None = "uniform_average",
        num_regressors: int = 0,
        name: str = "r2_score",
        dtype: Any = None,
    ) -> None:
        if class_aggregation not in R2_AGGREGATIONS:
            raise ValueError(
                "Invalid value for argument `class_aggregation`. Expected one of "
                f"{R2_AGGREGATIONS}. Received: class_aggregation={class_aggregation}"
            )
        if num_regressors < 0:
            raise ValueError(
                "Invalid value for argument `num_regressors`. Expected a value >= 0. "
                f"Received: num_regressors={num_regressors}"
            )
        self.class_aggregation, self.num_regressors = class_aggregation, num_regressors
        super().__init__(name, dtype)

    def stats(self, y_true, y_pred, sample_weight=None):
        t, p = squeeze_or_expand_to_same_rank(_f(y_true), _f(y_pred))
        if t.rank != 2 or p.rank != 2:
            raise ValueError(
                "R2Score expects 2D inputs with shape (batch_size, output_dim). Received "
                f"input shapes: y_pred.shape={keras_shape(p.shape)} and "
                f"y_true.shape={keras_shape(t.shape)}."
            )
        w = B.const(t.graph, 1.0)
        if sample_weight is not None:
            w = _f(sample_weight)
            if w.rank == 1:
                w = B.reshape(w, (*w.shape, 1))
        w = B.broadcast_to(w, t.shape)
        weighted = t * w
        return {
            "squared_sum": B.reduce_sum(t * weighted, 0),
            "sum": B.reduce_sum(weighted, 0),
            "residual": B.reduce_sum(B.square(t - p) * w, 0),
            "count": B.reduce_sum(w, 0),
            "num_samples": B.numel(t),
        }

    def ratio(self):
        return None

    def result_from(self, acc: dict[str, Any]) -> Any:
        f32 = np.float32
        total_sum, count = (np.asarray(acc[k], f32) for k in ("sum", "count"))
        squared_sum, residual = (np.asarray(acc[k], f32) for k in ("squared_sum", "residual"))
        with np.errstate(divide="ignore", invalid="ignore"):
            mean = total_sum / count
            total = squared_sum - total_sum * mean
            raw = f32(1) - residual / total
        raw = np.where(np.isinf(raw), f32(0), raw).astype(f32)
        if self.class_aggregation == "uniform_average":
            score = np.mean(raw, dtype=f32)
        elif self.class_aggregation == "variance_weighted_average":
            score = f32(np.sum(total * raw, dtype=f32) / np.sum(total, dtype=f32))
        else:
            return raw
        n, k = float(acc["num_samples"]), self.num_regressors
        if k != 0 and k < n - 1:  # else Keras warns and keeps the plain score
            score = f32(1) - (f32(1) - score) * f32(n - 1) / f32(n - k - 1)
        return float(score)

    def get_config(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "dtype": self.dtype,
            "class_aggregation": self.class_aggregation,
            "num_regressors": self.num_regressors,
        }
