"""Keras's ``Dot`` layer and ``layers.dot``."""

from __future__ import annotations

from typing import Any

from kcompile.backend.keras_tensor import keras_shape
from kcompile.ir import DType
from kcompile.ir import build as B
from kcompile.layers.layer import Layer
from kcompile.layers.merging.concatenate import common_dtype


class Dot(Layer):
    """Keras's Dot: the batched dot product of two tensors over ``axes`` (one axis for
    both or one each, the batch never), optionally of l2-normalized inputs (cosine
    proximity); a result of the batch dimension alone gets a trailing axis of 1."""

    propagates_mask = True

    def compute_mask(self, inputs, previous_mask):
        return None

    multi_input = True

    def __init__(self, axes: Any, normalize: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.axes, self.normalize = axes, normalize

    def call(self, ctx, inputs):
        from kcompile.ops.numpy import _einsum2

        if len(inputs) != 2:
            raise ValueError(f"Dot '{self.name}' needs exactly two inputs, got {len(inputs)}")
        x, y = inputs
        axes = self.axes if isinstance(self.axes, list | tuple) else (self.axes, self.axes)
        ax, ay = (a % v.rank for a, v in zip(axes, (x, y)))
        if 0 in (ax, ay) or x.shape[ax] != y.shape[ay]:
            raise ValueError(
                f"Dot '{self.name}': cannot contract axis {ax} of {keras_shape(x.shape)} "
                f"with axis {ay} of {keras_shape(y.shape)}"
            )
        integer = not (x.dtype.is_float or y.dtype.is_float)
        if integer and self.normalize:
            raise TypeError(
                f"Dot '{self.name}': normalize=True needs float inputs (Keras's l2 "
                f"normalization refuses {x.dtype.value}), got {x.dtype.value} and {y.dtype.value}"
            )
        # Integer inputs are multiplied in float32 (exact below 2**24) and give an integer
        # result, as Keras's Dot of int32 tensors does.
        x, y = common_dtype([x, y]) if not integer else (B.cast(v, DType.f32) for v in (x, y))
        if self.normalize:
            x, y = _l2_normalize(x, ax), _l2_normalize(y, ay)
        letters = iter("cdefghijklmnopqrstuvw")
        tx = ["b"] + [next(letters) for _ in range(x.rank - 1)]
        ty = ["b"] + [next(letters) for _ in range(y.rank - 1)]
        tx[ax] = ty[ay] = "z"
        out = [c for c in tx if c != "z"] + [c for c in ty[1:] if c != "z"]
        product = _einsum2("".join(tx), "".join(ty), "".join(out), x, y)
        if integer:
            product = B.cast(B.round_(product), DType.i32)
        return B.reshape(product, (*product.shape, 1)) if product.rank == 1 else product

    def get_config(self):
        return {**super().get_config(), "axes": self.axes, "normalize": self.normalize}


def _l2_normalize(v, axis: int):
    squares = B.reduce_sum(B.square(v), (axis,), keepdims=True)
    return v / B.sqrt(B.maximum(squares, 1e-12))


def dot(inputs: list, axes: Any = -1, normalize: bool = False, **kwargs: Any) -> Any:
    """Keras's ``layers.dot(inputs, axes, normalize=False)``."""
    return Dot(axes=axes, normalize=normalize, **kwargs)(inputs)
