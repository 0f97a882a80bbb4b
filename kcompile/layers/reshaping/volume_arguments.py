"""What Cropping3D, ZeroPadding3D and UpSampling3D share: Keras's three (before, after)
pairs from an int, three ints or three pairs, and the spatial axes of a volume in either
data format."""

from __future__ import annotations

from typing import Any

from kcompile.backend.keras_tensor import keras_shape
from kcompile.layers.convolutional.base_conv import as_tuple

_ORDINALS = ("1st", "2nd", "3rd")


def three_pairs(value: Any, what: str, kind: str) -> tuple[tuple[int, int], ...]:
    """Keras's standardization of ``cropping``/``padding`` for the 3-D layers."""
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"`{what}` cannot be negative. Received: {what}={value}.")
        return ((value, value),) * 3
    if not hasattr(value, "__len__"):
        raise ValueError(
            f"`{what}` should be either an int, a tuple of 3 ints, or a tuple of 3 tuples "
            f"of 2 ints. Received: {what}={value}."
        )
    if len(value) != 3:
        raise ValueError(f"`{what}` should have 3 elements. Received: {value}.")
    pairs = []
    for ordinal, entry in zip(_ORDINALS, value):
        pair = as_tuple(entry, 2, f"{ordinal} entry of {what}")
        if min(pair) < 0:
            raise ValueError(
                f"The `{ordinal} entry of {what}` argument must be a tuple of 2 non-negative "
                f"integers ({kind}). Received: {entry}"
            )
        pairs.append(pair)
    return tuple(pairs)


def data_format_of(layer: Any, data_format: str | None) -> str:
    data_format = data_format or "channels_last"
    if data_format not in ("channels_last", "channels_first"):
        raise ValueError(
            f"{type(layer).__name__} '{layer.name}': data_format must be 'channels_last' or "
            f"'channels_first', got {data_format!r}"
        )
    return data_format


def spatial_axes(data_format: str) -> tuple[int, int, int]:
    return (2, 3, 4) if data_format == "channels_first" else (1, 2, 3)


def check_volume(layer: Any, x: Any) -> None:
    if x.rank != 5:
        raise ValueError(
            f"{type(layer).__name__} '{layer.name}' expects inputs of rank 5 (a batch of "
            f"volumes), got shape {keras_shape(x.shape)}"
        )
