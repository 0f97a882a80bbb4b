"""The causal mask both attention layers apply with ``use_causal_mask=True``, and
MultiHeadAttention's ``sliding_window`` band."""

from __future__ import annotations

from kcompile import ops


def causal_mask(queries: int, keys: int):
    """[1, T, S]: query t attends to keys 0..t."""
    return ops.tril(ops.ones((1, queries, keys), "float32")) > 0.5


def band_mask(queries: int, keys: int, window: int):
    """[1, T, S]: query t attends to keys within ``window - 1`` of t (Keras's
    ``_compute_sliding_window_mask``)."""
    rows = ops.reshape(ops.arange(queries, dtype="int32"), (1, queries, 1))
    cols = ops.reshape(ops.arange(keys, dtype="int32"), (1, 1, keys))
    return ops.less(ops.abs(rows - cols), window)
