"""``keras.saving``: whole-model files (kcompile's ``.kcmodel`` and Keras 3's ``.keras``),
weights files and their editor, Keras's object serialization and its registry of custom
objects."""

from kcompile.saving.file_editor import KerasFileEditor
from kcompile.saving.kcmodel import model_config, model_from_config
from kcompile.saving.object_registration import (
    CustomObjectScope,
    custom_object_scope,
    get_custom_objects,
    get_registered_name,
    get_registered_object,
    register_keras_serializable,
)
from kcompile.saving.saving_api import (
    load_model,
    load_weights,
    save_model,
    save_weights,
)
from kcompile.saving.serialization_lib import deserialize_keras_object, serialize_keras_object
from kcompile.utils.unoffered import refuse

__all__ = [
    "CustomObjectScope",
    "KerasFileEditor",
    "custom_object_scope",
    "deserialize_keras_object",
    "get_custom_objects",
    "get_registered_name",
    "get_registered_object",
    "load_model",
    "load_weights",
    "model_config",
    "model_from_config",
    "register_keras_serializable",
    "save_model",
    "save_weights",
    "serialize_keras_object",
]


def __getattr__(name: str):
    refuse("saving", name)
