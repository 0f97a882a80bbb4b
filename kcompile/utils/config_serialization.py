"""Keras's serialized form of a small namespace's objects (a regularizer, a constraint):
``{"module", "class_name", "config", "registered_name"}``, written and read back."""

from __future__ import annotations

from typing import Any


def serialize_object(obj: Any, namespace: str, classes: dict[str, type]) -> dict[str, Any]:
    """``obj`` as Keras writes it; kcompile's own classes are named ``keras.<namespace>``."""
    name = type(obj).__name__
    ours = classes.get(name) is type(obj)
    return {
        "module": f"keras.{namespace}" if ours else type(obj).__module__,
        "class_name": name,
        "config": obj.get_config(),
        "registered_name": None if ours else name,
    }


def deserialize_object(
    config: Any,
    custom_objects: dict | None,
    kind: str,
    classes: dict[str, type],
    names: dict[str, type],
) -> Any:
    """An object of ``kind`` from Keras's serialized form (or a name): ``names`` resolves
    names and aliases, ``classes`` lists the known ones in the error."""
    custom = custom_objects or {}
    if isinstance(config, str):
        cls = custom.get(config) or names.get(config)
        if cls is None:
            raise ValueError(f"could not deserialize {kind} {config!r}")
        return cls()
    if not isinstance(config, dict) or "class_name" not in config:
        raise ValueError(
            f"could not deserialize {kind} {config!r}: expected a dict with "
            "'class_name' and 'config'"
        )
    name = config["class_name"]
    cls = custom.get(name) or names.get(name) or custom.get(config.get("registered_name"))
    if cls is None:
        raise ValueError(
            f"could not deserialize {kind} {name!r}: known {kind}s are "
            f"{', '.join(classes)} (pass custom_objects= for your own)"
        )
    return cls.from_config(dict(config.get("config") or {}))


def serialize_optional(module: Any, value: Any) -> Any:
    """A layer's optional regularizer or constraint in its config: None, or ``module``'s
    (``kcompile.regularizers``, ``kcompile.constraints``) serialized form of it."""
    return None if value is None else module.serialize(module.get(value))
