"""Merge layers (Add, Subtract, Multiply, Average, Maximum, Minimum, Concatenate, Dot) and
Keras's functional helpers that make and call them (``layers.add``, ``concatenate``, ...)."""

from __future__ import annotations

from functools import reduce
from typing import Any

from kcompile.backend.keras_tensor import keras_shape
from kcompile.ir import DType
from kcompile.ir import build as B
from kcompile.layers.layer import Layer


class _Merge(Layer):
    propagates_mask = True
    multi_input = True

    def call(self, ctx, inputs):
        if len(inputs) < 2:
            raise ValueError(
                f"layer '{self.name}' ({type(self).__name__}) needs at least two "
                f"inputs, got {len(inputs)}"
            )
        shapes = {v.shape for v in inputs}
        if len(shapes) > 1:
            raise ValueError(
                f"layer '{self.name}' ({type(self).__name__}) needs inputs of one "
                f"shape, got {[keras_shape(v.shape) for v in inputs]}"
            )
        return self.merge(inputs)

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


class _MaskedMerge(_Merge):
    """Keras's Multiply, Maximum and Minimum replace masked values before the op."""

    def call(self, ctx, inputs, mask=None):
        out = super().call(ctx, inputs)
        if mask is None:
            return out
        out, out_mask = self.merge_masked(
            inputs, [None if m is None else _spread(m, x) for m, x in zip(mask, inputs)]
        )
        if out_mask is not None:
            ctx.set_mask(out, _any_last(out_mask))
        return out


class Add(_Merge):
    def merge(self, inputs):
        return reduce(B.add, inputs)


class Subtract(_Merge):
    def merge(self, inputs):
        if len(inputs) != 2:
            raise ValueError(f"Subtract '{self.name}' needs exactly two inputs")
        return inputs[0] - inputs[1]


class Multiply(_MaskedMerge):
    def merge(self, inputs):
        return reduce(B.mul, inputs)

    def merge_masked(self, inputs, masks):
        """Keras's: masked values count as 1; when every input has a mask, the product is
        0 where none keeps the value, and the mask is any of theirs."""
        every = all(m is not None for m in masks)
        out = out_mask = None
        for x, m in zip(inputs, masks):
            if m is not None:
                x = B.select(m, x, 1.0)
                if every:
                    out_mask = m if out_mask is None else B.logical_or(out_mask, m)
            out = x if out is None else out * x
        if every:
            out = B.select(out_mask, out, 0.0)
        return out, out_mask


class Average(_Merge):
    def merge(self, inputs):
        return reduce(B.add, inputs) * (1.0 / len(inputs))


class _Extremum(_MaskedMerge):
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


class Maximum(_Extremum):
    op = staticmethod(B.maximum)


class Minimum(_Extremum):
    op = staticmethod(B.minimum)


class Concatenate(Layer):
    propagates_mask = True
    multi_input = True

    def __init__(self, axis: int = -1, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.axis = axis

    def call(self, ctx, inputs):
        return B.concat(inputs, self.axis)

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
        if self.normalize:
            x, y = _l2_normalize(x, ax), _l2_normalize(y, ay)
        letters = iter("cdefghijklmnopqrstuvw")
        tx = ["b"] + [next(letters) for _ in range(x.rank - 1)]
        ty = ["b"] + [next(letters) for _ in range(y.rank - 1)]
        tx[ax] = ty[ay] = "z"
        out = [c for c in tx if c != "z"] + [c for c in ty[1:] if c != "z"]
        product = _einsum2("".join(tx), "".join(ty), "".join(out), x, y)
        return B.reshape(product, (*product.shape, 1)) if product.rank == 1 else product

    def get_config(self):
        return {**super().get_config(), "axes": self.axes, "normalize": self.normalize}


def _l2_normalize(v, axis: int):
    squares = B.reduce_sum(B.square(v), (axis,), keepdims=True)
    return v / B.sqrt(B.maximum(squares, 1e-12))


def _functional(cls, doc: str):
    def merge(inputs: list, **kwargs: Any) -> Any:
        return cls(**kwargs)(inputs)

    merge.__name__ = cls.__name__.lower()
    merge.__doc__ = doc
    return merge


add = _functional(Add, "Keras's ``layers.add(inputs)``: an ``Add`` layer called on them.")
subtract = _functional(Subtract, "Keras's ``layers.subtract(inputs)``.")
multiply = _functional(Multiply, "Keras's ``layers.multiply(inputs)``.")
average = _functional(Average, "Keras's ``layers.average(inputs)``.")
maximum = _functional(Maximum, "Keras's ``layers.maximum(inputs)``.")
minimum = _functional(Minimum, "Keras's ``layers.minimum(inputs)``.")


def concatenate(inputs: list, axis: int = -1, **kwargs: Any) -> Any:
    """Keras's ``layers.concatenate(inputs, axis=-1)``."""
    return Concatenate(axis=axis, **kwargs)(inputs)


def dot(inputs: list, axes: Any = -1, normalize: bool = False, **kwargs: Any) -> Any:
    """Keras's ``layers.dot(inputs, axes, normalize=False)``."""
    return Dot(axes=axes, normalize=normalize, **kwargs)(inputs)
