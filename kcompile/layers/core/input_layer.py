"""Keras's ``InputLayer`` and ``Input``: the symbolic tensor a functional model starts from."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from kcompile.backend import session as backend
from kcompile.backend.keras_tensor import KerasTensor
from kcompile.layers.layer import Layer


class InputLayer(Layer):
    def __init__(
        self,
        shape: Sequence[int] | None = None,
        batch_size: int | None = None,
        dtype: str | None = None,
        name: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(name=name or backend.unique_name("input_layer"), **kwargs)
        if shape is None:
            raise ValueError("Input needs a shape (without the batch dimension)")
        shape = (shape,) if isinstance(shape, int) else tuple(shape)
        for d in shape:
            if d is not None and (not isinstance(d, int) or d < 0):
                raise ValueError(
                    f"Input '{self.name}': shape {shape} must hold non-negative integers "
                    "or None (a dimension the data decides)"
                )
        self.dtype = dtype or "float32"
        self.built = True
        self.output_tensor = KerasTensor((batch_size, *shape), self.dtype, name=self.name)
        self.output_tensor._history = (None, 0)
        self.output_tensor._input_layer = self

    def get_config(self):
        return {"name": self.name, "shape": self.output_tensor.shape[1:], "dtype": self.dtype}


def Input(
    shape: Sequence[int] | int | None = None,
    batch_size: int | None = None,
    dtype: str | None = None,
    sparse: bool | None = None,
    batch_shape: Sequence[int | None] | None = None,
    name: str | None = None,
    tensor: Any = None,
) -> KerasTensor:
    """A symbolic input tensor, as ``keras.Input`` (``shape`` without the batch
    dimension, or ``batch_shape`` with it)."""
    if sparse:
        raise NotImplementedError(f"Input {name or ''}: sparse inputs are not supported")
    if tensor is not None:
        raise NotImplementedError(f"Input {name or ''}: tensor= is not supported")
    if batch_shape is not None:
        if shape is not None:
            raise ValueError("Input takes shape or batch_shape, not both")
        batch_size, shape = batch_shape[0], tuple(batch_shape[1:])
    return InputLayer(shape=shape, batch_size=batch_size, dtype=dtype, name=name).output_tensor
