"""Embedding: rows of a table picked by integer ids; the gradient is a scatter-add."""

from __future__ import annotations

from typing import Any

from kcompile import initializers
from kcompile.ir import DType
from kcompile.ir import build as B
from kcompile.layers.layer import Layer


class Embedding(Layer):
    def __init__(
        self,
        input_dim: int,
        output_dim: int,
        embeddings_initializer: Any = None,
        embeddings_regularizer: Any = None,
        mask_zero: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.embeddings_regularizer = embeddings_regularizer
        self.mask_zero = bool(mask_zero)
        self.input_dim, self.output_dim = int(input_dim), int(output_dim)
        self.embeddings_initializer = embeddings_initializer or initializers.RandomUniform(
            -0.05, 0.05
        )

    def build(self, input_shape):
        self.embeddings = self.add_weight(
            (self.input_dim, self.output_dim),
            self.embeddings_initializer,
            name="embeddings",
            regularizer=self.embeddings_regularizer,
        )

    def call(self, ctx, ids):
        return B.take(ctx.weight(self.embeddings), B.cast(ids, DType.i32))

    def compute_mask(self, inputs, previous_mask):
        """With ``mask_zero``, id 0 is padding: the mask is ``ids != 0``."""
        return B.ne(inputs, B.const(inputs.graph, 0, inputs.dtype)) if self.mask_zero else None

    def get_config(self):
        return {
            **super().get_config(),
            "input_dim": self.input_dim,
            "output_dim": self.output_dim,
            "mask_zero": self.mask_zero,
        }
