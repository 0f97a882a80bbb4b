"""Keras's ``Minimum`` layer and ``layers.minimum``."""

from __future__ import annotations

from kcompile.ir import build as B
from kcompile.layers.merging.base_merge import Extremum, merge_function


class Minimum(Extremum):
    op = staticmethod(B.minimum)


minimum = merge_function(Minimum, "Keras's ``layers.minimum(inputs)``.")
