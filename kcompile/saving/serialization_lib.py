"""Keras's object serialization: ``serialize_keras_object`` turns a layer, model, loss,
metric, optimizer, function or plain value into Keras's dict form
(``{"module", "class_name", "config", "registered_name"}``, plus ``build_config`` and
``compile_config`` where the object has them), and ``deserialize_keras_object`` makes the
object again, from kcompile's dicts or from those real Keras writes.

A built-in class is named by its public Keras name (``keras.layers.Dense`` is module
``keras.layers``, class ``Dense``), found by walking kcompile's public namespaces, as
Keras's ``api_export`` table maps its symbols; a user's class by its module and
registered name. Models and layers go through ``saving_lib``, which writes and reads
the same configs as ``.keras`` files hold.
"""

from __future__ import annotations

import functools
import importlib
import types
from typing import Any

import numpy as np

from kcompile.saving import object_registration as registration

PLAIN_TYPES = (str, int, float, bool)

# kcompile's public namespaces, as Keras names them (first match wins, as in Keras's
# table: ``keras.Sequential`` before ``keras.models.Sequential``).
_NAMESPACES = (
    ("keras", "kcompile"),
    ("keras.layers", "kcompile.layers"),
    ("keras.losses", "kcompile.losses"),
    ("keras.metrics", "kcompile.metrics"),
    ("keras.optimizers", "kcompile.optimizers"),
    ("keras.optimizers.schedules", "kcompile.optimizers.schedules"),
    ("keras.activations", "kcompile.activations"),
    ("keras.initializers", "kcompile.initializers"),
    ("keras.regularizers", "kcompile.regularizers"),
    ("keras.constraints", "kcompile.constraints"),
)

# Names a config may not call: they are not parts of a model (as Keras refuses them).
NON_MODELING_APIS = frozenset(
    {
        "keras.models.load_model",
        "keras.models.model_from_json",
        "keras.models.save_model",
        "keras.saving.deserialize_keras_object",
        "keras.saving.load_model",
        "keras.saving.load_weights",
        "keras.saving.register_keras_serializable",
        "keras.saving.save_model",
        "keras.saving.save_weights",
        "keras.saving.serialize_keras_object",
        "keras.utils.deserialize_keras_object",
        "keras.utils.get_file",
        "keras.utils.serialize_keras_object",
    }
)

# The modules of Keras's functions a config names as ``builtins`` (Keras 3 writes an
# activation function as {"module": "builtins", "class_name": "function", ...}).
_FUNCTION_MODULES = ("activations", "losses", "metrics", "initializers", "regularizers")


def _public_names(namespace: str) -> dict[str, Any]:
    try:
        module = importlib.import_module(namespace)
    except ImportError:
        return {}
    names = getattr(module, "__all__", None) or [n for n in dir(module) if n[:1] != "_"]
    out = {}
    for name in names:
        try:
            value = getattr(module, name)
        except (AttributeError, ImportError, NotImplementedError):
            continue
        if isinstance(value, type | types.FunctionType):
            out[name] = value
    return out


@functools.cache
def _symbol_table() -> tuple[dict[int, str], dict[str, Any]]:
    """(id of a public class or function -> its Keras name, Keras name -> the object)."""
    by_id: dict[int, str] = {}
    by_name: dict[str, Any] = {}
    for keras_ns, ours in _NAMESPACES:
        for name, value in _public_names(ours).items():
            by_id.setdefault(id(value), f"{keras_ns}.{name}")
            by_name[f"{keras_ns}.{name}"] = value
    return by_id, by_name


def public_name(obj: Any) -> str | None:
    """``keras.layers.Dense`` for kcompile's ``Dense``; None for what Keras does not export."""
    return _symbol_table()[0].get(id(obj))


def public_object(name: str) -> Any:
    return _symbol_table()[1].get(name)


def _is_ours(cls: type) -> bool:
    return cls.__module__.split(".")[0] == "kcompile"


# --- serialization ------------------------------------------------------------------------


