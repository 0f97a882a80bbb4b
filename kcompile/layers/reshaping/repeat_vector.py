"""Reshaping layers, channels last: RepeatVector, Permute, UpSampling1D, ZeroPadding1D,
Cropping1D, Cropping2D and TimeDistributed."""

from __future__ import annotations

from typing import Any

from kcompile.backend.keras_tensor import keras_shape
from kcompile.ir import build as B
from kcompile.layers.layer import Layer


def _pair(value: Any, what: str, layer: str) -> tuple[int, int]:
    """An int (both sides) or a pair (before, after)."""
    if isinstance(value, int):
        return (value, value)
    pair = tuple(int(v) for v in value)
    if len(pair) != 2 or min(pair) < 0:
        raise ValueError(f"layer '{layer}': {what} must be an int or a pair, got {value!r}")
    return pair  # type: ignore[return-value]


class RepeatVector(Layer):
    """(batch, features) -> (batch, n, features)."""

    def __init__(self, n: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if not isinstance(n, int) or n < 1:
            raise ValueError(f"RepeatVector '{self.name}': n must be a positive int, got {n!r}")
        self.n = n

    def call(self, ctx, x):
        if x.rank != 2:
            raise ValueError(
                f"RepeatVector '{self.name}' expects (batch, features), got {keras_shape(x.shape)}"
            )
        batch, features = x.shape
        return B.broadcast_to(B.reshape(x, (batch, 1, features)), (batch, self.n, features))

    def get_config(self):
        return {**super().get_config(), "n": self.n}


class Permute(Layer):
    """Permutes the axes but the batch; ``dims`` counts from 1, as in Keras."""

    def __init__(self, dims: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.dims = tuple(int(d) for d in dims)
        if sorted(self.dims) != list(range(1, len(self.dims) + 1)):
            raise ValueError(
                f"Permute '{self.name}': dims must be a permutation of 1..{len(self.dims)}, "
                f"got {self.dims}"
            )

    def call(self, ctx, x):
        if x.rank != len(self.dims) + 1:
            raise ValueError(
                f"Permute '{self.name}': dims {self.dims} for an input of shape "
                f"{keras_shape(x.shape)}"
            )
        return B.transpose(x, (0, *self.dims))

    def get_config(self):
        return {**super().get_config(), "dims": self.dims}


class UpSampling1D(Layer):
    """Repeats each step ``size`` times."""

    def __init__(self, size: int = 2, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.size = int(size)

    def call(self, ctx, x):
        n, steps, c = x.shape
        y = B.broadcast_to(B.reshape(x, (n, steps, 1, c)), (n, steps, self.size, c))
        return B.reshape(y, (n, steps * self.size, c))

    def get_config(self):
        return {**super().get_config(), "size": self.size}


class ZeroPadding1D(Layer):
    def __init__(self, padding: Any = 1, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.padding = _pair(padding, "padding", self.name)

    def call(self, ctx, x):
        before, after = self.padding
        return B.pad(x, (0, before, 0), (0, after, 0))

    def get_config(self):
        return {**super().get_config(), "padding": self.padding}


class Cropping1D(Layer):
    def __init__(self, cropping: Any = (1, 1), **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.cropping = _pair(cropping, "cropping", self.name)

    def call(self, ctx, x):
        return _crop(self, x, [self.cropping])

    def get_config(self):
        return {**super().get_config(), "cropping": self.cropping}


class Cropping2D(Layer):
    """``cropping``: an int, (symmetric height, symmetric width), or ((top, bottom),
    (left, right))."""

    def __init__(self, cropping: Any = ((0, 0), (0, 0)), data_format: Any = None, **kwargs):
        super().__init__(**kwargs)
        if data_format not in (None, "channels_last"):
            raise NotImplementedError(f"Cropping2D '{self.name}': only channels_last")
        if isinstance(cropping, int):
            cropping = (cropping, cropping)
        self.cropping = tuple(_pair(c, "cropping", self.name) for c in cropping)

    def call(self, ctx, x):
        return _crop(self, x, list(self.cropping))

    def get_config(self):
        return {**super().get_config(), "cropping": self.cropping}


def _crop(layer: Layer, x, cropping: list[tuple[int, int]]):
    begin, end = [0] * x.rank, list(x.shape)
    for axis, (before, after) in enumerate(cropping, start=1):
        if before + after >= x.shape[axis]:
            raise ValueError(
                f"{type(layer).__name__} '{layer.name}': cropping {before}+{after} leaves "
                f"nothing of axis {axis} of {keras_shape(x.shape)}"
            )
        begin[axis], end[axis] = before, x.shape[axis] - after
    return B.slice_(x, begin, end)


class TimeDistributed(Layer):
    """Applies ``layer`` to every step of axis 1 (one weight set for all steps): the
    steps are sliced, passed through the layer one by one and stacked again."""

    propagates_mask = True

    def __init__(self, layer: Layer, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if not isinstance(layer, Layer):
            raise TypeError(f"TimeDistributed '{self.name}' needs a layer, got {layer!r}")
        self.layer = layer

    def call(self, inputs, training=None):
        from kcompile import ops

        steps = inputs.shape[1]
        if steps is None:
            raise ValueError(
                f"TimeDistributed '{self.name}': the steps axis must have a known size"
            )
        outs = [self.layer(inputs[:, t], training=training) for t in range(steps)]
        return ops.stack(outs, axis=1)

    def get_config(self):
        return {**super().get_config(), "layer": self.layer.get_config()}
