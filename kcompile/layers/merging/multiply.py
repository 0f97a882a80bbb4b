"""Keras's ``Multiply`` layer and ``layers.multiply``."""

from __future__ import annotations

from functools import reduce

from kcompile.ir import build as B
from kcompile.layers.merging.base_merge import MaskedMerge, merge_function


class Multiply(MaskedMerge):
    def merge(self, inputs):
        return reduce(B.mul, inputs)

    def merge_masked(self, inputs, masks):
        """Keras's: masked values count as 1; when every input has a mask, the product is
        0 where none keeps the value, and the mask is any of theirs."""
        every = all(m is not None for m in masks)
        out = out_mask = None
        for x, m in zip(inputs, masks):
            if m is not None:
                x = B.select(m, x, 1.0)
                if every:
                    out_mask = m if out_mask is None else B.logical_or(out_mask, m)
            out = x if out is None else out * x
        if every:
            out = B.select(out_mask, out, 0.0)
        return out, out_mask


multiply = merge_function(Multiply, "Keras's ``layers.multiply(inputs)``.")