def serialize_keras_object(obj: Any) -> Any:
    """Keras's: ``obj`` as a dict that ``deserialize_keras_object`` makes again."""
    if obj is None or isinstance(obj, PLAIN_TYPES):
        return obj
    if isinstance(obj, list | tuple):
        out = [serialize_keras_object(x) for x in obj]
        return tuple(out) if isinstance(obj, tuple) else out
    if isinstance(obj, dict):
        return serialize_dict(obj)
    if isinstance(obj, bytes):
        return {"class_name": "__bytes__", "config": {"value": obj.decode("utf-8")}}
    if isinstance(obj, slice):
        parts = {k: serialize_keras_object(getattr(obj, k)) for k in ("start", "stop", "step")}
        return {"class_name": "__slice__", "config": parts}
    if obj is Ellipsis:
        return {"class_name": "__ellipsis__", "config": {}}
    if type(obj).__module__ == np.__name__:
        if isinstance(obj, np.ndarray) and obj.ndim > 0:
            return {
                "class_name": "__numpy__",
                "config": {"value": obj.tolist(), "dtype": str(obj.dtype)},
            }
        return obj.item()
    layer = _layer_config(obj)
    if layer is not None:
        return layer
    if isinstance(obj, types.FunctionType):
        return _function_config(obj)
    return _object_config(obj)


def serialize_dict(obj: dict) -> dict:
    return {key: serialize_keras_object(value) for key, value in obj.items()}


def _function_config(fn: types.FunctionType) -> dict:
    if fn.__name__ == "<lambda>":
        raise NotImplementedError(
            "serialize_keras_object: a lambda cannot be serialized by kcompile (Keras writes "
            "its bytecode, which only a trusted load with safe_mode=False reads back); use "
            "a named function and register it with @keras.saving.register_keras_serializable()"
        )
    name = registration.get_registered_name(fn)
    return {
        "module": "builtins",
        "class_name": "function",
        "config": name,
        "registered_name": "function",
    }


def _object_config(obj: Any) -> dict:
    cls = type(obj)
    if not hasattr(obj, "get_config"):
        raise TypeError(
            f"Cannot serialize object {obj!r} of type {cls}. To be serializable, a class must "
            "implement the `get_config()` method."
        )
    config = obj.get_config()
    if not isinstance(config, dict):
        raise TypeError(
            f"The `get_config()` method of {obj!r} should return a dict, got {config!r}"
        )
    inner = serialize_dict(config)
    name = public_name(cls) if _is_ours(cls) else None
    if name is not None:
        module, _, class_name = name.rpartition(".")
        out = {"module": module, "class_name": class_name, "config": inner, "registered_name": None}
    else:
        out = {
            "module": None if cls.__module__ == "__main__" else cls.__module__,
            "class_name": cls.__name__,
            "config": inner,
            "registered_name": registration.get_registered_name(cls),
        }
    _add_build_and_compile_config(obj, out)
    return out


def _add_build_and_compile_config(obj: Any, config: dict) -> None:
    if hasattr(obj, "get_build_config"):
        build = obj.get_build_config()
        if build is not None:
            config["build_config"] = serialize_dict(build)
    if hasattr(obj, "get_compile_config"):
        compile_config = obj.get_compile_config()
        if compile_config:
            config["compile_config"] = serialize_dict(compile_config)


def _layer_config(obj: Any) -> dict | None:
    """A layer or model as Keras writes it (``saving_lib``'s configs); None otherwise."""
    from kcompile.layers.layer import Layer

    if not isinstance(obj, Layer):
        return None
    from kcompile.saving import saving_lib

    if isinstance(obj, registration.model_class("Model")):
        return saving_lib.model_config(obj)
    entry = saving_lib.layer_entry(obj)
    entry.pop("name", None)
    entry.pop("inbound_nodes", None)
    if entry.get("module") == "__main__":
        entry["module"] = None
    build = obj.get_build_config()
    if build is not None:
        entry["build_config"] = serialize_dict(build)
    return entry


# --- deserialization ----------------------------------------------------------------------


