"""Keras's ``FBetaScore`` and ``F1Score``: counts per class (f32 vectors the runtime
sums), the score computed from the sums in float32 with Keras's formulas
(``keras/src/metrics/f_score_metrics.py``)."""

from __future__ import annotations

from typing import Any

import numpy as np

from kcompile.backend.keras_tensor import keras_shape
from kcompile.ir import Value
from kcompile.ir import build as B
from kcompile.metrics.metric import Metric, _f

EPSILON = 1e-7  # keras.config.epsilon()


class FBetaScore(Metric):
    """Keras's F-beta score from counts per class (``average``: None for one score per
    class, "micro" over all elements, "macro" their mean, "weighted" by support)."""

    stat_names = ("tp", "fp", "fn", "support")
    default_name = "fbeta_score"

    def __init__(
        self,
        average: str | None = None,
        beta: float = 1.0,
        threshold: float | None = None,
        name: str = "fbeta_score",
        dtype: Any = None,
    ) -> None:
        if average not in (None, "micro", "macro", "weighted"):
            raise ValueError(
                "Invalid `average` argument value. Expected one of: "
                f"{{None, 'micro', 'macro', 'weighted'}}. Received: average={average}"
            )
        if not isinstance(beta, float):
            raise ValueError(
                "Invalid `beta` argument value. It should be a Python float. "
                f"Received: beta={beta} of type '{type(beta)}'"
            )
        if beta <= 0.0:
            raise ValueError(
                f"Invalid `beta` argument value. It should be > 0. Received: beta={beta}"
            )
        if threshold is not None:
            if not isinstance(threshold, float):
                raise ValueError(
                    "Invalid `threshold` argument value. It should be a Python float. "
                    f"Received: threshold={threshold} of type '{type(threshold)}'"
                )
            if threshold > 1.0 or threshold <= 0.0:
                raise ValueError(
                    "Invalid `threshold` argument value. It should verify 0 < threshold <= 1. "
                    f"Received: threshold={threshold}"
                )
        self.average, self.beta, self.threshold = average, beta, threshold
        super().__init__(name, dtype)

    def stats(self, y_true: Value, y_pred: Value, sample_weight: Value | None = None):
        if y_pred.rank != 2 or y_true.rank != 2:
            raise ValueError(
                f"metric {self.name}: FBetaScore expects 2D inputs with shape "
                "(batch_size, output_dim). Received input shapes: "
                f"y_pred.shape={keras_shape(y_pred.shape)} and "
                f"y_true.shape={keras_shape(y_true.shape)}."
            )
        p, t = _f(y_pred), _f(y_true)
        if self.threshold is None:
            top = B.reduce_max(p, -1, keepdims=True)
            p = _f(B.logical_and(B.ge(p, top), B.gt(B.abs(p), 1e-9)))
        else:
            p = _f(B.gt(p, self.threshold))
        w = 1.0
        if sample_weight is not None:  # one weight per sample, as Keras's expand_dims(w, 1)
            w = _f(sample_weight)
            w = B.reshape(w, (*w.shape, 1)) if w.rank == 1 else w
        axes = (0, 1) if self.average == "micro" else (0,)

        def total(v: Value) -> Value:
            return B.reduce_sum(B.broadcast_to(v * w, p.shape), axes)

        return {
            "tp": total(p * t),
            "fp": total(p * (1.0 - t)),
            "fn": total((1.0 - p) * t),
            "support": total(t),
        }

    def ratio(self):
        return None

    def result_from(self, acc: dict[str, Any]) -> float | np.ndarray:
        tp, fp, fn, support = (np.asarray(acc.get(s, 0.0), np.float32) for s in self.stat_names)
        eps = np.float32(EPSILON)
        precision = tp / (tp + fp + eps)
        recall = tp / (tp + fn + eps)
        beta2 = np.float32(self.beta**2)
        score = (precision * recall) / (beta2 * precision + recall + eps) * (1 + beta2)
        if self.average == "weighted":
            return float(np.sum(score * (support / (np.sum(support) + eps)), dtype=np.float32))
        if self.average is not None:
            return float(np.mean(score, dtype=np.float32))
        return score.astype(np.float32)

    def get_config(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "dtype": self.dtype,
            "average": self.average,
            "beta": self.beta,
            "threshold": self.threshold,
        }


class F1Score(FBetaScore):
    default_name = "f1_score"

    def __init__(
        self,
        average: str | None = None,
        threshold: float | None = None,
        name: str = "f1_score",
        dtype: Any = None,
    ) -> None:
        super().__init__(average=average, beta=1.0, threshold=threshold, name=name, dtype=dtype)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        del config["beta"]
        return config
