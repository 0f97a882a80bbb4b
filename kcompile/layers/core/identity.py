"""Keras's ``Identity``: a placeholder layer that returns its inputs (and their mask)."""

from __future__ import annotations

from typing import Any

from kcompile.layers.layer import Layer


class Identity(Layer):
    propagates_mask = True

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)

    def call(self, ctx, x):
        return x
