"""Models: the functional ``Model`` and ``Sequential``; ``load_model``."""

from kcompile.lazy import lazy_attributes

__getattr__ = lazy_attributes(
    __name__,
    {
        "Model": "kcompile.models.model:Model",
        "Sequential": "kcompile.models.sequential:Sequential",
        "load_model": "kcompile.saving:load_model",
    },
)

__all__ = ["Model", "Sequential", "load_model"]
