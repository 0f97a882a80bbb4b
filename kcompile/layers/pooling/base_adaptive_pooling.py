"""What the adaptive pooling layers share (Keras's ``BaseAdaptivePooling``): a window
per output position chosen so that the output has ``output_size``, whatever the input's.

Keras's bins (its JAX backend's ``_adaptive_*_pool``, PyTorch's too): along an axis of
length L pooled to n, bin i covers [floor(i*L/n), ceil((i+1)*L/n)). A bin is a box, so
the pooling is separable: one axis at a time, a box's maximum is the maximum of maxima
and its mean the mean of means. Each axis is one reshape and reduction when n divides L
(equal bins that tile it), else a masked reduction of the axis for every bin; the
gradients are the selects' and reductions'."""

from __future__ import annotations

import math
from typing import Any

from kcompile.backend.keras_tensor import keras_shape
from kcompile.ir import DType, Value
from kcompile.ir import build as B
from kcompile.layers.layer import Layer

_NAMES = {1: "an integer or tuple of 1 integer", 2: "an integer or (height, width) tuple"}
_NAMES[3] = "an integer or (depth, height, width) tuple"


def adaptive_bins(length: int, size: int) -> list[tuple[int, int]]:
    """Keras's [start, end) of each of ``size`` bins over ``length``."""
    return [((i * length) // size, -((-(i + 1) * length) // size)) for i in range(size)]


class BaseAdaptivePooling(Layer):
    rank = 2  # spatial axes; the 1-D and 3-D layers say theirs

    def __init__(self, output_size: Any, data_format: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        rank = self.rank
        if isinstance(output_size, int):
            output_size = (output_size,) * rank
        elif isinstance(output_size, tuple | list) and len(output_size) == rank:
            output_size = tuple(output_size)
        elif rank == 1 and isinstance(output_size, tuple | list):
            raise ValueError(
                f"For 1D input, `output_size` tuple must have length 1. Received: {output_size}"
            )
        else:
            raise TypeError(
                f"`output_size` must be {_NAMES[rank]}. Received: {output_size} of type "
                f"{type(output_size)}"
            )
        if any(not isinstance(n, int) or n <= 0 for n in output_size):
            raise ValueError(
                f"{type(self).__name__} '{self.name}': `output_size` must be positive "
                f"integers. Received: {output_size}"
            )
        self.output_size = output_size
        self.data_format = data_format or "channels_last"
        if self.data_format not in ("channels_first", "channels_last"):
            raise ValueError(
                f"Invalid data_format: {self.data_format}. Expected 'channels_first' or "
                "'channels_last'."
            )

    def call(self, ctx, x: Value) -> Value:
        if x.rank != self.rank + 2:
            raise ValueError(
                f"{type(self).__name__} '{self.name}' expects inputs of rank {self.rank + 2}, "
                f"got shape {keras_shape(x.shape)}"
            )
        first = 2 if self.data_format == "channels_first" else 1
        for axis, size in enumerate(self.output_size, start=first):
            x = self._pool_axis(x, axis, size)
        return x

    def _pool_axis(self, x: Value, axis: int, size: int) -> Value:
        length = x.shape[axis]
        if length % size == 0:  # equal bins tiling the axis: one reduction over a view
            shape = (*x.shape[:axis], size, length // size, *x.shape[axis + 1 :])
            return self.reduce(B.reshape(x, shape), axis + 1)
        # Every bin sees the whole axis, the steps outside it masked out (to the
        # reduction's identity): one broadcast, select and reduction that fuse into one
        # loop nest, instead of a slice and a reduction per bin.
        n = x.shape[0]
        before = math.prod(x.shape[1:axis])
        after = math.prod(x.shape[axis + 1 :])
        view = B.reshape(x, (n, before, 1, length, after))
        spread = B.broadcast_to(view, (n, before, size, length, after))
        inside = [
            start <= step < end
            for start, end in adaptive_bins(length, size)
            for step in range(length)
        ]
        mask = B.const_array(x.graph, inside, DType.bool, (size, length, 1))
        y = self.reduce(B.select(mask, spread, self.identity), 3, self.counts(x, length, size))
        return B.reshape(y, (*x.shape[:axis], size, *x.shape[axis + 1 :]))

    identity = 0.0

    def counts(self, x: Value, length: int, size: int) -> Value | None:
        """Each bin's number of steps, as a [size, 1] constant (for the mean)."""
        return None

    def reduce(self, x: Value, axis: int, counts: Value | None = None) -> Value:
        raise NotImplementedError

    def get_config(self):
        return {
            **super().get_config(),
            "output_size": self.output_size,
            "data_format": self.data_format,
        }


class BaseAdaptiveAveragePooling(BaseAdaptivePooling):
    def counts(self, x, length, size):
        sizes = [float(end - start) for start, end in adaptive_bins(length, size)]
        return B.const_array(x.graph, sizes, x.dtype, (size, 1))

    def reduce(self, x, axis, counts=None):
        return B.mean(x, axis) if counts is None else B.reduce_sum(x, axis) / counts


class BaseAdaptiveMaxPooling(BaseAdaptivePooling):
    identity = -math.inf

    def reduce(self, x, axis, counts=None):
        return B.reduce_max(x, axis)
