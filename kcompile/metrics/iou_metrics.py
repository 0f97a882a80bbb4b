"""Keras's IoU metrics: ``IoU``, ``BinaryIoU``, ``MeanIoU``, ``OneHotIoU`` and
``OneHotMeanIoU``. Their state is a confusion matrix (a [classes, classes] statistic the
runtime sums over batches, as AUC's counts are); the result is computed from the summed
matrix with Keras's formula (``keras/src/metrics/iou_metrics.py``).

As in Keras, the default dtype is "int": sample weights are truncated to integers before
they count (pass ``dtype="float32"`` for fractional weights).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from kcompile.backend.keras_tensor import keras_shape
from kcompile.ir import DType, Value
from kcompile.ir import build as B
from kcompile.losses.loss import _broadcast_weights, squeeze_or_expand_to_same_rank
from kcompile.metrics.metric import Metric, _f

EPSILON = 1e-7  # keras.config.epsilon()


class _IoUBase(Metric):
    stat_names = ("total_cm",)

    def __init__(
        self,
        num_classes: int,
        name: str | None = None,
        dtype: Any = None,
        ignore_class: int | None = None,
        sparse_y_true: bool = True,
        sparse_y_pred: bool = True,
        axis: int = -1,
    ) -> None:
        self.num_classes = int(num_classes)
        self.ignore_class = ignore_class
        self.sparse_y_true, self.sparse_y_pred = sparse_y_true, sparse_y_pred
        self.axis = axis
        self._dtype = dtype
        self._int_weights = dtype is None or "int" in str(dtype)
        super().__init__(name or self.default_name, dtype)
        self.dtype = "int32" if self._int_weights else str(dtype)

    def reset_state(self) -> None:
        self._acc = {"total_cm": np.zeros((self.num_classes, self.num_classes))}

    def _classes(self, y_true: Value, y_pred: Value) -> tuple[Value, Value]:
        if not self.sparse_y_true:
            y_true = B.argmax(y_true, self.axis)
        if not self.sparse_y_pred:
            y_pred = B.argmax(y_pred, self.axis)
        return B.cast(y_true, DType.i32), B.cast(y_pred, DType.i32)

    def stats(self, y_true: Value, y_pred: Value, sample_weight: Value | None = None):
        t, p = self._classes(y_true, y_pred)
        t, p = squeeze_or_expand_to_same_rank(t, p)
        if t.shape != p.shape:
            raise ValueError(
                f"metric {self.name}: class ids of shape {keras_shape(t.shape)} (labels) and "
                f"{keras_shape(p.shape)} (predictions) hold different numbers of elements"
            )
        c = self.num_classes
        inside = B.logical_and(
            B.logical_and(B.ge(t, 0), B.lt(t, c)), B.logical_and(B.ge(p, 0), B.lt(p, c))
        )
        if self.ignore_class is not None:
            inside = B.logical_and(inside, B.ne(t, int(self.ignore_class)))
        if sample_weight is None:
            w = B.const(t.graph, 1.0, DType.f32, t.shape)
        else:
            w = B.broadcast_to(_broadcast_weights(sample_weight, t), t.shape)
            if self._int_weights:
                w = _f(B.cast(w, DType.i32))
        w = B.select(inside, w, 0.0)
        zero = B.const(t.graph, 0, DType.i32, t.shape)
        rows = B.one_hot(B.select(inside, t, zero), c)  # [..., C]
        cols = B.one_hot(B.select(inside, p, zero), c)
        rows = rows * B.reshape(w, (*w.shape, 1))
        outer = B.reshape(rows, (*rows.shape, 1)) * B.reshape(cols, (*cols.shape[:-1], 1, c))
        return {"total_cm": B.reduce_sum(outer, tuple(range(t.rank)))}

    def ratio(self):
        return None


class IoU(_IoUBase):
    """Keras's ``IoU``: the mean intersection-over-union of the ``target_class_ids``."""

    default_name = "io_u"

    def __init__(
        self,
        num_classes: int,
        target_class_ids: list[int] | tuple[int, ...],
        name: str | None = None,
        dtype: Any = None,
        ignore_class: int | None = None,
        sparse_y_true: bool = True,
        sparse_y_pred: bool = True,
        axis: int = -1,
    ) -> None:
        super().__init__(num_classes, name, dtype, ignore_class, sparse_y_true, sparse_y_pred, axis)
        if max(target_class_ids) >= num_classes:
            raise ValueError(
                f"Target class id {max(target_class_ids)} is out of range, which is "
                f"[0, {num_classes})."
            )
        self.target_class_ids = list(target_class_ids)

    def result_from(self, acc: dict[str, Any]) -> float:
        c = self.num_classes
        cm = np.asarray(acc.get("total_cm", 0.0), np.float32).reshape(c, c)
        if self._int_weights:
            cm = cm.astype(np.int32)
        true_positives = np.diag(cm).astype(np.float32)
        denominator = (cm.sum(0) + cm.sum(1) - np.diag(cm)).astype(np.float32)
        ids = self.target_class_ids
        true_positives, denominator = true_positives[ids], denominator[ids]
        valid = (denominator > 1e-9).astype(np.float32)
        iou = np.where(valid > 0, true_positives / (denominator + np.float32(EPSILON)), 0.0)
        total = np.sum(iou.astype(np.float32), dtype=np.float32)
        return float(total / (np.sum(valid) + np.float32(EPSILON)))

    def get_config(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "dtype": self.dtype,
            "num_classes": self.num_classes,
            "target_class_ids": self.target_class_ids,
            "ignore_class": self.ignore_class,
            "sparse_y_true": self.sparse_y_true,
            "sparse_y_pred": self.sparse_y_pred,
            "axis": self.axis,
        }


