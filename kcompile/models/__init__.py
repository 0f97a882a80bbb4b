"""Models: the functional ``Model`` and ``Sequential``; ``load_model``, ``save_model``,
``clone_model`` and ``model_from_json``."""

from kcompile.utils.lazy import lazy_attributes

__getattr__ = lazy_attributes(
    __name__,
    {
        "Model": "kcompile.models.model:Model",
        "Sequential": "kcompile.models.sequential:Sequential",
        "clone_model": "kcompile.models.cloning:clone_model",
        "load_model": "kcompile.saving.saving_api:load_model",
        "model_from_json": "kcompile.saving.saving_api:model_from_json",
        "save_model": "kcompile.saving.saving_api:save_model",
    },
)

__all__ = ["Model", "Sequential", "clone_model", "load_model", "model_from_json", "save_model"]
