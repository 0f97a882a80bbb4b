"""``keras.saving``: whole-model files (kcompile's ``.kcmodel`` and Keras 3's ``.keras``)
and weights files, and Keras's registry of custom objects."""

from kcompile.saving.kcmodel import load_model, model_config, model_from_config, save_model
from kcompile.saving.object_registration import (
    get_registered_name,
    get_registered_object,
    register_keras_serializable,
)

__all__ = [
    "get_registered_name",
    "get_registered_object",
    "load_model",
    "model_config",
    "model_from_config",
    "register_keras_serializable",
    "save_model",
]