def deserialize_keras_object(
    config: Any, custom_objects: dict | None = None, safe_mode: bool = True, **kwargs: Any
) -> Any:
    """Keras's: the object a ``serialize_keras_object`` dict (kcompile's or Keras's)
    describes. ``custom_objects`` maps names to a user's classes and functions (as do
    ``custom_object_scope`` and the registry)."""
    module_objects = kwargs.pop("module_objects", None)
    if kwargs:
        raise TypeError(f"deserialize_keras_object: unexpected arguments {sorted(kwargs)}")
    custom_objects = {
        **(custom_objects or {}),
        **registration.scope_objects(),
        **registration.GLOBAL_CUSTOM_OBJECTS,
    }
    if config is None:
        return None
    if isinstance(config, str) and custom_objects.get(config) is not None:
        return custom_objects[config]
    if isinstance(config, list | tuple):
        return [deserialize_keras_object(x, custom_objects, safe_mode) for x in config]
    if module_objects is not None and isinstance(config, str | dict):
        found = _from_module_objects(config, module_objects, custom_objects)
        if found is not _MISSING:
            return found
    if isinstance(config, PLAIN_TYPES):
        return config
    if not isinstance(config, dict):
        raise TypeError(f"Could not parse config: {config!r}")
    if "class_name" not in config or "config" not in config:
        return {
            k: deserialize_keras_object(v, custom_objects, safe_mode) for k, v in config.items()
        }
    class_name = config["class_name"]
    inner = config["config"] if config["config"] is not None else {}
    special = _special_value(class_name, inner, custom_objects, safe_mode)
    if special is not _MISSING:
        return special
    if class_name == "function":
        if not isinstance(inner, str):
            raise TypeError(f"Expected 'config' to be a str for a function, got {config!r}")
        return _retrieve(inner, inner, config.get("module"), "function", config, custom_objects)
    if not isinstance(inner, dict):
        raise TypeError(f"Expected 'config' to be a dict for {class_name}, got {config!r}")
    registered = config.get("registered_name") or class_name
    cls = _retrieve(class_name, registered, config.get("module"), "class", config, custom_objects)
    if isinstance(cls, types.FunctionType):
        return cls
    with registration.CustomObjectScope(custom_objects):
        return _instantiate(cls, config, custom_objects)


_MISSING = object()


def _special_value(class_name: str, inner: Any, custom_objects: dict, safe_mode: bool) -> Any:
    if class_name == "__numpy__":
        return np.array(inner["value"], dtype=inner["dtype"])
    if class_name == "__tensor__":
        return np.array(inner["value"], dtype=inner["dtype"])
    if class_name == "__bytes__":
        return inner["value"].encode("utf-8")
    if class_name == "__ellipsis__":
        return Ellipsis
    if class_name == "__slice__":
        parts = [
            deserialize_keras_object(inner[k], custom_objects) for k in ("start", "stop", "step")
        ]
        return slice(*parts)
    if class_name == "__lambda__":
        if safe_mode:
            raise ValueError(
                "Requested the deserialization of a Python lambda. This carries a potential "
                "risk of arbitrary code execution and thus it is disallowed by default."
            )
        raise NotImplementedError(
            "deserialize_keras_object: kcompile does not load Python lambdas (Keras's "
            "marshalled bytecode); define a named function and register it"
        )
    if class_name == "__keras_tensor__":
        raise NotImplementedError(
            "deserialize_keras_object: a symbolic tensor is rebuilt as part of its model's "
            "config (model_from_json, Model.from_config), not on its own"
        )
    return _MISSING


def _from_module_objects(config: Any, module_objects: dict, custom_objects: dict) -> Any:
    """Keras's ``module_objects`` path (``losses.get``-style lookups by name)."""
    if isinstance(config, dict):
        name = config.get("class_name")
        if name in custom_objects or config.get("registered_name") in custom_objects:
            return _MISSING
        if name == "function":
            name = config.get("config")
        if name in module_objects:
            obj = module_objects[name]
            if isinstance(obj, types.FunctionType):
                return obj
            return _instantiate(obj, {"config": config.get("config") or {}}, custom_objects)
        return _MISSING
    if config in module_objects:
        obj = module_objects[config]
        return obj if isinstance(obj, types.FunctionType) else obj()
    return _MISSING


def _retrieve(
    name: str, registered: str, module: str | None, kind: str, full: dict, custom_objects: dict
) -> Any:
    """The class or function a config names: a user's (custom objects, the registry),
    else kcompile's by its public Keras name."""
    key = name if kind == "function" else registered
    found = registration.get_registered_object(key, custom_objects)
    if found is not None:
        return found
    if module and (module == "keras" or module.startswith("keras.")):
        api_name = f"{module}.{name}"
        if api_name in NON_MODELING_APIS:
            raise ValueError(
                f"Cannot deserialize `{api_name}` because it is not a modeling function. "
                "Non-modeling APIs are disallowed during deserialization for security."
            )
        found = public_object(api_name)
        if found is None and name in registration._MODEL_CLASSES:
            found = registration.model_class(name)
        if found is None and module.startswith("keras.src"):
            found = _by_class_name(name)
        if found is not None:
            return found
        raise NotImplementedError(
            f"deserialize_keras_object: {api_name} is not in kcompile yet (config: {full})"
        )
    if kind == "function" and module == "builtins":
        for namespace in _FUNCTION_MODULES:
            found = public_object(f"keras.{namespace}.{name}")
            if found is not None:
                return found
        suffix = f">{name}"
        for custom_name, obj in custom_objects.items():
            if custom_name.endswith(suffix):
                return obj
    if module is None or not module.startswith("keras"):
        found = _by_class_name(name) if module is None else None
        if found is not None and _is_ours(found):
            return found
    raise TypeError(
        f"Could not locate {kind} '{name}'. Make sure custom classes and functions are "
        "decorated with `@keras.saving.register_keras_serializable()`, or pass them in "
        f"custom_objects={{...}}. Full object config: {full}"
    )


