"""Merge layers (Add, Subtract, Multiply, Average, Maximum, Minimum, Concatenate, Dot) and
Keras's functional helpers that make and call them (``layers.add``, ``concatenate``, ...)."""

from __future__ import annotations

from functools import reduce
from typing import Any

from kcompile.ir import build as B
from kcompile.layers.layer import Layer
from kcompile.tensor import keras_shape


class _Merge(Layer):
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


class Add(_Merge):
    def merge(self, inputs):
        return reduce(B.add, inputs)


class Subtract(_Merge):
    def merge(self, inputs):
        if len(inputs) != 2:
            raise ValueError(f"Subtract '{self.name}' needs exactly two inputs")
        return inputs[0] - inputs[1]


class Multiply(_Merge):
    def merge(self, inputs):
        return reduce(B.mul, inputs)


class Average(_Merge):
    def merge(self, inputs):
        return reduce(B.add, inputs) * (1.0 / len(inputs))


class Maximum(_Merge):
    def merge(self, inputs):
        return reduce(B.maximum, inputs)


class Minimum(_Merge):
    def merge(self, inputs):
        return reduce(B.minimum, inputs)


class Concatenate(Layer):
    multi_input = True

    def __init__(self, axis: int = -1, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.axis = axis

    def call(self, ctx, inputs):
        return B.concat(inputs, self.axis)

    def get_config(self):
        return {**super().get_config(), "axis": self.axis}


class Dot(Layer):
    """Keras's Dot: the batched dot product of two tensors over ``axes`` (one axis for
    both or one each, the batch never), optionally of l2-normalized inputs (cosine
    proximity); a result of the batch dimension alone gets a trailing axis of 1."""

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
