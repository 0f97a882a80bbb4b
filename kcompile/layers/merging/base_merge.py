"""What the merge layers share (Keras's ``base_merge.Merge``): the check of their inputs,
the mask they pass on, the replacement of masked values before the op (Multiply, Maximum,
Minimum), and the functional form (``layers.add(inputs)``, ...) made from a class."""

from __future__ import annotations

from collections.abc import Callable
from functools import reduce
from typing import Any

from kcompile.backend.keras_tensor import keras_shape
from kcompile.ir import DType, Value
from kcompile.ir import build as B
from kcompile.layers.layer import Layer


class Merge(Layer):
    propagates_mask = True
    multi_input = True

    def call(self, ctx, inputs):
        if len(inputs) < 2:
            raise ValueError(
                f"layer '{self.name}' ({type(self).__name__}) needs at least two "
                f"inputs, got {len(inputs)}"
            )
        return self.merge(self.broadcast(inputs))

    def broadcast(self, inputs: list[Value]) -> list[Value]:
        """Keras's: inputs of lower rank get axes of 1 after the batch axis, then sizes of
        1 stretch to the others' ((None, 1) with (None, 64) gives (None, 64))."""
        rank = max(v.rank for v in inputs)
        inputs = [
            B.reshape(v, (v.shape[0], *[1] * (rank - v.rank), *v.shape[1:])) if v.rank < rank else v
            for v in inputs
        ]
        shape = list(inputs[0].shape)
        for v in inputs[1:]:
            for axis, (a, b) in enumerate(zip(shape, v.shape)):
                if axis and a != b and 1 not in (a, b):
                    raise ValueError(
                        f"layer '{self.name}' ({type(self).__name__}): Inputs have "
                        "incompatible shapes. Received shapes "
                        f"{[keras_shape(v.shape)[1:] for v in inputs]}"
                    )
                shape[axis] = b if a == 1 else a
        return [v if v.shape == tuple(shape) else B.broadcast_to(v, tuple(shape)) for v in inputs]

    def merge(self, inputs):
        raise NotImplementedError

    def compute_mask(self, inputs, previous_mask):
        """Keras 3's: the steps any input keeps, when every input has a mask; else none."""
        if previous_mask is None or any(m is None for m in previous_mask):
            return None
        return reduce(B.logical_or, previous_mask)


def _spread(mask, x):
    """A [..., steps] mask as a boolean of ``x``'s shape (Keras: expand_dims, broadcast)."""
    mask = B.ne(mask, False)
    return (
        B.broadcast_to(B.reshape(mask, (*mask.shape, 1)), x.shape) if mask.rank < x.rank else mask
    )


def _any_last(mask):
    return B.gt(B.reduce_max(B.cast(mask, DType.f32), -1), 0.0)


class MaskedMerge(Merge):
    """Keras's Multiply, Maximum and Minimum replace masked values before the op."""

    def call(self, ctx, inputs, mask=None):
        out = super().call(ctx, inputs)
        if mask is None:
            return out
        inputs = self.broadcast(inputs)
        out, out_mask = self.merge_masked(
            inputs, [None if m is None else _spread(m, x) for m, x in zip(mask, inputs)]
        )
        if out_mask is not None:
            ctx.set_mask(out, _any_last(out_mask))
        return out


class Extremum(MaskedMerge):
    def merge(self, inputs):
        return reduce(self.op, inputs)

    def merge_masked(self, inputs, masks):
        """Keras's ``_apply_merge_op_and_or_mask``: a masked value stands aside for the
        other; the mask is any of theirs while every input has one."""
        out, out_mask = inputs[0], masks[0]
        for x, m in zip(inputs[1:], masks[1:]):
            if m is not None:
                x = B.select(m, x, out)
            if out_mask is not None:
                out = B.select(out_mask, out, x)
            out_mask = B.logical_or(out_mask, m) if m is not None and out_mask is not None else None
            out = self.op(out, x)
        return out, out_mask


def merge_function(cls: type[Layer], doc: str) -> Callable[..., Any]:
    """Keras's functional form of a merge layer: ``cls(**kwargs)`` called on ``inputs``."""

    def merge(inputs: list, **kwargs: Any) -> Any:
        return cls(**kwargs)(inputs)

    merge.__name__ = cls.__name__.lower()
    merge.__doc__ = doc
    return merge
