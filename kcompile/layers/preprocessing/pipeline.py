"""Keras's ``Pipeline``: a plain layer (not a model) that applies its layers in turn,
as an augmentation pipeline does; ``training`` defaults to True, as in Keras, so
``pipeline(images)`` augments and a model's ``predict`` does not."""

from __future__ import annotations

import inspect
from typing import Any

from kcompile.backend.keras_tensor import KerasTensor
from kcompile.backend.symbolic import TracedTensor, current_context
from kcompile.layers.layer import Layer
from kcompile.utils.lazy import lazy_attributes

# Keras's serialization sits above the layers: found by name on first use, as
# keras.layers.serialize is (kcompile/layers/__init__.py).
_saving = lazy_attributes(
    __name__,
    {
        "serialize_keras_object": "kcompile.saving.serialization_lib:serialize_keras_object",
        "deserialize_keras_object": "kcompile.saving.serialization_lib:deserialize_keras_object",
    },
)


def _takes_training(layer: Layer) -> bool:
    """Keras's ``_call_has_training_arg``; kcompile's own layers (``call(ctx, x)``) take
    ``training=`` on every call."""
    parameters = inspect.signature(type(layer).call).parameters
    return "ctx" in parameters or "training" in parameters


class Pipeline(Layer):
    def __init__(self, layers: list[Layer], name: str | None = None) -> None:
        super().__init__(name=name)
        self._layers = list(layers)  # tracked (its weights are the pipeline's)

    @property
    def layers(self) -> list[Layer]:
        return self._layers

    def __call__(self, inputs: Any, *args: Any, **kwargs: Any) -> Any:
        leaves = inputs if isinstance(inputs, list | tuple) else [inputs]
        symbolic = any(isinstance(x, KerasTensor | TracedTensor) for x in leaves)
        if not symbolic and current_context() is None:
            kwargs.setdefault("training", True)  # Keras's call(inputs, training=True)
        return super().__call__(inputs, *args, **kwargs)

    def call(self, inputs, training=True, mask=None):
        # Masks travel with the tensors (each layer sees its input's), so ``mask`` is
        # not passed on by hand as Keras does.
        outputs = inputs
        for layer in self._layers:
            kwargs = (
                {"training": training} if training is not None and _takes_training(layer) else {}
            )
            outputs = layer(outputs, **kwargs)
        return outputs

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Pipeline:
        deserialize_keras_object = _saving("deserialize_keras_object")
        layers = config.get("layers")
        if not isinstance(layers, list | tuple):
            raise ValueError(
                "`Pipeline` config must contain a `layers` key mapping to a list of "
                f"serialized layers. Received config with layers={layers}."
            )
        config = {**config, "layers": [deserialize_keras_object(x) for x in layers]}
        return cls(**config)

    def get_config(self) -> dict[str, Any]:
        serialize = _saving("serialize_keras_object")
        return {"layers": serialize(self._layers), "name": self.name}
