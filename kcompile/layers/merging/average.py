"""Keras's ``Average`` layer and ``layers.average``."""

from __future__ import annotations

from functools import reduce

from kcompile.ir import build as B
from kcompile.layers.merging.base_merge import Merge, merge_function


class Average(Merge):
    def merge(self, inputs):
        return reduce(B.add, inputs) * (1.0 / len(inputs))


average = merge_function(Average, "Keras's ``layers.average(inputs)``.")
