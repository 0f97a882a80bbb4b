"""Keras's ``Add`` layer and ``layers.add``."""

from __future__ import annotations

from functools import reduce

from kcompile.ir import build as B
from kcompile.layers.merging.base_merge import Merge, merge_function


class Add(Merge):
    def merge(self, inputs):
        return reduce(B.add, inputs)


add = merge_function(Add, "Keras's ``layers.add(inputs)``: an ``Add`` layer called on them.")
