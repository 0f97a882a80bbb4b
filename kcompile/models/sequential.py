"""``Sequential``: a stack of single-input layers."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from kcompile.backend.keras_tensor import KerasTensor
from kcompile.layers.core.input_layer import Input, InputLayer
from kcompile.layers.layer import Layer
from kcompile.models import layer_internals as internals
from kcompile.models.model import Model
from kcompile.utils.traceback_utils import filter_traceback


class Sequential(Model):
    _summary_connections = False

    @filter_traceback
    def __init__(
        self, layers: Sequence[Any] | None = None, name: str | None = None, **kwargs: Any
    ) -> None:
        super().__init__(name=name, **kwargs)
        self._stack: list[Layer] = []
        self._input: KerasTensor | None = None
        for layer in layers or []:
            self.add(layer, rebuild=False)
        self._rebuild()

    @filter_traceback
    def add(self, layer: Any, rebuild: bool = True) -> None:
        if isinstance(layer, KerasTensor) and getattr(layer, "_input_layer", None) is not None:
            if self._input is not None or self._stack:
                raise ValueError(f"Sequential '{self.name}': an Input must come first")
            self._input = layer
        elif isinstance(layer, InputLayer):
            if self._input is not None or self._stack:
                raise ValueError(f"Sequential '{self.name}': an InputLayer must come first")
            self._input = layer.output_tensor
        elif isinstance(layer, Layer):
            if layer.multi_input:
                raise ValueError(
                    f"Sequential '{self.name}': layer '{layer.name}' "
                    f"({type(layer).__name__}) takes several inputs; use the "
                    "functional API"
                )
            shape = internals.input_shape_arg(layer)
            if self._input is None and not self._stack and shape is not None:
                self._input = Input(shape=shape)
            self._stack.append(layer)
        else:
            raise TypeError(f"Sequential '{self.name}': expected a Layer, got {layer!r}")
        if rebuild:
            self._rebuild()

    def pop(self) -> Layer:
        if not self._stack:
            raise ValueError(f"Sequential '{self.name}' has no layers to pop")
        layer = self._stack.pop()
        self._rebuild()
        return layer

    def _rebuild(self) -> None:
        if self._input is None:
            self.built = False
            return
        x = self._input
        for layer in self._stack:
            x = layer(x)
        self._set_graph([self._input], [x])

    def build(self, input_shape: Sequence[int | None] | None = None) -> None:
        """Deferred build from a data shape (batch dimension included), as Keras does."""
        if self.built:
            return
        if input_shape is None:
            raise ValueError(
                f"Sequential '{self.name}' has no Input; give Input(shape=...) "
                "first or call build(input_shape)"
            )
        self._input = Input(shape=tuple(input_shape)[1:])
        self._rebuild()

    @property
    def layers(self) -> list[Layer]:
        return list(self._stack)
