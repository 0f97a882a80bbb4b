"""Keras's ``Maximum`` layer and ``layers.maximum``."""

from __future__ import annotations

from kcompile.ir import build as B
from kcompile.layers.merging.base_merge import Extremum, merge_function


class Maximum(Extremum):
    op = staticmethod(B.maximum)


maximum = merge_function(Maximum, "Keras's ``layers.maximum(inputs)``.")
