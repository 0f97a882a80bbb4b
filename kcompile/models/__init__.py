"""Models: the functional ``Model`` and ``Sequential``; ``load_model``."""

from kcompile.utils.lazy import lazy_attributes

__getattr__ = lazy_attributes(
    __name__,
    {
        "Model": "kcompile.models.model:Model",
        "Sequential": "kcompile.models.sequential:Sequential",
        "load_model": "kcompile.saving.kcmodel:load_model",
    },
)

__all__ = ["Model", "Sequential", "load_model"]
