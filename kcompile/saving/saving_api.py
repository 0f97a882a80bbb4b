"""``keras.saving``'s functions of whole models and weights: ``save_model`` and
``load_model`` (Keras 3's ``.keras`` or kcompile's ``.kcmodel``), ``save_weights`` and
``load_weights`` (``.weights.h5`` or ``.weights.npz``), and ``model_from_json``."""

from __future__ import annotations

import json
import os
from typing import Any

from kcompile.saving import kcmodel
from kcompile.utils.traceback_utils import filter_traceback


@filter_traceback
def save_model(model: Any, filepath: str, overwrite: bool = True, zipped: Any = None, **kwargs):
    """Keras's: ``model.save(filepath)``; the name says the format (``.keras`` or
    ``.kcmodel``)."""
    if zipped is False:
        raise NotImplementedError(
            "save_model(zipped=False): Keras's unzipped .keras folder is not written by "
            "kcompile; save the zipped .keras file"
        )
    if kwargs:
        raise TypeError(f"save_model: unexpected arguments {sorted(kwargs)}")
    model.save(filepath, overwrite=overwrite)


@filter_traceback
def load_model(
    filepath: str, custom_objects: dict | None = None, compile: bool = True, safe_mode: bool = True
):
    """Keras's: a model from a ``.keras`` or ``.kcmodel`` file."""
    return kcmodel.load_model(filepath, custom_objects=custom_objects, compile=compile)


@filter_traceback
def save_weights(model: Any, filepath: str, overwrite: bool = True, max_shard_size: Any = None):
    """Keras's: ``model.save_weights(filepath)``."""
    if max_shard_size is not None:
        raise NotImplementedError(
            "save_weights(max_shard_size=...): sharded weights files are not written by "
            "kcompile; save one .weights.h5 file"
        )
    model.save_weights(filepath, overwrite=overwrite)


@filter_traceback
def load_weights(model: Any, filepath: str, skip_mismatch: bool = False, **kwargs: Any) -> None:
    """Keras's: ``model.load_weights(filepath)``."""
    if skip_mismatch:
        raise NotImplementedError(
            "load_weights(skip_mismatch=True): kcompile loads every weight or refuses the file"
        )
    if kwargs:
        raise TypeError(f"load_weights: unexpected arguments {sorted(kwargs)}")
    model.load_weights(os.fspath(filepath))


@filter_traceback
def model_from_json(json_string: str, custom_objects: dict | None = None):
    """Keras's: a model from ``to_json``'s string (kcompile's or real Keras's)."""
    from kcompile.saving.serialization_lib import deserialize_keras_object

    return deserialize_keras_object(json.loads(json_string), custom_objects=custom_objects)
