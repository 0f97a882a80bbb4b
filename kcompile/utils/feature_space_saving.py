"""A ``keras.utils.FeatureSpace`` in Keras's configs and ``.keras`` files.

Keras serializes a space's features with their preprocessing layers; an adapted lookup is
written without its vocabulary, which the file keeps as an asset
(``assets/preprocessors/<layer>/vocabulary.txt``), and a Normalization's mean, variance
and count are its weights (``preprocessors/normalization/vars``). The file's groups follow
Keras's saving walk of the space's ``concat``, ``crossers``, ``one_hot_encoders`` and
``preprocessors``. Files written here load in Keras, and Keras's load here.

Keras's configs of the lookup, hashing and discretization layers carry keys kcompile's
saving library does not take (``vocabulary_size``, ``oov_method``, a dtype policy for
Hashing, Discretization's ``num_bins`` beside its ``bin_boundaries``), and it writes no
host layer: the preprocessors are read and written here.
"""

from __future__ import annotations

import io
import json
import os
import time
import zipfile
from typing import TYPE_CHECKING, Any

import numpy as np

from kcompile import layers
from kcompile.backend.session import snake_case
from kcompile.layers.preprocessing.index_lookup import IndexLookup
from kcompile.utils.atomic import atomic_write
from kcompile.utils.feature_space_layers import TFDIdentity

if TYPE_CHECKING:
    from kcompile.utils.feature_space import FeatureSpace

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


def _is_vocabulary_layer(layer: Any) -> bool:
    return isinstance(layer, IndexLookup | layers.TextVectorization)


def preprocessor_entry(layer: Any) -> dict:
    """A preprocessing layer as Keras serializes it in a FeatureSpace: an adapted lookup
    without its vocabulary (Keras keeps that in the file's assets)."""
    from kcompile.saving.serialization_lib import serialize_keras_object

    build = layer.get_build_config()
    if isinstance(layer, TFDIdentity):
        entry = keras_entry(MODULE, "TFDIdentity", layer.get_config(), "TFDIdentity")
    elif getattr(layer, "host", False) and type(layer).__module__.startswith("kcompile."):
        config = layer.get_config()
        if _is_vocabulary_layer(layer) and not has_input_vocabulary(layer):
            config = {**config, "vocabulary": None, "vocabulary_size": layer.vocabulary_size()}
        entry = keras_entry("keras.layers", type(layer).__name__, config, None)
    else:
        return serialize_keras_object(layer)
    if build is not None:
        entry["build_config"] = build
    return json.loads(json.dumps(entry))  # tuples as lists, as the file holds them


def _policy_name(dtype: Any) -> Any:
    """A dtype policy as Keras writes it in a config ({"class_name": "DTypePolicy", ...})
    as its name."""
    if isinstance(dtype, dict) and isinstance(dtype.get("config"), dict):
        return dtype["config"].get("name", dtype)
    return dtype


def _keras_arguments(name: str, config: dict) -> dict:
    """Keras's config of a lookup, hashing or discretization layer as the arguments of
    kcompile's: the vocabulary size (the vocabulary says it) dropped, the default OOV
    hashing checked, the dtype policy as its name."""
    config = {**config, "dtype": _policy_name(config.get("dtype"))}
    config.pop("vocabulary_size", None)
    oov_method, salt = config.pop("oov_method", "floormod"), config.pop("salt", None)
    if name in ("IntegerLookup", "StringLookup") and (oov_method != "floormod" or salt):
        raise NotImplementedError(
            f"{name} '{config.get('name')}': oov_method={oov_method!r}, salt={salt!r}; "
            "kcompile's lookups hash OOV values with 'floormod' and no salt"
        )
    if name == "Hashing":
        config["salt"] = salt
    return config


_READ_HERE = ("IntegerLookup", "StringLookup", "Hashing", "Discretization")


def preprocessor_from_entry(entry: dict) -> Any:
    """The preprocessing layer of a serialized Feature (Keras's or kcompile's), built
    from its build config."""
    from kcompile.saving.serialization_lib import deserialize_keras_object

    name, module = entry.get("class_name"), str(entry.get("module") or "")
    config = dict(entry.get("config") or {})
    if name == "TFDIdentity":
        layer = TFDIdentity.from_config(config)
    elif module == "keras.layers" and name in _READ_HERE:
        layer = getattr(layers, name).from_config(_keras_arguments(name, config))
    else:
        return deserialize_keras_object(entry)
    if entry.get("build_config"):
        layer.build_from_config(entry["build_config"])
    return layer


