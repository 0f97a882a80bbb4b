"""Keras's CTC loss: ``keras.losses.ctc`` and ``CTC`` (``keras/src/losses/losses.py``),
``keras.ops.ctc_loss`` over the whole length of the predictions, with the labels'
length the count of non-blank (non-zero) entries of each row."""

from __future__ import annotations

from typing import Any

from kcompile import ops
from kcompile.losses.loss import Loss
from kcompile.ops.ctc import ctc_loss


def ctc(y_true: Any, y_pred: Any) -> Any:
    """The CTC loss per sample of integer labels ``y_true`` [batch, max_length] (0 is
    the blank and pads) and logits ``y_pred`` [batch, time, classes]."""
    if len(ops.shape(y_true)) != 2:
        raise ValueError(
            "Targets `y_true` are expected to be a tensor of shape `(batch_size, max_length)` "
            f"in integer format. Received: y_true.shape={ops.shape(y_true)}"
        )
    if len(ops.shape(y_pred)) != 3:
        raise ValueError(
            "Logits `y_pred` are expected to be a tensor of shape "
            f"`(batch_size, max_length, num_classes)`. Received: y_pred.shape={ops.shape(y_pred)}"
        )
    labels = ops.cast(y_true, "int32")
    steps = tuple(y_pred.shape)[1]
    input_length = ops.zeros_like(labels[:, 0]) + steps
    label_length = ops.sum(ops.cast(ops.not_equal(labels, 0), "int32"), axis=-1)
    return ctc_loss(labels, y_pred, label_length, input_length, mask_index=0)


class CTC(Loss):
    """Keras's ``CTC`` loss class."""

    default_name = "ctc"

    def __init__(
        self, reduction: str = "sum_over_batch_size", name: str = "ctc", dtype: Any = None
    ) -> None:
        super().__init__(name=name, reduction=reduction, dtype=dtype)

    def check_shapes(self, y_true, y_pred) -> None:
        pass  # labels [batch, length] against logits [batch, time, classes]

    def call(self, y_true, y_pred):
        return ctc(y_true, y_pred)
