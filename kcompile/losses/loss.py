"""Keras's ``Loss`` base: the per-sample loss in IR (or a user's ``call`` traced), then
Keras's reduction over the batch, with sample weights and the prediction's mask; and
the rank alignment of labels and predictions every loss and metric shares.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from kcompile.backend.keras_tensor import keras_shape
from kcompile.backend.symbolic import TracedTensor
from kcompile.ir import BATCH, DType, Graph, Interpreter, TensorType, Value
from kcompile.ir import build as B

REDUCTIONS = ("sum_over_batch_size", "sum", "mean", "mean_with_sample_weight", "none", None)


def squeeze_or_expand_to_same_rank(a: Value, b: Value) -> tuple[Value, Value]:
    """Keras's rank alignment of y_true and y_pred (a trailing 1 is added or dropped)."""
    if a.rank == b.rank + 1 and a.shape[-1] == 1:
        return (a, B.reshape(b, (*b.shape, 1))) if b.rank == 1 else (B.reshape(a, a.shape[:-1]), b)
    if b.rank == a.rank + 1 and b.shape[-1] == 1:
        return (B.reshape(a, (*a.shape, 1)), b) if a.rank == 1 else (a, B.reshape(b, b.shape[:-1]))
    return a, b


class Loss:
    """A loss: ``per_sample`` in IR, then Keras's reduction. A user's subclass defines
    Keras's ``call(y_true, y_pred)`` with ``keras.ops`` instead, which is traced."""

    default_name = "loss"

    def __init__(
        self, name: str | None = None, reduction: str = "sum_over_batch_size", dtype: Any = None
    ) -> None:
        if reduction not in REDUCTIONS:
            raise ValueError(
                "Invalid value for argument `reduction`. Expected one of "
                f"{set(REDUCTIONS)}. Received: reduction={reduction}"
            )
        self.name = name or self.default_name
        self.reduction = reduction

    def per_sample(self, y_true: Value, y_pred: Value) -> Value:
        if type(self).call is Loss.call:
            raise NotImplementedError(
                f"loss {type(self).__name__} defines neither call nor per_sample"
            )
        return traced_call(self.call, y_true, y_pred)

    def call(self, y_true: Any, y_pred: Any) -> Any:
        """Keras's per-sample loss of a user's subclass, written with ``keras.ops``."""
        raise NotImplementedError

    def check_shapes(self, y_true: Value, y_pred: Value) -> None:
        a, b = squeeze_or_expand_to_same_rank(y_true, y_pred)
        if a.shape != b.shape:
            raise ValueError(
                f"loss {self.name}: labels of shape {keras_shape(y_true.shape)} do not "
                f"match predictions of shape {keras_shape(y_pred.shape)}"
            )

    def label_type(self, pred: TensorType) -> TensorType:
        """The labels this loss expects for predictions of type ``pred``."""
        return TensorType(DType.f32, pred.shape)

    def reduce(self, values: Value, sample_weight: Value | None = None) -> Value:
        """Keras's ``reduce_weighted_values``: with sample weights, sum(values · weights)
        over the number of values (``sum_over_batch_size``, ``mean``), or over the weights'
        sum (``mean_with_sample_weight``); a zero divisor gives 0 (``divide_no_nan``).
        ``None``/``"none"``, or a scalar, is left as it is."""
        weights = None if sample_weight is None else _broadcast_weights(sample_weight, values)
        if weights is not None:
            values = values * weights
        if self.reduction in (None, "none") or values.rank == 0:
            return values
        total = B.reduce_sum(values)
        if self.reduction == "sum":
            return total
        if self.reduction == "mean_with_sample_weight" and weights is not None:
            divisor = B.reduce_sum(weights)  # may be 0: Keras's divide_no_nan gives 0
            zero = B.eq(divisor, 0.0)
            return B.select(zero, 0.0, total / B.select(zero, 1.0, divisor))
        return total / B.numel(values)  # a step's batch is never empty

    def ir(
        self,
        y_true: Value,
        y_pred: Value,
        sample_weight: Value | None = None,
        mask: Value | None = None,
    ) -> Value:
        """The loss of a batch; ``mask`` (the prediction's Keras mask) leaves the masked
        values out, as Keras's ``apply_mask`` does."""
        self.check_shapes(y_true, y_pred)
        return self.reduce(
            self.per_sample(y_true, y_pred), apply_mask(sample_weight, mask, self.reduction)
        )

    def __call__(self, y_true, y_pred, sample_weight=None) -> Any:
        """Eager use (``loss_fn(y_true, y_pred, sample_weight=None)`` on arrays or Python
        lists), on the reference interpreter; inside traced code (a custom loss calling a
        built-in one) it adds IR."""
        if any(isinstance(y, TracedTensor) for y in (y_true, y_pred, sample_weight)):
            like = next(y for y in (y_true, y_pred, sample_weight) if isinstance(y, TracedTensor))
            t, p = (_as_traced(y, like) for y in (y_true, y_pred))
            w = None if sample_weight is None else _as_traced(sample_weight, like).value
            return TracedTensor(self.ir(t.value, _float(p.value), w))
        y_true, y_pred = np.asarray(y_true), np.asarray(y_pred, dtype=np.float32)
        g = Graph(self.name)
        t_dtype = DType.i32 if y_true.dtype.kind in "iub" else DType.f32
        t = g.add_input("y_true", TensorType(t_dtype, (BATCH, *y_true.shape[1:])))
        p = g.add_input("y_pred", TensorType(DType.f32, (BATCH, *y_pred.shape[1:])))
        feeds = {"y_true": y_true.astype(t_dtype.numpy), "y_pred": y_pred}
        w = None
        if sample_weight is not None:
            weights = np.asarray(sample_weight, np.float32)
            if weights.ndim == 0:  # one weight for every sample
                weights = np.broadcast_to(weights, y_pred.shape[:1])
            w = g.add_input("sample_weight", TensorType(DType.f32, (BATCH, *weights.shape[1:])))
            feeds["sample_weight"] = weights
        g.set_outputs([("loss", self.ir(t, p, w))])
        return Interpreter(g).run(feeds)["loss"]

    def get_config(self) -> dict[str, Any]:
        return {"name": self.name, "reduction": self.reduction}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Loss:
        """Keras's: the loss ``get_config`` describes."""
        return cls(**config)