def _by_class_name(name: str) -> Any:
    """kcompile's public class named ``name`` in any namespace (Keras's configs name some
    classes by their private module, ``keras.src.models.functional``)."""
    for keras_name, obj in _symbol_table()[1].items():
        if keras_name.rpartition(".")[2] == name and isinstance(obj, type):
            return obj
    return None


def _instantiate(cls: Any, config: dict, custom_objects: dict) -> Any:
    inner = config["config"]
    from kcompile.layers.layer import Layer

    if isinstance(cls, type) and issubclass(cls, Layer):
        return _layer_or_model(cls, config, custom_objects)
    if _is_optimizer(cls):
        return optimizer_from_config(cls, inner)
    inner = {k: deserialize_keras_object(v, custom_objects) for k, v in inner.items()}
    from_config = getattr(cls, "from_config", None)
    try:
        return from_config(inner) if from_config is not None else cls(**inner)
    except TypeError as e:
        raise TypeError(
            f"{cls} could not be deserialized properly. Please ensure that components that "
            "are Python object instances (layers, models, etc.) returned by `get_config()` "
            "are explicitly deserialized in the model's `from_config()` method."
            f"\n\nconfig={config}.\n\nException encountered: {e}"
        ) from None


def _is_optimizer(cls: Any) -> bool:
    return (
        isinstance(cls, type)
        and any(k.__name__ == "Optimizer" for k in cls.__mro__[1:])
        and (_is_ours(cls))
    )


def optimizer_from_config(cls: type, config: dict) -> Any:
    """A kcompile optimizer from Keras's optimizer config, unset options dropped."""
    options = {k: v for k, v in config.items() if v is not None or k == "weight_decay"}
    return cls(**options)


def _layer_or_model(cls: type, config: dict, custom_objects: dict) -> Any:
    """A layer or model from Keras's config: kcompile's own classes through saving_lib
    (which reads the keys Keras writes), a user's through its ``from_config``; then its
    ``build_config`` and ``compile_config``, as Keras's deserialization applies them."""
    from kcompile.saving import saving_lib

    Model = registration.model_class("Model")
    is_model = issubclass(cls, Model)
    if is_model and _is_ours(cls):
        instance = saving_lib.model_from_config(
            {**config, "class_name": cls.__name__ if cls.__name__ != "Model" else "Functional"},
            custom_objects,
        )
    elif is_model:
        instance = (
            cls.from_config(dict(config["config"]), custom_objects=custom_objects)
            if (_takes_custom_objects(cls))
            else cls.from_config(dict(config["config"]))
        )
    elif _is_ours(cls):
        instance = saving_lib.layer_from_keras(
            {**config, "module": config.get("module") or "keras.layers", "registered_name": None},
            custom_objects,
        )
    else:
        instance = cls.from_config(dict(config["config"]))
    build = config.get("build_config")
    if build and not instance.built:
        instance.build_from_config(build)
    compile_config = config.get("compile_config")
    if compile_config and hasattr(instance, "compile_from_config"):
        instance.compile_from_config(compile_config)
    return instance


def _takes_custom_objects(cls: type) -> bool:
    import inspect

    try:
        return "custom_objects" in inspect.signature(cls.from_config).parameters
    except (TypeError, ValueError):
        return False


def deserialize_layer(config: dict, custom_objects: dict | None = None) -> Any:
    """``keras.layers.deserialize``: a layer from its config; refuses anything else."""
    from kcompile.layers.layer import Layer

    obj = deserialize_keras_object(config, custom_objects=custom_objects)
    if not isinstance(obj, Layer):
        raise ValueError(
            "`keras.layers.deserialize` was passed a `config` object that is not a "
            f"`keras.layers.Layer`. Received: {config}"
        )
    return obj


def serialize_layer(layer: Any) -> dict:
    """``keras.layers.serialize``: the layer's config in Keras's dict form."""
    return serialize_keras_object(layer)
