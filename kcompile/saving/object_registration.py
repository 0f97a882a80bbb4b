"""Classes by name, for files that name them: Keras's registry of custom objects
(``register_keras_serializable``) and kcompile's own model classes.

Saving sits above the layers and below the models, whose ``save`` and ``load_weights``
call it; a file read back names its model class, which is found here on use, as
Keras's deserialization imports the module a config names. So no module of
``kcompile.saving`` imports ``kcompile.models.model`` or ``sequential``.
"""

from __future__ import annotations

import importlib

# Keras's registry of custom objects: "package>Name" (or the class name) -> class.
_REGISTERED: dict[str, type] = {}

# The model classes configs name (Keras 3 writes "Functional" for a functional model).
_MODEL_CLASSES = {
    "Model": "kcompile.models.model:Model",
    "Functional": "kcompile.models.model:Model",
    "Sequential": "kcompile.models.sequential:Sequential",
}


def register_keras_serializable(package: str = "Custom", name: str | None = None):
    """Keras's decorator: the class is found by ``package>name`` when a file is loaded."""

    def register(cls: type) -> type:
        key = f"{package}>{name or cls.__name__}"
        _REGISTERED[key] = cls
        cls._registered_name = key
        return cls

    return register


def get_registered_name(cls: type) -> str:
    return getattr(cls, "_registered_name", None) or cls.__name__


def get_registered_object(name: str, custom_objects: dict | None = None) -> type | None:
    """A custom class by its registered name or class name: ``custom_objects`` first,
    then the registry (as Keras looks them up)."""
    custom_objects = custom_objects or {}
    for key in (name, name.split(">")[-1]):
        if key in custom_objects:
            return custom_objects[key]
    return _REGISTERED.get(name)


def model_class(name: str) -> type:
    """kcompile's ``Model`` or ``Sequential`` (``name`` as a config writes it)."""
    module, _, attribute = _MODEL_CLASSES[name].partition(":")
    return getattr(importlib.import_module(module), attribute)
