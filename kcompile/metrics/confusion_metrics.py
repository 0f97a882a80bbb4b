"""Keras's confusion metrics: ``Precision`` and ``Recall`` at one threshold, the counts
``TruePositives`` ... ``FalseNegatives``, ``AUC`` (a confusion count per threshold,
a vector), and the rates at a constraint (``PrecisionAtRecall``, ...) from the same
counts.

Scalar counts are sums the runtime accumulates. AUC's counts are f32 vectors, which the
epoch loop records column by column and the runtime sums; its result is computed from
the sums in float32 with Keras's formulas (``keras/src/metrics/confusion_metrics.py``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from kcompile.backend import session as backend
from kcompile.backend.keras_tensor import keras_shape
from kcompile.ir import DType, Value
from kcompile.ir import build as B
from kcompile.losses.loss import squeeze_or_expand_to_same_rank
from kcompile.metrics.metric import Metric, _element_weights, _f

EPSILON = 1e-7  # keras.config.epsilon()
CURVES = {"roc": "ROC", "pr": "PR", "prgain": "PRGAIN"}
SUMMATIONS = ("interpolation", "majoring", "minoring")


def _divide_no_nan(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.divide(a, b)
    return np.where(b == 0, np.float32(0), out).astype(np.float32)


class _Confusion(Metric):
    """Precision and recall at one threshold; elements are binary decisions."""

    def __init__(
        self,
        thresholds: float | None = None,
        top_k: int | None = None,
        class_id: int | None = None,
        name: str | None = None,
        **kwargs: Any,
    ) -> None:
        if top_k is not None or class_id is not None:
            raise NotImplementedError(
                f"{type(self).__name__}: top_k and class_id are not supported yet"
            )
        if isinstance(thresholds, list | tuple):
            raise NotImplementedError(f"{type(self).__name__}: one threshold only")
        self.threshold = 0.5 if thresholds is None else float(thresholds)
        super().__init__(name, **kwargs)

    def stats(self, y_true, y_pred, sample_weight=None):
        t, p = squeeze_or_expand_to_same_rank(_f(y_true), y_pred)
        if t.shape != p.shape:
            raise ValueError(
                f"metric {self.name}: labels of shape {keras_shape(y_true.shape)} do "
                f"not match predictions of shape {keras_shape(y_pred.shape)}"
            )
        pred_pos = _f(B.gt(p, self.threshold))
        true_pos = _f(B.ne(t, 0.0))
        w = _element_weights(sample_weight, p)
        tp = B.reduce_sum(pred_pos * true_pos * w)
        return {"tp": tp, self.other: B.reduce_sum(self.other_mask(pred_pos, true_pos) * w)}

    def ratio(self):
        return ("tp", ("tp", self.other))


class Precision(_Confusion):
    stat_names = ("tp", "fp")
    default_name = "precision"
    other = "fp"

    @staticmethod
    def other_mask(pred_pos, true_pos):
        return pred_pos * (1.0 - true_pos)


class Recall(_Confusion):
    stat_names = ("tp", "fn")
    default_name = "recall"
    other = "fn"

    @staticmethod
    def other_mask(pred_pos, true_pos):
        return (1.0 - pred_pos) * true_pos


class _Count(_Confusion):
    """A count of binary decisions at the threshold (Keras's TruePositives, ...)."""

    def stats(self, y_true, y_pred, sample_weight=None):
        t, p = squeeze_or_expand_to_same_rank(_f(y_true), y_pred)
        pred_pos = _f(B.gt(p, self.threshold))
        true_pos = _f(B.ne(t, 0.0))
        w = _element_weights(sample_weight, p)
        return {self.stat: B.reduce_sum(self.mask(pred_pos, true_pos) * w)}

    def ratio(self):
        return (self.stat, ())


def _count_class(name: str, stat: str, mask, direction: str):
    return type(
        name,
        (_Count,),
        {
            "stat_names": (stat,),
            "stat": stat,
            "default_name": backend.snake_case(name),
            "direction": direction,
            "mask": staticmethod(mask),
            "__doc__": f"Keras's {name}: a count over the elements seen.",
        },
    )


TruePositives = _count_class("TruePositives", "tp", lambda p, t: p * t, "up")
FalsePositives = _count_class("FalsePositives", "fp", lambda p, t: p * (1.0 - t), "down")
TrueNegatives = _count_class("TrueNegatives", "tn", lambda p, t: (1.0 - p) * (1.0 - t), "up")
FalseNegatives = _count_class("FalseNegatives", "fn", lambda p, t: (1.0 - p) * t, "down")


class AUC(Metric):
    """The area under the ROC (or precision-recall) curve, from confusion counts at
    ``num_thresholds`` thresholds, as Keras approximates it."""

    stat_names = ("tp", "fp", "tn", "fn")
    default_name = "auc"

    def __init__(
        self,
        num_thresholds: int = 200,
        curve: str = "ROC",
        summation_method: str = "interpolation",
        name: str | None = None,
        dtype: Any = None,
        thresholds: list[float] | None = None,
        multi_label: bool = False,
        num_labels: int | None = None,
        label_weights: Any = None,
        from_logits: bool = False,
    ) -> None:
        if str(curve).lower() not in CURVES:
            raise ValueError(
                f'Invalid AUC curve value: "{curve}". Expected values are ["PR", "ROC", "PRGAIN"]'
            )
        if str(summation_method).lower() not in SUMMATIONS:
            raise ValueError(
                f'Invalid AUC summation method value: "{summation_method}". '
                'Expected values are ["interpolation", "majoring", "minoring"]'
            )
        self._init_from_thresholds = thresholds is not None
        if thresholds is not None:
            inner = sorted(float(t) for t in thresholds)
            if any(t < 0 or t > 1 for t in inner):
                raise ValueError(f"Threshold values must be in [0, 1]. Received: {thresholds}")
            self.num_thresholds = len(inner) + 2
            self._evenly = _evenly_distributed(np.array([0.0, *inner, 1.0]))
        else:
            if num_thresholds <= 1:
                raise ValueError(
                    "Argument `num_thresholds` must be an integer > 1. "
                    f"Received: num_thresholds={num_thresholds}"
                )
            self.num_thresholds = int(num_thresholds)
            inner = [(i + 1) * 1.0 / (num_thresholds - 1) for i in range(num_thresholds - 2)]
            self._evenly = True
        self._thresholds = np.array([0.0 - EPSILON, *inner, 1.0 + EPSILON])
        if num_labels and not multi_label:
            raise ValueError("`num_labels` is needed only when `multi_label` is True.")
        self.curve = CURVES[str(curve).lower()]
        self.summation_method = str(summation_method).lower()
        self.multi_label = bool(multi_label)
        self.num_labels = num_labels
        self.label_weights = (
            None if label_weights is None else np.asarray(label_weights, np.float32)
        )
        self._from_logits = bool(from_logits)
        super().__init__(name, dtype)

    @property
    def thresholds(self) -> list[float]:
        return list(self._thresholds)

    def stats(self, y_true: Value, y_pred: Value, sample_weight: Value | None = None):
        p, t = squeeze_or_expand_to_same_rank(_f(y_pred), _f(y_true))
        if t.shape != p.shape:
            raise ValueError(
                f"metric {self.name}: labels of shape {keras_shape(y_true.shape)} do not "
                f"match predictions of shape {keras_shape(y_pred.shape)}"
            )
        if self.multi_label and p.rank != 2:
            raise ValueError(
                f"metric {self.name}: `y_pred` must have rank 2 when `multi_label=True`. "
                f"Found rank {p.rank}. Full shape received for `y_pred`: "
                f"{keras_shape(p.shape)}"
            )
        if self._from_logits:
            p = B.logistic(p)
        t = _f(B.ne(t, 0.0))
        w = _element_weights(sample_weight, p)
        if self.label_weights is not None and not self.multi_label:
            w = w * B.const_array(
                p.graph, self.label_weights.ravel().tolist(), DType.f32, self.label_weights.shape
            )
        true_w, false_w = t * w, (1.0 - t) * w
        if self._evenly:
            # Keras's bucket formula: an element counts at threshold i >= 1 when
            # ceil(p (T - 1)) - 1 >= i, that is p (T - 1) > i; every element counts at 0.
            x = B.minimum(B.maximum(p, 0.0), 1.0) * float(self.num_thresholds - 1)
            cut = [-1.0, *range(1, self.num_thresholds)]
        else:
            x, cut = p, [float(np.float32(c)) for c in self._thresholds]
        cuts = B.const_array(p.graph, cut, DType.f32, (self.num_thresholds,))
        above = _f(B.gt(B.reshape(x, (*x.shape, 1)), cuts))  # [..., T]
        keep = (0,) if self.multi_label else tuple(range(p.rank))

        def count(weights: Value) -> Value:
            weights = B.broadcast_to(weights, p.shape)
            return B.reduce_sum(above * B.reshape(weights, (*p.shape, 1)), keep)

        tp, fp = count(true_w), count(false_w)
        total_true = B.reduce_sum(B.broadcast_to(true_w, p.shape), keep)
        total_false = B.reduce_sum(B.broadcast_to(false_w, p.shape), keep)
        if self.multi_label:  # [labels, T] against each label's totals
            total_true = B.reshape(total_true, (*total_true.shape, 1))
            total_false = B.reshape(total_false, (*total_false.shape, 1))
        return {"tp": tp, "fp": fp, "tn": total_false - fp, "fn": total_true - tp}

    def ratio(self):
        return None

    def result_from(self, acc: dict[str, Any]) -> float:
        # Counts are [T] (or [labels, T]); Keras keeps them [T] (or [T, labels]).
        tp, fp, tn, fn = (
            self._counts(np.asarray(acc.get(s, 0.0), np.float32)) for s in self.stat_names
        )
        if self.curve == "PR" and self.summation_method == "interpolation":
            by_label = self._interpolate_pr_auc(tp, fp, fn)
        else:
            by_label = self._riemann_sum(tp, fp, tn, fn)
        return self._over_labels(by_label)

    def _counts(self, summed: np.ndarray) -> np.ndarray:
        if summed.ndim == 0:  # nothing seen since reset_state: zero counts
            summed = np.full((self.num_labels or 1) * self.num_thresholds, summed)
        return summed.reshape(self._count_shape()).T

    def _count_shape(self) -> tuple[int, ...]:
        if not self.multi_label:
            return (self.num_thresholds,)
        return (-1, self.num_thresholds)

    def _riemann_sum(self, tp, fp, tn, fn) -> np.ndarray:
        n = self.num_thresholds
        recall = _divide_no_nan(tp, tp + fn)
        if self.curve == "ROC":
            x, y = _divide_no_nan(fp, fp + tn), recall
        elif self.curve == "PR":
            x, y = recall, _divide_no_nan(tp, tp + fp)
        else:  # PRGAIN
            scale = _divide_no_nan(tp + fn, tn + fp)
            recall_gain = np.float32(1) - scale * _divide_no_nan(fn, tp)
            precision_gain = np.float32(1) - scale * _divide_no_nan(fp, tp)
            x = np.maximum(np.where(tp == 0, np.float32(0), recall_gain), np.float32(0))
            y = np.where(tp == 0, np.float32(1), precision_gain)
        if self.summation_method == "interpolation":
            heights = (y[: n - 1] + y[1:]) / np.float32(2)
        elif self.summation_method == "minoring":
            heights = np.minimum(y[: n - 1], y[1:])
        else:
            heights = np.maximum(y[: n - 1], y[1:])
        return ((x[: n - 1] - x[1:]) * heights).sum(axis=0, dtype=np.float32)

    def _interpolate_pr_auc(self, tp, fp, fn) -> np.ndarray:
        n = self.num_thresholds
        dtp = tp[: n - 1] - tp[1:]
        p = tp + fp
        dp = p[: n - 1] - p[1:]
        slope = _divide_no_nan(dtp, np.maximum(dp, np.float32(0)))
        intercept = tp[1:] - slope * p[1:]
        both = (p[: n - 1] > 0) & (p[1:] > 0)
        ratio = np.where(
            both, _divide_no_nan(p[: n - 1], np.maximum(p[1:], np.float32(0))), np.float32(1)
        )
        with np.errstate(divide="ignore"):
            log_ratio = np.log(ratio).astype(np.float32)
        increment = _divide_no_nan(
            slope * (dtp + intercept * log_ratio), np.maximum(tp[1:] + fn[1:], np.float32(0))
        )
        return increment.sum(axis=0, dtype=np.float32)

    def _over_labels(self, by_label: np.ndarray) -> float:
        if not self.multi_label:
            return float(np.float32(by_label))
        if self.label_weights is None:
            return float(np.mean(by_label, dtype=np.float32))
        weights = self.label_weights.astype(np.float32)
        return float(_divide_no_nan(np.sum(by_label * weights), np.sum(weights)))

    def get_config(self) -> dict[str, Any]:
        config = {
            "name": self.name,
            "dtype": self.dtype,
            "num_thresholds": self.num_thresholds,
            "curve": self.curve,
            "summation_method": self.summation_method,
            "multi_label": self.multi_label,
            "num_labels": self.num_labels,
            "label_weights": None if self.label_weights is None else self.label_weights.tolist(),
            "from_logits": self._from_logits,
        }
        if self._init_from_thresholds:
            config["thresholds"] = self.thresholds[1:-1]
        return config


def _evenly_distributed(thresholds: np.ndarray) -> bool:
    """Keras's test: at least three thresholds, equally spaced."""
    if len(thresholds) < 3:
        return False
    step = 1.0 / (len(thresholds) - 1)
    expected = np.arange(len(thresholds), dtype=np.float32) * step
    return bool(np.allclose(expected, thresholds, atol=1e-7))


class _AtConstraint(Metric):
    """Keras's SensitivitySpecificityBase: confusion counts at ``num_thresholds``
    thresholds (AUC's statistics), then the best value of one rate among the thresholds
    where another rate meets ``value``."""

    stat_names = ("tp", "fp", "tn", "fn")
    value_name = "value"

    def __init__(
        self,
        value: float,
        num_thresholds: int = 200,
        class_id: int | None = None,
        name: str | None = None,
        dtype: Any = None,
    ) -> None:
        if value < 0 or value > 1:
            raise ValueError(
                f"Argument `{self.value_name}` must be in the range [0, 1]. "
                f"Received: {self.value_name}={value}"
            )
        if num_thresholds <= 0:
            raise ValueError(
                "Argument `num_thresholds` must be an integer > 0. "
                f"Received: num_thresholds={num_thresholds}"
            )
        if class_id is not None:
            raise NotImplementedError(f"{type(self).__name__}: class_id is not supported yet")
        self.value, self.num_thresholds, self.class_id = float(value), num_thresholds, class_id
        if num_thresholds == 1:
            self._thresholds, self._evenly = np.array([0.5]), False
        else:
            inner = [(i + 1) * 1.0 / (num_thresholds - 1) for i in range(num_thresholds - 2)]
            self._thresholds, self._evenly = np.array([0.0, *inner, 1.0]), True
        self.multi_label, self.label_weights, self._from_logits = False, None, False
        super().__init__(name or backend.snake_case(type(self).__name__), dtype)

    stats = AUC.stats

    @property
    def thresholds(self) -> list[float]:
        return list(self._thresholds)

    def ratio(self):
        return None

    def result_from(self, acc: dict[str, Any]) -> float:
        tp, fp, tn, fn = (
            np.broadcast_to(np.asarray(acc.get(s, 0.0), np.float32), (self.num_thresholds,))
            for s in self.stat_names
        )
        rates = {
            "sensitivity": _divide_no_nan(tp, tp + fn),
            "specificity": _divide_no_nan(tn, tn + fp),
            "precision": _divide_no_nan(tp, tp + fp),
        }
        rates["recall"] = rates["sensitivity"]
        feasible = rates[self.value_name] >= np.float32(self.value)
        return float(np.max(np.where(feasible, rates[self.result_rate], np.float32(0)), initial=0))

    def get_config(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "dtype": self.dtype,
            "class_id": self.class_id,
            "num_thresholds": self.num_thresholds,
            self.value_name: self.value,
        }


class SensitivityAtSpecificity(_AtConstraint):
    """Keras's: the best sensitivity where specificity >= ``specificity``."""

    result_rate, value_name = "sensitivity", "specificity"

    def __init__(self, specificity, num_thresholds=200, class_id=None, name=None, dtype=None):
        super().__init__(specificity, num_thresholds, class_id, name, dtype)


class SpecificityAtSensitivity(_AtConstraint):
    """Keras's: the best specificity where sensitivity >= ``sensitivity``."""

    result_rate, value_name = "specificity", "sensitivity"

    def __init__(self, sensitivity, num_thresholds=200, class_id=None, name=None, dtype=None):
        super().__init__(sensitivity, num_thresholds, class_id, name, dtype)


class PrecisionAtRecall(_AtConstraint):
    """Keras's: the best precision where recall >= ``recall``."""

    result_rate, value_name = "precision", "recall"

    def __init__(self, recall, num_thresholds=200, class_id=None, name=None, dtype=None):
        super().__init__(recall, num_thresholds, class_id, name, dtype)


class RecallAtPrecision(_AtConstraint):
    """Keras's: the best recall where precision >= ``precision``."""

    result_rate, value_name = "recall", "precision"

    def __init__(self, precision, num_thresholds=200, class_id=None, name=None, dtype=None):
        super().__init__(precision, num_thresholds, class_id, name, dtype)
