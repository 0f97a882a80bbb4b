"""Classes by name, for files that name them: Keras's registry of custom objects
(``register_keras_serializable``, ``get_custom_objects``, ``custom_object_scope``) and
kcompile's own model classes.

Saving sits above the layers and below the models, whose ``save`` and ``load_weights``
call it; a file read back names its model class, which is found here on use, as
Keras's deserialization imports the module a config names. So no module of
``kcompile.saving`` imports ``kcompile.models.model`` or ``sequential``.
"""

from __future__ import annotations

import importlib
import inspect
import threading
from typing import Any

# Keras's registry of custom objects: "package>Name" -> class or function (a user may
# also add plain names: ``get_custom_objects()["MyLayer"] = MyLayer``), and back.
GLOBAL_CUSTOM_OBJECTS: dict[str, Any] = {}
GLOBAL_CUSTOM_NAMES: dict[Any, str] = {}

# The objects of the innermost ``custom_object_scope``; per thread.
_SCOPE = threading.local()

# The model classes configs name (Keras 3 writes "Functional" for a functional model).
_MODEL_CLASSES = {
    "Model": "kcompile.models.model:Model",
    "Functional": "kcompile.models.model:Model",
    "Sequential": "kcompile.models.sequential:Sequential",
}


def register_keras_serializable(package: str = "Custom", name: str | None = None):
    """Keras's decorator: the class (or function) is found by ``package>name`` when a
    config or file naming it is loaded."""

    def register(obj: Any) -> Any:
        key = f"{package}>{name if name is not None else obj.__name__}"
        if inspect.isclass(obj) and not hasattr(obj, "get_config"):
            raise ValueError("Cannot register a class that does not have a get_config() method.")
        GLOBAL_CUSTOM_OBJECTS[key] = obj
        GLOBAL_CUSTOM_NAMES[obj] = key
        return obj

    return register


def get_registered_name(obj: Any) -> str:
    """The name ``obj`` is registered under, else its ``__name__`` (as Keras's)."""
    if obj in GLOBAL_CUSTOM_NAMES:
        return GLOBAL_CUSTOM_NAMES[obj]
    return obj.__name__


def get_custom_objects() -> dict[str, Any]:
    """Keras's: the live global dictionary of registered custom objects (objects of a
    ``custom_object_scope`` are not in it)."""
    return GLOBAL_CUSTOM_OBJECTS


def scope_objects() -> dict[str, Any]:
    """The objects of the innermost active ``custom_object_scope`` (in this thread)."""
    return getattr(_SCOPE, "objects", {})


class CustomObjectScope:
    """Keras's ``custom_object_scope``: within ``with CustomObjectScope({...}):``
    deserialization (``load_model``, ``model_from_json``, ``deserialize_keras_object``,
    ``from_config``) finds the given classes and functions by name."""

    def __init__(self, custom_objects: dict[str, Any] | None) -> None:
        self.custom_objects = dict(custom_objects or {})
        self.backup: dict[str, Any] | None = None

    def __enter__(self) -> CustomObjectScope:
        self.backup = dict(scope_objects())
        _SCOPE.objects = dict(self.custom_objects)
        return self

    def __exit__(self, *args: Any) -> None:
        _SCOPE.objects = dict(self.backup or {})


custom_object_scope = CustomObjectScope


def get_registered_object(
    name: str, custom_objects: dict | None = None, module_objects: dict | None = None
) -> Any:
    """A custom class or function by name, looked up as Keras does: the active
    ``custom_object_scope``, the registry, ``custom_objects``, ``module_objects``. A
    registered name ``package>Name`` is also found by its plain ``Name`` in
    ``custom_objects`` (a file that a registered class wrote, loaded with
    ``custom_objects={"Name": cls}``)."""
    for table in (scope_objects(), GLOBAL_CUSTOM_OBJECTS, custom_objects, module_objects):
        if table and name in table:
            return table[name]
    plain = name.split(">")[-1] if isinstance(name, str) else name
    if plain != name:
        for table in (scope_objects(), custom_objects):
            if table and plain in table:
                return table[plain]
    return None


def model_class(name: str) -> type:
    """kcompile's ``Model`` or ``Sequential`` (``name`` as a config writes it)."""
    module, _, attribute = _MODEL_CLASSES[name].partition(":")
    return getattr(importlib.import_module(module), attribute)
