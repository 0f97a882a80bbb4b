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

    @property
    def operations(self) -> list[Layer]:
        """Keras's Sequential has no ``operations`` (a functional model's)."""
        raise AttributeError("'Sequential' object has no attribute 'operations'")

    # --- Keras's configs -----------------------------------------------------------------

    def get_config(self) -> dict[str, Any]:
        """Keras's: the layers (an InputLayer first, once built) and the input shape."""
        from kcompile.saving.saving_lib import model_config

        return model_config(self)["config"]

    @classmethod
    def from_config(cls, config: dict[str, Any], custom_objects: dict | None = None) -> Sequential:
        """Keras's: the layers made from their configs (kcompile's or real Keras's), then
        built with ``build_input_shape`` when the config has no InputLayer."""
        from kcompile.saving.saving_lib import model_from_config

        return model_from_config({"class_name": "Sequential", "config": config}, custom_objects)

    def get_build_config(self) -> dict[str, Any] | None:
        if not self.built:
            return None
        return {"input_shape": self.inputs[0].shape}

    def build_from_config(self, config: dict[str, Any] | None) -> None:
        if config and config.get("input_shape") is not None and not self.built:
            self.build(tuple(config["input_shape"]))

    @filter_traceback
    def summary(self, print_fn=print, **kwargs: Any) -> None:
        """Keras's table; a Sequential not built yet shows its layers with "?" shapes and
        "0 (unbuilt)" parameters, as Keras prints it."""
        from kcompile.models.summary import summary_text

        print_fn(summary_text(self, False))
