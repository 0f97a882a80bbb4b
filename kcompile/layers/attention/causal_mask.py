"""The causal mask both attention layers apply with ``use_causal_mask=True``."""

from __future__ import annotations

from kcompile import ops


def causal_mask(queries: int, keys: int):
    """[1, T, S]: query t attends to keys 0..t."""
    return ops.tril(ops.ones((1, queries, keys), "float32")) > 0.5
