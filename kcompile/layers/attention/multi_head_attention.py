"""Keras's ``MultiHeadAttention``, with Keras's weights, masks and numbers.

Written with ``keras.ops`` like a user's layer, so it is traced into the step. As Keras's,
it holds four EinsumDense layers, the projections (so ``model.quantize`` and LoRA reach
them as Keras's do), and computes the scores and their weighted sum itself (einsums that
lower to ``batch_matmul``). Weight names and shapes are Keras's (``mha/query/kernel`` of
shape ``(dim, heads, key_dim)``, ...), in Keras's order, so weights move between the two.
"""

from __future__ import annotations

import math
from typing import Any

from kcompile import ops, regularizers
from kcompile import random as krandom
from kcompile.layers.activations.softmax import Softmax
from kcompile.layers.attention.causal_mask import band_mask, causal_mask
from kcompile.layers.attention.projections import projection
from kcompile.layers.layer import Layer
from kcompile.layers.regularization.dropout import Dropout
from kcompile.layers.weight_arguments import set_weight_arguments, weight_config
from kcompile.utils.config_serialization import serialize_optional

# Keras's masked-softmax fill for float32 (keras.layers.Softmax).
_SOFTMAX_MASKED = -1e9


def _masked_softmax(scores, mask):
    """keras.layers.Softmax with a mask: masked scores become -1e9 before the softmax
    and 0 after it (so a row with nothing to attend to is all zeros)."""
    if mask is None:
        return ops.softmax(scores, axis=-1)
    probs = ops.softmax(ops.where(mask, scores, _SOFTMAX_MASKED), axis=-1)
    return ops.where(mask, probs, 0.0)