class BinaryIoU(IoU):
    """Keras's ``BinaryIoU``: predictions at or above ``threshold`` are class 1."""

    default_name = "binary_io_u"

    def __init__(
        self,
        target_class_ids: list[int] | tuple[int, ...] = (0, 1),
        threshold: float = 0.5,
        name: str | None = None,
        dtype: Any = None,
    ) -> None:
        super().__init__(2, target_class_ids, name, dtype)
        self.threshold = float(threshold)

    def _classes(self, y_true, y_pred):
        return B.cast(y_true, DType.i32), B.cast(B.ge(_f(y_pred), self.threshold), DType.i32)

    def get_config(self) -> dict[str, Any]:
        return {
            "target_class_ids": self.target_class_ids,
            "threshold": self.threshold,
            "name": self.name,
            "dtype": self.dtype,
        }


class MeanIoU(IoU):
    """Keras's ``MeanIoU``: the IoU averaged over every class."""

    default_name = "mean_io_u"

    def __init__(
        self,
        num_classes: int,
        name: str | None = None,
        dtype: Any = None,
        ignore_class: int | None = None,
        sparse_y_true: bool = True,
        sparse_y_pred: bool = True,
        axis: int = -1,
    ) -> None:
        super().__init__(
            num_classes,
            list(range(num_classes)),
            name,
            dtype,
            ignore_class,
            sparse_y_true,
            sparse_y_pred,
            axis,
        )

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        del config["target_class_ids"]
        return {**config, "dtype": self.dtype}


class OneHotIoU(IoU):
    """Keras's ``OneHotIoU``: one-hot labels (and, by default, scores) as class ids."""

    default_name = "one_hot_io_u"

    def __init__(
        self,
        num_classes: int,
        target_class_ids: list[int] | tuple[int, ...],
        name: str | None = None,
        dtype: Any = None,
        ignore_class: int | None = None,
        sparse_y_pred: bool = False,
        axis: int = -1,
    ) -> None:
        super().__init__(
            num_classes, target_class_ids, name, dtype, ignore_class, False, sparse_y_pred, axis
        )

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        del config["sparse_y_true"]
        return {**config, "dtype": self.dtype}


class OneHotMeanIoU(MeanIoU):
    """Keras's ``OneHotMeanIoU``: MeanIoU of one-hot labels (and, by default, scores)."""

    default_name = "one_hot_mean_io_u"

    def __init__(
        self,
        num_classes: int,
        name: str | None = None,
        dtype: Any = None,
        ignore_class: int | None = None,
        sparse_y_pred: bool = False,
        axis: int = -1,
    ) -> None:
        super().__init__(num_classes, name, dtype, ignore_class, False, sparse_y_pred, axis)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        del config["sparse_y_true"]
        return config
