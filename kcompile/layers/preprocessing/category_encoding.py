"""Keras's ``CategoryEncoding``: integer ids to one-hot, multi-hot or count vectors of
``num_tokens`` entries, in the compiled step (as Keras's JAX backend encodes them: a
multi-hot or count input of rank 2 is one sample per row, of rank 1 one sample)."""

from __future__ import annotations

from typing import Any

import numpy as np

from kcompile import ops
from kcompile.layers.layer import Layer


def arrays_for_lists(args: tuple, kwargs: dict) -> tuple[tuple, dict]:
    """Python lists of numbers as arrays, as Keras's preprocessing layers take them
    (``layer([3, 2, 0, 1])``); tensors and arrays as they are."""

    def convert(x):
        return np.asarray(x) if isinstance(x, list | tuple) else x

    return tuple(convert(a) for a in args), {k: convert(v) for k, v in kwargs.items()}


def encode_categorical(inputs, output_mode: str, depth: int, count_weights=None):
    """Keras's ``numerical_utils.encode_categorical_inputs`` (its JAX path) in keras.ops."""
    if output_mode == "int":
        return inputs
    if len(inputs.shape) == 0:
        inputs = ops.expand_dims(inputs, -1)
    if output_mode == "multi_hot":
        return ops.multi_hot(inputs, depth)
    if output_mode == "one_hot":
        if len(inputs.shape) > 1 and inputs.shape[-1] == 1:
            inputs = ops.squeeze(inputs, -1)
        return ops.one_hot(inputs, depth)
    reduction_axis = 1 if len(inputs.shape) > 1 else 0
    hot = ops.one_hot(inputs, depth)
    if count_weights is not None:
        hot = hot * ops.expand_dims(ops.cast(count_weights, "float32"), -1)
    return ops.sum(hot, axis=reduction_axis)


class CategoryEncoding(Layer):
    def __init__(
        self,
        num_tokens: int | None = None,
        output_mode: str = "multi_hot",
        sparse: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if output_mode == "binary":  # Keras's deprecated name
            output_mode = "multi_hot"
        if output_mode not in ("count", "one_hot", "multi_hot"):
            raise ValueError(f"Unknown arg for output_mode: {output_mode}")
        if num_tokens is None:
            raise ValueError(
                "num_tokens must be set to use this layer. If the number of tokens is not "
                "known beforehand, use the IntegerLookup layer instead."
            )
        if num_tokens < 1:
            raise ValueError(f"`num_tokens` must be >= 1. Received: num_tokens={num_tokens}.")
        if sparse:
            raise NotImplementedError(
                f"CategoryEncoding '{self.name}': sparse outputs are not supported (kcompile's "
                "tensors are dense)"
            )
        self.num_tokens = num_tokens
        self.output_mode = output_mode
        self.sparse = sparse

    def __call__(self, *args, **kwargs):
        args, kwargs = arrays_for_lists(args, kwargs)
        return super().__call__(*args, **kwargs)

    def call(self, inputs, count_weights=None):
        if count_weights is not None and self.output_mode != "count":
            raise ValueError(
                "`count_weights` is not used when `output_mode` is not `'count'`. "
                f"Received `count_weights={count_weights}`."
            )
        return encode_categorical(inputs, self.output_mode, self.num_tokens, count_weights)

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "num_tokens": self.num_tokens,
            "output_mode": self.output_mode,
        }