class MultiHeadAttention(Layer):
    """Keras's ``MultiHeadAttention`` for (batch, sequence, features) inputs: called as
    ``mha(query, value, key=None, attention_mask=None, return_attention_scores=False,
    training=None, use_causal_mask=False)``."""

    propagates_mask = True

    def __init__(
        self,
        num_heads: int,
        key_dim: int,
        value_dim: int | None = None,
        dropout: float = 0.0,
        use_bias: bool = True,
        output_shape: Any = None,
        attention_axes: Any = None,
        sliding_window: int | None = None,
        kernel_initializer: Any = "glorot_uniform",
        bias_initializer: Any = "zeros",
        kernel_regularizer: Any = None,
        bias_regularizer: Any = None,
        kernel_constraint: Any = None,
        bias_constraint: Any = None,
        use_gate: bool = False,
        seed: int | None = None,
        **kwargs: Any,
    ) -> None:
        # Keras's: the activity regularizer is its projections' (each EinsumDense penalizes
        # its own output), not the layer's on its result.
        activity_regularizer = kwargs.pop("activity_regularizer", None)
        super().__init__(**kwargs)
        self._activity_regularizer = regularizers.get(activity_regularizer)
        if use_gate:
            raise NotImplementedError(
                f"MultiHeadAttention '{self.name}': use_gate=True (gated attention) is not "
                "supported by kcompile"
            )
        if sliding_window is not None and (
            isinstance(sliding_window, bool)
            or not isinstance(sliding_window, int)
            or sliding_window <= 0
        ):
            raise ValueError(
                "`sliding_window` must be `None` or a positive integer. "
                f"Received: sliding_window={sliding_window}"
            )
        self.sliding_window, self.use_gate = sliding_window, False
        for what, value in (("num_heads", num_heads), ("key_dim", key_dim)):
            if not isinstance(value, int) or value <= 0:
                raise ValueError(
                    f"MultiHeadAttention '{self.name}': {what} must be a positive integer, "
                    f"got {value!r}"
                )
        if isinstance(attention_axes, int):
            attention_axes = (attention_axes,)
        if attention_axes is not None and tuple(attention_axes) not in ((1,), (-2,)):
            raise NotImplementedError(
                f"MultiHeadAttention '{self.name}': attention_axes is not supported yet "
                "(attention runs over the sequence axis of (batch, sequence, features))"
            )
        if isinstance(output_shape, int):
            output_shape = (output_shape,)
        if output_shape is not None and len(output_shape) != 1:
            raise NotImplementedError(
                f"MultiHeadAttention '{self.name}': output_shape of rank > 1 is not supported"
            )
        self.num_heads, self.key_dim = num_heads, key_dim
        self.value_dim = value_dim or key_dim
        self.dropout, self.use_bias, self.seed = dropout, use_bias, seed
        self.output_shape = tuple(output_shape) if output_shape else None
        set_weight_arguments(
            self,
            kernel_initializer=kernel_initializer,
            bias_initializer=bias_initializer,
            kernel_regularizer=kernel_regularizer,
            bias_regularizer=bias_regularizer,
            kernel_constraint=kernel_constraint,
            bias_constraint=bias_constraint,
        )
        self.seed_generator = krandom.SeedGenerator(seed) if dropout > 0 else None

    def build(self, query_shape, value_shape, key_shape=None):
        key_shape = value_shape if key_shape is None else key_shape
        for what, shape in (("query", query_shape), ("value", value_shape), ("key", key_shape)):
            if len(shape) != 3:
                raise NotImplementedError(
                    f"MultiHeadAttention '{self.name}': {what} of shape {tuple(shape)}; only "
                    "(batch, sequence, features) inputs are supported"
                )
        if value_shape[1:-1] != key_shape[1:-1]:
            raise ValueError(
                f"MultiHeadAttention '{self.name}': value and key must agree but for the last "
                f"dimension, got value {tuple(value_shape)} and key {tuple(key_shape)}"
            )
        heads = self.num_heads
        width = self.output_shape[0] if self.output_shape else query_shape[-1]
        # Keras's four EinsumDense sublayers (so model.quantize reaches them, as Keras's
        # does): kept as public attributes, which the layer tracks; ``_query_dense`` and
        # the others, Keras's names, read them.
        self.query_dense = self._dense("abc,cde->abde", (None, heads, self.key_dim), "de", "query")
        self.query_dense.build(tuple(query_shape))
        self.key_dense = self._dense("abc,cde->abde", (None, heads, self.key_dim), "de", "key")
        self.key_dense.build(tuple(key_shape))
        self.value_dense = self._dense(
            "abc,cde->abde", (None, heads, self.value_dim), "de", "value"
        )
        self.value_dense.build(tuple(value_shape))
        self.output_dense = self._dense("abcd,cde->abe", (None, width), "e", "attention_output")
        self.output_dense.build((query_shape[0], query_shape[1], heads, self.value_dim))
        # Keras's other two inner layers (which the computation above does itself): held
        # so that model.quantize visits them and warns of them as Keras's does.
        self.softmax_layer = Softmax(axis=-1, dtype=self.dtype_policy)
        self.dropout_layer = Dropout(rate=self.dropout, dtype=self.dtype_policy)
        for inner in (self.softmax_layer, self.dropout_layer):
            inner.built = True

    def _dense(self, equation: str, output_shape: tuple, bias_axes: str, name: str):
        """A projection as Keras's ``MultiHeadAttention`` makes it, under this layer."""
        made = projection(self, equation, output_shape, bias_axes, name, self._activity_regularizer)
        return self._nest(made)

    _query_dense = property(lambda self: self.query_dense)
    _key_dense = property(lambda self: self.key_dense)
    _value_dense = property(lambda self: self.value_dense)
    _output_dense = property(lambda self: self.output_dense)

    def call(
        self,
        query,
        value,
        key=None,
        query_mask=None,
        value_mask=None,
        key_mask=None,
        attention_mask=None,
        return_attention_scores=False,
        training=None,
        use_causal_mask=False,
    ):
        key = value if key is None else key
        mask = self._attention_mask(
            query, value, key, query_mask, value_mask, key_mask, attention_mask, use_causal_mask
        )
        # (the bias and any rescale after each split into heads run in the product's
        # epilogue: ``passes.sink_reshapes``)
        q = self.query_dense(query)  # [B, T, N, H]
        k = self.key_dense(key)  # [B, S, N, H]
        v = self.value_dense(value)  # [B, S, N, H]
        if self.dropout == 0 and not return_attention_scores:
            # Keras's fast path: ops.dot_product_attention (masked logits -0.7 * max)
            mixed = ops.nn.dot_product_attention(
                q,
                k,
                v,
                mask=None if mask is None else ops.expand_dims(mask, 1),
                scale=1.0 / math.sqrt(self.key_dim),
            )
            scores = None
        else:
            q = q * (1.0 / math.sqrt(self.key_dim))
            scores = ops.einsum("aecd,abcd->acbe", k, q)  # [B, N, T, S]
            scores = _masked_softmax(scores, None if mask is None else ops.expand_dims(mask, 1))
            kept = scores
            if training and self.dropout > 0:
                kept = krandom.dropout(scores, self.dropout, seed=self.seed_generator)
            mixed = ops.einsum("acbe,aecd->abcd", kept, v)  # [B, T, N, H]
        out = self.output_dense(mixed)
        return (out, scores) if return_attention_scores else out

    def _attention_mask(
        self, query, value, key, query_mask, value_mask, key_mask, attention_mask, causal
    ):
        """Keras's merge of the masks into one [B, T, S] boolean mask (None: none)."""
        mask = None

        def both(a, b):
            return b if a is None else ops.logical_and(a, b)

        if query_mask is not None:
            mask = ops.expand_dims(ops.cast(query_mask, "bool"), -1)
        if value_mask is not None:
            mask = both(mask, ops.expand_dims(ops.cast(value_mask, "bool"), -2))
        if key_mask is not None and key is not value:
            mask = both(mask, ops.expand_dims(ops.cast(key_mask, "bool"), -2))
        if causal:
            mask = both(mask, causal_mask(query.shape[1], value.shape[1]))
        if self.sliding_window is not None:
            mask = both(mask, band_mask(query.shape[1], value.shape[1], self.sliding_window))
        if attention_mask is not None:
            mask = both(mask, ops.cast(attention_mask, "bool"))
        return mask

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "num_heads": self.num_heads,
            "key_dim": self.key_dim,
            "value_dim": self.value_dim,
            "dropout": self.dropout,
            "use_bias": self.use_bias,
            "use_gate": self.use_gate,
            "output_shape": self.output_shape,
            "attention_axes": None,
            "sliding_window": self.sliding_window,
            **weight_config(self, "kernel", "bias"),
            "activity_regularizer": serialize_optional(regularizers, self._activity_regularizer),
            "seed": self.seed,
        }
