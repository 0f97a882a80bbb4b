"""A ``keras.ops`` call on the functional API's symbolic tensors: a node of the model.

``x = keras.Input((4,)); y = ops.relu(x) * 2`` makes two such nodes, as Keras's
functional API does; when the model is traced, each runs its op on traced tensors.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kcompile.backend import session as backend
from kcompile.backend.keras_tensor import KerasTensor
from kcompile.layers.layer import Layer
from kcompile.ops import core
from kcompile.tree import map_structure


class _Slot:
    """Where a symbolic tensor was in the op's arguments."""


class Operation(Layer):
    """One op with its non-tensor arguments fixed; its inputs are the tensors."""

    def __init__(self, fn: Callable, args: tuple, kwargs: dict) -> None:
        super().__init__(name=backend.unique_name(fn.__name__))
        self.fn = fn
        tensors: list[KerasTensor] = []

        def slot(x: Any) -> Any:
            if isinstance(x, KerasTensor):
                tensors.append(x)
                return _Slot()
            return x

        self.template = map_structure(slot, (args, kwargs))
        self.tensors = tensors

    def _set_output_masks(self, ctx, inputs, previous, outs) -> list:
        """keras.ops calls carry no masks (Keras's ops are not layers)."""
        return outs

    def call(self, inputs):
        values = iter(inputs)
        args, kwargs = map_structure(
            lambda x: next(values) if isinstance(x, _Slot) else x, self.template
        )
        return self.fn(*args, **kwargs)


def call_on_symbolic(fn: Callable, args: tuple, kwargs: dict) -> Any:
    operation = Operation(fn, args, kwargs)
    return operation(list(operation.tensors))


core.handle_symbolic_calls(call_on_symbolic)
