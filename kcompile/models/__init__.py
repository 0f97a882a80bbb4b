"""Models: the functional ``Model`` and ``Sequential``; ``load_model``."""

from kcompile.models.model import Model
from kcompile.models.sequential import Sequential
from kcompile.saving import load_model

__all__ = ["Model", "Sequential", "load_model"]
