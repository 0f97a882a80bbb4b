"""Keras's ``Wrapper``: the base of layers that hold another layer and change how it is
called (a user's wrapper subclasses it; ``SpectralNormalization`` is one)."""

from __future__ import annotations

from typing import Any

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


class Wrapper(Layer):
    def __init__(self, layer: Layer, **kwargs: Any) -> None:
        if not isinstance(layer, Layer):
            raise ValueError(
                f"Layer {layer} supplied to Wrapper isn't a supported layer type. Please "
                "ensure wrapped layer is a valid Keras layer."
            )
        super().__init__(**kwargs)
        self.layer = layer

    def build(self, input_shape=None):
        if not self.layer.built:
            self.layer.build(input_shape)
            self.layer.built = True

    def get_config(self) -> dict[str, Any]:
        serialize = _saving("serialize_keras_object")
        return {**super().get_config(), "layer": serialize(self.layer)}

    @classmethod
    def from_config(cls, config: dict[str, Any], custom_objects: dict | None = None) -> Wrapper:
        config = dict(config)
        deserialize = _saving("deserialize_keras_object")
        layer = deserialize(config.pop("layer"), custom_objects=custom_objects)
        return cls(layer, **config)