# --- .keras files ------------------------------------------------------------------------


def saved_layers(space: FeatureSpace) -> list[tuple[str, Any]]:
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


def _vocabulary_text(layer: Any) -> str | None:
    """An adapted lookup's vocabulary file (one token a line), None for other layers."""
    if not _is_vocabulary_layer(layer) or has_input_vocabulary(layer):
        return None
    lookup = getattr(layer, "_lookup", layer)
    if lookup.output_mode == "tf_idf":
        raise NotImplementedError(
            f"FeatureSpace.save: layer '{layer.name}' is a tf_idf lookup, whose IDF weights "
            "kcompile does not write to .keras files yet"
        )
    return "\n".join(str(t) for t in layer.get_vocabulary())


def save_feature_space(space: FeatureSpace, filepath: Any, overwrite: bool = True) -> None:
    """Keras's ``.keras`` file of a FeatureSpace: metadata, config, weights and the
    lookups' vocabularies as assets; written atomically."""
    from kcompile.saving.saving_lib import KERAS_VERSION, h5py_module, write_array

    filepath = os.fspath(filepath)
    if not filepath.endswith(".keras"):
        raise ValueError(
            "Invalid `filepath` argument: expected a `.keras` extension. "
            f"Received: filepath={filepath}"
        )
    if not overwrite and os.path.exists(filepath):
        raise FileExistsError(f"{filepath} exists and overwrite=False")
    config = keras_entry("keras.utils", "FeatureSpace", space.get_config(), None)
    config["build_config"] = space.get_build_config()
    assets = {}
    weights = io.BytesIO()
    with h5py_module().File(weights, "w") as f:
        f.require_group("vars").attrs["name"] = space.name
        for path, layer in saved_layers(space):
            group = f.require_group(f"{path}/vars")
            group.attrs["name"] = layer.name
            for i, variable in enumerate(layer.weights):
                write_array(group, str(i), variable.numpy())
            text = _vocabulary_text(layer)
            if text is not None:
                assets[f"assets/{path}/vocabulary.txt"] = text
    metadata = {"keras_version": KERAS_VERSION, "date_saved": time.strftime("%Y-%m-%d@%H:%M:%S")}

    def write(out) -> None:
        with zipfile.ZipFile(out, "w") as z:
            z.writestr("metadata.json", json.dumps(metadata))
            z.writestr("config.json", json.dumps(config))
            z.writestr("model.weights.h5", weights.getvalue())
            for name, text in assets.items():
                z.writestr(name, text)

    atomic_write(filepath, write)


def load_feature_space(filepath: Any) -> FeatureSpace:
    """The FeatureSpace of a ``.keras`` file that Keras's or kcompile's ``save`` wrote."""
    from kcompile.saving.saving_lib import h5py_module
    from kcompile.utils.feature_space import FeatureSpace

    filepath = os.fspath(filepath)
    try:
        with zipfile.ZipFile(filepath) as z:
            config = json.loads(z.read("config.json"))
            weights = io.BytesIO(z.read("model.weights.h5"))
            assets = {n: z.read(n).decode("utf-8") for n in z.namelist() if n.startswith("assets/")}
    except (zipfile.BadZipFile, KeyError, OSError, json.JSONDecodeError) as e:
        raise ValueError(f"{filepath}: not a readable .keras file ({e})") from None
    if config.get("class_name") != "FeatureSpace":
        raise ValueError(f"{filepath}: holds a {config.get('class_name')}, expected a FeatureSpace")
    space = FeatureSpace.from_config(config["config"])
    space.build_from_config(config.get("build_config") or {})
    with h5py_module().File(weights, "r") as f:
        for path, layer in saved_layers(space):
            group = f.get(f"{path}/vars")
            arrays = [np.asarray(group[str(i)]) for i in range(len(group))] if group else []
            if len(arrays) != len(layer.weights):
                raise ValueError(
                    f"{filepath}: {path} holds {len(arrays)} arrays; layer '{layer.name}' "
                    f"({type(layer).__name__}) has {len(layer.weights)} weights"
                )
            for variable, array in zip(layer.weights, arrays):
                variable.assign(array)
            text = assets.get(f"assets/{path}/vocabulary.txt")
            if text is not None:
                layer.set_vocabulary(text.split("\n"))
    return space
