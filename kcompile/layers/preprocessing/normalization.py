"""Keras's preprocessing ``Normalization`` (with ``adapt``), in the model."""

from __future__ import annotations

from typing import Any

import numpy as np

from kcompile.ir import DType
from kcompile.ir import build as B
from kcompile.layers.layer import Layer
from kcompile.layers.preprocessing.graph_constant import graph_constant

EPSILON = 1e-7  # keras.config.epsilon()


class Normalization(Layer):
    """Keras's ``Normalization``: ``(x - mean) / max(sqrt(variance), 1e-7)`` per feature of
    ``axis`` (``invert=True`` undoes it), from ``mean``/``variance`` or ``adapt(data)``
    (the data's mean and population variance)."""

    propagates_mask = True

    def __init__(
        self, axis: Any = -1, mean: Any = None, variance: Any = None, invert: bool = False, **kw
    ) -> None:
        super().__init__(**kw)
        self.axis = () if axis is None else (axis,) if isinstance(axis, int) else tuple(axis)
        if (mean is None) != (variance is None):
            raise ValueError(
                f"Normalization '{self.name}': give both mean and variance, or neither"
            )
        self.input_mean, self.input_variance, self.invert = mean, variance, invert

    def _kept(self, rank: int) -> tuple[int, ...]:
        kept = tuple(sorted(a % rank for a in self.axis))
        if 0 in kept:
            raise ValueError(f"Normalization '{self.name}': the batch axis cannot be kept")
        return kept

    def build(self, input_shape):
        rank = len(input_shape)
        kept = self._kept(rank)
        if any(input_shape[a] is None for a in kept):
            raise ValueError(
                f"Normalization '{self.name}': axis {self.axis} of input shape {input_shape} "
                "must have known sizes"
            )
        shape = tuple(input_shape[a] for a in kept)
        self._broadcast = tuple(input_shape[a] if a in kept else 1 for a in range(1, rank))
        if self.input_mean is None:
            self.mean = self.add_weight(shape, "zeros", trainable=False, name="mean")
            self.variance = self.add_weight(shape, "ones", trainable=False, name="variance")
            # Keras 3 keeps it for older files only: adapt leaves it at 0.
            self.count = self.add_weight((), "zeros", trainable=False, name="count")
        else:
            self.mean = np.broadcast_to(np.asarray(self.input_mean, np.float32), shape)
            self.variance = np.broadcast_to(np.asarray(self.input_variance, np.float32), shape)

    def adapt(self, data: Any) -> None:
        """The mean and (population) variance of ``data`` (an array, or an iterable of
        batches) over every axis but ``axis``."""
        batches = [data] if hasattr(data, "shape") else list(data)
        arrays = [np.asarray(b[0] if isinstance(b, tuple) else b, np.float64) for b in batches]
        if not arrays or not arrays[0].size:
            raise ValueError(f"Normalization '{self.name}': adapt() got no data")
        if not self.built:
            self.build((None, *arrays[0].shape[1:]))
            self.built = True
        whole = np.concatenate(arrays)
        reduce = tuple(a for a in range(whole.ndim) if a not in self._kept(whole.ndim))
        self.mean.assign(whole.mean(axis=reduce).astype(np.float32))
        self.variance.assign(whole.var(axis=reduce).astype(np.float32))

    def _keras_saved_values(self) -> dict:
        """``count`` as Keras writes it: an int64 (kcompile's weights are floats)."""
        count = getattr(self, "count", None)
        return {} if count is None else {count: np.asarray(count.numpy(), np.int64)}

    def call(self, ctx, x):
        x = x if x.dtype.is_float else B.cast(x, DType.f32)

        def value(v):
            v = ctx.weight(v) if not isinstance(v, np.ndarray) else graph_constant(x, v)
            return B.reshape(v, (1, *self._broadcast)) if hasattr(v, "graph") else v

        mean, variance = value(self.mean), value(self.variance)
        std = B.maximum(B.sqrt(variance), EPSILON)
        return mean + x * std if self.invert else (x - mean) / std

    def get_config(self):
        return {
            **super().get_config(),
            "axis": self.axis,
            "invert": self.invert,
            "mean": None if self.input_mean is None else np.asarray(self.input_mean).tolist(),
            "variance": None
            if self.input_variance is None
            else np.asarray(self.input_variance).tolist(),
        }
