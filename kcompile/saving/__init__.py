"""``keras.saving``: whole-model files (kcompile's ``.kcmodel`` and Keras 3's ``.keras``) and weights files."""

from kcompile.saving.kcmodel import (
    get_registered_name,
    get_registered_object,
    load_model,
    model_config,
    model_from_config,
    register_keras_serializable,
    save_model,
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
