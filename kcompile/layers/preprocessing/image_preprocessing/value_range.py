"""Keras's ``value_range`` of the colour layers: checked, and images mapped to and from
[0, 255] (``_transform_value_range``)."""

from __future__ import annotations

from typing import Any

from kcompile.ir import Value


def value_range_of(what: str, value_range: Any) -> tuple[float, float]:
    if not isinstance(value_range, tuple | list) or len(value_range) != 2:
        raise ValueError(
            f"{what}: the `value_range` argument should be a list of two numbers. "
            f"Received: value_range={value_range}"
        )
    low, high = sorted(value_range)
    return low, high


def to_255(x: Value, value_range: tuple) -> Value:
    low, high = (float(v) for v in value_range)
    if (low, high) == (0.0, 255.0):
        return x
    return (x - low) * (255.0 / (high - low))


def from_255(x: Value, value_range: tuple) -> Value:
    low, high = (float(v) for v in value_range)
    if (low, high) == (0.0, 255.0):
        return x
    return x * ((high - low) / 255.0) + low
