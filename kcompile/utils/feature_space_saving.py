"""A ``keras.utils.FeatureSpace`` in Keras's configs and ``.keras`` files.

Keras serializes a space's features with their preprocessing layers, an adapted lookup
without its vocabulary (its ``keras_config``): the file keeps that as an asset, and a
Normalization's mean, variance and count as its weights. The saving library writes and
reads the file (``saving_lib.save_keras``/``load_keras``, which ``load_model`` calls); the
layers' paths are those of Keras's saving walk of the space's ``concat``, ``crossers``,
``one_hot_encoders`` and ``preprocessors`` (``saved_layers``).
"""

from __future__ import annotations

import json
import os
from typing import Any

from kcompile.backend.session import snake_case
from kcompile.utils.feature_space_layers import TFDIdentity

# (A FeatureSpace is typed Any here: its module imports this one.)

MODULE = "keras.src.layers.preprocessing.feature_space"  # where Keras's classes live


def keras_entry(module: str, class_name: str, config: dict, registered: str | None) -> dict:
    """An object as Keras's ``serialize_keras_object`` writes it."""
    return {
        "module": module,
        "class_name": class_name,
        "config": config,
        "registered_name": registered,
    }


def has_input_vocabulary(layer: Any) -> bool:
    lookup = getattr(layer, "_lookup", layer)
    return bool(getattr(lookup, "_has_input_vocabulary", False))


def preprocessor_entry(layer: Any) -> dict:
    """A preprocessing layer as Keras serializes it in a FeatureSpace: a lookup's config
    as Keras writes it (``keras_config``: an adapted vocabulary left to the assets)."""
    from kcompile.saving.serialization_lib import serialize_keras_object

    build = layer.get_build_config()
    if isinstance(layer, TFDIdentity):
        entry = keras_entry(MODULE, "TFDIdentity", layer.get_config(), "TFDIdentity")
    elif getattr(layer, "host", False) and type(layer).__module__.startswith("kcompile."):
        config = getattr(layer, "keras_config", layer.get_config)()
        entry = keras_entry("keras.layers", type(layer).__name__, config, None)
    else:
        return serialize_keras_object(layer)
    if build is not None:
        entry["build_config"] = build
    return json.loads(json.dumps(entry))  # tuples as lists, as the file holds them


def preprocessor_from_entry(entry: dict) -> Any:
    """The preprocessing layer of a serialized Feature (Keras's or kcompile's), built
    from its build config."""
    from kcompile.saving.saving_lib import layer_from_keras
    from kcompile.saving.serialization_lib import deserialize_keras_object

    module = str(entry.get("module") or "")
    if entry.get("class_name") == "TFDIdentity":
        layer = TFDIdentity.from_config(dict(entry.get("config") or {}))
    elif module == "keras.layers":
        layer = layer_from_keras(entry)
    else:
        return deserialize_keras_object(entry)
    if entry.get("build_config"):
        layer.build_from_config(entry["build_config"])
    return layer


# --- .keras files ------------------------------------------------------------------------


def saved_layers(space: Any) -> list[tuple[str, Any]]:
    """(path, layer) of each layer Keras's saving walk writes: ``concat``, then each
    layer of ``crossers``, ``one_hot_encoders`` and ``preprocessors`` under its class in
    snake case, numbered within its dict."""
    out = [("concat", space.concat)] if space.concat is not None else []
    for attribute in ("crossers", "one_hot_encoders", "preprocessors"):
        used: dict[str, int] = {}
        for layer in getattr(space, attribute).values():
            base = snake_case(type(layer).__name__)
            used[base] = used.get(base, -1) + 1
            out.append((f"{attribute}/{base}" + (f"_{used[base]}" if used[base] else ""), layer))
    return out


def save_feature_space(space: Any, filepath: Any, overwrite: bool = True) -> None:
    """Keras's ``.keras`` file of a FeatureSpace (``saving_lib.save_keras``)."""
    from kcompile.saving.saving_lib import save_keras

    filepath = os.fspath(filepath)
    if not filepath.endswith(".keras"):
        raise ValueError(
            "Invalid `filepath` argument: expected a `.keras` extension. "
            f"Received: filepath={filepath}"
        )
    if not overwrite and os.path.exists(filepath):
        raise FileExistsError(f"{filepath} exists and overwrite=False")
    save_keras(space, filepath)


def load_feature_space(filepath: Any) -> Any:
    """The FeatureSpace of a ``.keras`` file that Keras's or kcompile's ``save`` wrote."""
    from kcompile.saving.saving_lib import is_feature_space, load_keras

    filepath = os.fspath(filepath)
    space = load_keras(filepath, compile=False)
    if not is_feature_space(space):
        raise ValueError(f"{filepath}: holds a {type(space).__name__}, expected a FeatureSpace")
    return space
