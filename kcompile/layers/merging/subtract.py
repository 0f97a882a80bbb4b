"""Keras's ``Subtract`` layer and ``layers.subtract``."""

from __future__ import annotations

from kcompile.layers.merging.base_merge import Merge, merge_function


class Subtract(Merge):
    def merge(self, inputs):
        if len(inputs) != 2:
            raise ValueError(f"Subtract '{self.name}' needs exactly two inputs")
        return inputs[0] - inputs[1]


subtract = merge_function(Subtract, "Keras's ``layers.subtract(inputs)``.")