def apply_mask(sample_weight: Value | None, mask: Value | None, reduction: str) -> Value | None:
    """Keras's ``apply_mask``: the mask as weights (for a mean, each kept value weighs
    ``count / kept``, so the mean is over the kept values), times the sample weights."""
    if mask is None:
        return sample_weight
    weights = _float(mask)
    if reduction in ("mean", "sum_over_batch_size"):
        kept = B.reduce_sum(weights)
        weights = weights * (B.numel(weights) / B.maximum(kept, 1.0))
    if sample_weight is None:
        return weights
    return _broadcast_weights(sample_weight, weights) * weights


def _broadcast_weights(weights: Value, values: Value) -> Value:
    """Per-sample weights [N] (or [N, 1]) shaped to broadcast against ``values``."""
    weights = B.cast(weights, DType.f32)
    if weights.rank > values.rank and weights.shape[-1] == 1:
        weights = B.reshape(weights, weights.shape[:-1])
    if weights.rank < values.rank:
        weights = B.reshape(weights, (*weights.shape, *[1] * (values.rank - weights.rank)))
    return weights


def _float(y: Value) -> Value:
    return B.cast(y, DType.f32)


def traced_call(fn, *values: Value) -> Value:
    """``fn`` (user code written with ``keras.ops``) on traced tensors of ``values``."""
    out = fn(*(TracedTensor(v) for v in values))
    if isinstance(out, TracedTensor):
        return out.value
    if isinstance(out, Value):
        return out
    raise TypeError(f"{getattr(fn, '__name__', fn)} returned {out!r}, not a tensor")


def _as_traced(y: Any, other: Any) -> TracedTensor:
    if isinstance(y, TracedTensor):
        return y
    from kcompile.ops.core import Builder

    return TracedTensor(Builder(other.value.graph).value(y))
