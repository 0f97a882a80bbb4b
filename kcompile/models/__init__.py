"""Models: the functional ``Model`` and ``Sequential``."""

from kcompile.models.model import Model
from kcompile.models.sequential import Sequential

__all__ = ["Model", "Sequential"]
