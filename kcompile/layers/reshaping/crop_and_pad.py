"""The (before, after) amounts of the padding and cropping layers, and the cut a
cropping layer makes."""

from __future__ import annotations

from typing import Any

from kcompile.backend.keras_tensor import keras_shape
from kcompile.ir import Value
from kcompile.ir import build as B
from kcompile.layers.layer import Layer


def before_after(value: Any, what: str, layer: str) -> tuple[int, int]:
    """An int (both sides) or a pair (before, after)."""
    if isinstance(value, int):
        return (value, value)
    pair = tuple(int(v) for v in value)
    if len(pair) != 2 or min(pair) < 0:
        raise ValueError(f"layer '{layer}': {what} must be an int or a pair, got {value!r}")
    return pair  # type: ignore[return-value]


def crop(layer: Layer, x: Value, cropping: list[tuple[int, int]]) -> Value:
    """``x`` less (before, after) of each axis from 1 on, as the layer's ``cropping`` says."""
    begin, end = [0] * x.rank, list(x.shape)
    for axis, (before, after) in enumerate(cropping, start=1):
        if before + after >= x.shape[axis]:
            raise ValueError(
                f"{type(layer).__name__} '{layer.name}': cropping {before}+{after} leaves "
                f"nothing of axis {axis} of {keras_shape(x.shape)}"
            )
        begin[axis], end[axis] = before, x.shape[axis] - after
    return B.slice_(x, begin, end)
