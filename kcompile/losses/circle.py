"""Keras's Circle loss (Sun et al., 2020) for metric learning: ``circle`` and ``Circle``
(``keras/src/losses/losses.py``), on concrete arrays.

The loss compares every embedding of a batch with every other: a [batch, batch] matrix
of cosine distances, reduced along its second axis. kcompile's compiled steps have one
symbolic axis, the leading batch, and cannot reduce along a second one, so the loss is
not traced into a train step: calling it on arrays (or Python lists) computes Keras's
numbers, and using it in ``compile`` or inside a traced step raises
``NotImplementedError`` saying so.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from kcompile.backend.keras_tensor import KerasTensor
from kcompile.backend.symbolic import TracedTensor
from kcompile.losses.loss import Loss

_WHY = (
    "it compares every sample of the batch with every other ([batch, batch] distances "
    "reduced along the second batch axis), and kcompile's compiled steps have a single "
    "symbolic batch axis; call it on concrete arrays"
)


def _refuse(name: str) -> NotImplementedError:
    return NotImplementedError(f"keras.losses.{name} inside a compiled step: {_WHY}")


def _logsumexp(x: np.ndarray, axis: int) -> np.ndarray:
    top = np.max(x, axis=axis, keepdims=True)
    top = np.where(np.isfinite(top), top, 0.0)
    with np.errstate(divide="ignore"):
        return np.log(np.sum(np.exp(x - top), axis=axis)) + np.squeeze(top, axis)


def circle(
    y_true: Any,
    y_pred: Any,
    ref_labels: Any = None,
    ref_embeddings: Any = None,
    remove_diagonal: bool = True,
    gamma: float = 80.0,
    margin: float = 0.4,
) -> np.ndarray:
    """Keras's per-sample circle loss of integer labels ``y_true`` [batch] and
    L2-normalized embeddings ``y_pred`` [batch, dim] against ``ref_embeddings`` with
    ``ref_labels`` (by default the batch itself, its pairs with itself left out when
    ``remove_diagonal``)."""
    values = (y_true, y_pred, ref_labels, ref_embeddings)
    if any(isinstance(v, TracedTensor | KerasTensor) for v in values):
        raise _refuse("circle")
    pred = np.asarray(getattr(y_pred, "value", y_pred), np.float32)
    labels = np.asarray(y_true).astype(np.int32)
    refs = pred if ref_embeddings is None else np.asarray(ref_embeddings, np.float32)
    ref = labels if ref_labels is None else np.asarray(ref_labels).astype(np.int32)
    distances = np.maximum(1.0 - pred @ refs.T, 0.0)
    positive = labels.reshape(-1, 1) == ref.reshape(-1, 1).T
    negative = ~positive
    if remove_diagonal:
        positive &= ~np.eye(labels.size, ref.size, dtype=bool)
    pos_weights = np.maximum((margin + distances) * positive, 0.0)
    neg_weights = np.maximum((1.0 + margin - distances) * negative, 0.0)
    pos = -gamma * pos_weights * (margin - distances)
    neg = gamma * neg_weights * ((1.0 - margin) - distances)
    p_loss = _logsumexp(np.where(positive, pos, -np.inf), axis=1)
    n_loss = _logsumexp(np.where(negative, neg, -np.inf), axis=1)
    total = p_loss + n_loss
    return np.logaddexp(0.0, total).astype(np.float32)  # softplus, -inf -> 0


class Circle(Loss):
    """Keras's ``Circle`` loss: ``circle`` per sample, reduced over the samples whose
    loss is positive (Keras masks the zeros, so a mean counts only those)."""

    default_name = "circle"

    def __init__(
        self,
        gamma: float = 80.0,
        margin: float = 0.4,
        remove_diagonal: bool = True,
        reduction: str = "sum_over_batch_size",
        name: str = "circle",
        dtype: Any = None,
    ) -> None:
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.gamma, self.margin, self.remove_diagonal = gamma, margin, remove_diagonal

    def ir(self, y_true, y_pred, sample_weight=None, mask=None):
        raise _refuse("Circle")

    def per_sample(self, y_true, y_pred):
        raise _refuse("Circle")

    def __call__(self, y_true, y_pred, sample_weight=None) -> Any:
        values = circle(y_true, y_pred, remove_diagonal=self.remove_diagonal,
                        gamma=self.gamma, margin=self.margin)  # fmt: skip
        weights = (values > 0).astype(np.float32)  # Keras's mask, as apply_mask weighs it
        if self.reduction in ("mean", "sum_over_batch_size"):
            weights *= weights.size / max(float(weights.sum()), 1.0)
        if sample_weight is not None:
            weights = weights * np.broadcast_to(np.asarray(sample_weight, np.float32),
                                                values.shape)  # fmt: skip
        weighted = values * weights
        if self.reduction == "none":
            return weighted
        if self.reduction == "sum":
            return np.float32(weighted.sum())
        return np.float32(weighted.sum() / weighted.size)  # Keras 3.15's "mean" too

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "gamma": self.gamma,
            "margin": self.margin,
            "remove_diagonal": self.remove_diagonal,
        }
