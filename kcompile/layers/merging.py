"""Merge layers: Add, Subtract, Multiply, Average, Maximum, Minimum, Concatenate."""

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
