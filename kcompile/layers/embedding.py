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
        if mask_zero:
            raise NotImplementedError(f"Embedding '{self.name}': mask_zero is not supported")
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

    def get_config(self):
        return {**super().get_config(), "input_dim": self.input_dim, "output_dim": self.output_dim}
