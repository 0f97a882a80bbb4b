"""Graph -> Graph transforms. ``passes`` imports only ``ir``."""

from passes.autodiff import append_gradients, differentiate
from passes.dce import eliminate_dead_code

__all__ = ["append_gradients", "differentiate", "eliminate_dead_code"]
