"""Keras's ``Concatenate`` layer and ``layers.concatenate``."""

from __future__ import annotations

from typing import Any

from kcompile.ir import DType, Value
from kcompile.ir import build as B
from kcompile.layers.layer import Layer


class Concatenate(Layer):
    propagates_mask = True
    multi_input = True

    def __init__(self, axis: int = -1, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.axis = axis

    def call(self, ctx, inputs):
        return B.concat(common_dtype(inputs), self.axis)

    def compute_mask(self, inputs, previous_mask):
        """Keras's: each input's mask spread over its features (all kept where it has
        none), joined as the inputs are, then any over the last axis."""
        if previous_mask is None or all(m is None for m in previous_mask):
            return None
        spread = []
        for x, mask in zip(inputs, previous_mask):
            if mask is None:
                mask = B.const(x.graph, True, DType.bool, x.shape)
            elif mask.rank < x.rank:
                mask = B.broadcast_to(B.reshape(mask, (*mask.shape, 1)), x.shape)
            spread.append(B.cast(mask, DType.f32))
        return B.gt(B.reduce_max(B.concat(spread, self.axis), -1), 0.0)

    def get_config(self):
        return {**super().get_config(), "axis": self.axis}


def common_dtype(inputs: list[Value]) -> list[Value]:
    """The inputs cast to Keras's result type of theirs (float over int over bool), as
    Keras's merge layers take integer inputs and keep an integer result."""
    floats = {v.dtype for v in inputs if v.dtype.is_float}
    if floats:  # one float dtype stays; two (bf16 and f32, bf16 and f16) meet in f32
        common = floats.pop() if len(floats) == 1 else DType.f32
    else:
        order = (DType.bool, DType.i32)
        common = max((v.dtype for v in inputs), key=order.index)
    return [v if v.dtype is common else B.cast(v, common) for v in inputs]


def concatenate(inputs: list, axis: int = -1, **kwargs: Any) -> Any:
    """Keras's ``layers.concatenate(inputs, axis=-1)``."""
    return Concatenate(axis=axis, **kwargs)(inputs)
