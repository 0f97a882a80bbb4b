"""Keras's ``GroupQueryAttention`` (its class ``GroupedQueryAttention``): multi-head attention
where groups of query heads share one key/value head, with Keras's weights, masks
(causal, sliding window) and numbers.

Written with ``keras.ops`` like ``MultiHeadAttention``: each projection is Keras's
``EinsumDense`` equation on a kernel of Keras's shape and name (``query/kernel`` of shape
``(dim, query_heads, head_dim)``, ...), in Keras's order, so weights move between the two.
"""

from __future__ import annotations

import math
from typing import Any

from kcompile import initializers, ops, regularizers
from kcompile import random as krandom
from kcompile.backend import session as backend
from kcompile.layers.attention.causal_mask import causal_mask
from kcompile.layers.attention.multi_head_attention import _masked_softmax
from kcompile.layers.layer import Layer


class GroupQueryAttention(Layer):
    """Keras's ``GroupedQueryAttention``, named here by its public name, which is the
    class name Keras writes in its files (and the default layer name is Keras's,
    ``grouped_query_attention``). Called as ``gqa(query, value, key=None, attention_mask=None,
    return_attention_scores=False, training=None, use_causal_mask=False)`` on
    (batch, sequence, features) inputs."""

    propagates_mask = True

    def __init__(
        self,
        head_dim: int,
        num_query_heads: int,
        num_key_value_heads: int,
        dropout: float = 0.0,
        use_bias: bool = True,
        sliding_window: int | None = None,
        flash_attention: bool | None = None,
        kernel_initializer: Any = "glorot_uniform",
        bias_initializer: Any = "zeros",
        kernel_regularizer: Any = None,
        bias_regularizer: Any = None,
        activity_regularizer: Any = None,
        kernel_constraint: Any = None,
        bias_constraint: Any = None,
        use_gate: bool = False,
        seed: int | None = None,
        **kwargs: Any,
    ) -> None:
        if kwargs.get("name") is None:
            kwargs["name"] = backend.unique_name("grouped_query_attention")
        super().__init__(activity_regularizer=activity_regularizer, **kwargs)
        if kernel_constraint is not None or bias_constraint is not None:
            raise NotImplementedError(
                f"GroupQueryAttention '{self.name}': weight constraints are not supported"
            )
        if flash_attention:
            raise NotImplementedError(
                f"GroupQueryAttention '{self.name}': flash attention is a GPU kernel; "
                "kcompile computes attention on the CPU (leave flash_attention=None)"
            )
        self.head_dim = head_dim
        self.num_query_heads = num_query_heads
        self.num_key_value_heads = num_key_value_heads
        if num_query_heads % num_key_value_heads != 0:
            raise ValueError("`num_query_heads` must be divisible by `num_key_value_heads`.")
        self.num_repeats = num_query_heads // num_key_value_heads
        self.dropout = dropout
        self.use_bias = use_bias
        self.use_gate = use_gate
        if sliding_window is not None and (
            not isinstance(sliding_window, int) or sliding_window <= 0
        ):
            raise ValueError(
                "`sliding_window` must be `None` or a positive integer. "
                f"Received: sliding_window={sliding_window}"
            )
        self.sliding_window = sliding_window
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.bias_initializer = initializers.get(bias_initializer)
        self.kernel_regularizer = regularizers.get(kernel_regularizer)
        self.bias_regularizer = regularizers.get(bias_regularizer)
        self.seed = seed
        self.seed_generator = krandom.SeedGenerator(seed) if dropout > 0 else None
        self._inverse_sqrt_head_dim = 1.0 / math.sqrt(float(head_dim))

    def build(self, query_shape, value_shape, key_shape=None):
        key_shape = value_shape if key_shape is None else key_shape
        for what, shape in (("query", query_shape), ("value", value_shape), ("key", key_shape)):
            if len(shape) != 3:
                raise NotImplementedError(
                    f"GroupQueryAttention '{self.name}': {what} of shape {tuple(shape)}; "
                    "only (batch, sequence, features) inputs are supported"
                )
        self.feature_dim = query_shape[-1]
        heads, kv_heads, dim = self.num_query_heads, self.num_key_value_heads, self.head_dim
        # Keras's sublayers, in the order it builds them: query, key, gate, value, output.
        self._projection("query", (query_shape[-1], heads, dim), (heads, dim))
        self._projection("key", (key_shape[-1], kv_heads, dim), (kv_heads, dim))
        if self.use_gate:
            self._projection("gate", (query_shape[-1], heads, dim), (heads, dim))
        self._projection("value", (value_shape[-1], kv_heads, dim), (kv_heads, dim))
        self._projection("attention_output", (heads, dim, self.feature_dim), (self.feature_dim,))

    def _projection(self, name: str, kernel_shape: tuple, bias_shape: tuple) -> None:
        # A fresh initializer per kernel (Keras clones it per sublayer).
        kernel = self.add_weight(
            kernel_shape,
            self.kernel_initializer.clone(),
            name=f"{name}/kernel",
            regularizer=self.kernel_regularizer,
        )
        bias = (
            self.add_weight(
                bias_shape,
                self.bias_initializer.clone(),
                name=f"{name}/bias",
                regularizer=self.bias_regularizer,
            )
            if self.use_bias
            else None
        )
        setattr(self, f"{name}_kernel", kernel)
        setattr(self, f"{name}_bias", bias)

    def _dense(self, name: str, equation: str, x):
        out = ops.einsum(equation, x, getattr(self, f"{name}_kernel"))
        bias = getattr(self, f"{name}_bias")
        return out if bias is None else out + bias

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
            query, value, query_mask, value_mask, key_mask, attention_mask, use_causal_mask
        )
        gate = ops.sigmoid(self._dense("gate", "bqm,muh->bquh", query)) if self.use_gate else None
        q = self._dense("query", "bqm,muh->bquh", query)
        k = ops.repeat(self._dense("key", "bkm,mvh->bkvh", key), self.num_repeats, axis=2)
        v = ops.repeat(self._dense("value", "bkm,mvh->bkvh", value), self.num_repeats, axis=2)
        scores = None
        expanded = None if mask is None else ops.expand_dims(mask, 1)  # [B, 1, T, S]
        if self.dropout == 0 and not return_attention_scores:
            mixed = ops.nn.dot_product_attention(
                q, k, v, mask=expanded, scale=self._inverse_sqrt_head_dim
            )
        else:
            scores = ops.einsum("bquh,bkuh->buqk", q * self._inverse_sqrt_head_dim, k)
            scores = _masked_softmax(scores, expanded)
            kept = scores
            if training and self.dropout > 0:
                kept = krandom.dropout(scores, self.dropout, seed=self.seed_generator)
            mixed = ops.einsum("buqk,bkuh->bquh", kept, v)
        if gate is not None:
            mixed = mixed * gate
        out = self._dense("attention_output", "bquh,uhm->bqm", mixed)
        return (out, scores) if return_attention_scores else out

    def _attention_mask(
        self, query, value, query_mask, value_mask, key_mask, attention_mask, causal
    ):
        """Keras's merge of the masks into one [B, T, S] boolean mask (None: none)."""
        mask = None

        def both(a, b):
            return b if a is None else ops.logical_and(a, b)

        if query_mask is not None:
            mask = ops.expand_dims(ops.cast(query_mask, "bool"), -1)
        if value_mask is not None:
            mask = both(mask, ops.expand_dims(ops.cast(value_mask, "bool"), -2))
        if key_mask is not None:
            mask = both(mask, ops.expand_dims(ops.cast(key_mask, "bool"), -2))
        t, s = query.shape[1], value.shape[1]
        if causal:
            mask = both(mask, causal_mask(t, s))
        if self.sliding_window is not None:
            rows = ops.reshape(ops.arange(t, dtype="int32"), (1, t, 1))
            cols = ops.reshape(ops.arange(s, dtype="int32"), (1, 1, s))
            mask = both(mask, ops.less(ops.abs(rows - cols), self.sliding_window))
        if attention_mask is not None:
            mask = both(mask, ops.cast(attention_mask, "bool"))
        return mask

    def compute_output_shape(self, query_shape, value_shape, key_shape=None) -> tuple:
        """Keras's: the query's shape, once the value and key agree with it."""
        key_shape = value_shape if key_shape is None else key_shape
        if query_shape[-1] != value_shape[-1]:
            raise ValueError(
                "The last dimension of `query_shape` and `value_shape` must be equal, but "
                f"are {query_shape[-1]}, {value_shape[-1]}. Received: "
                f"query_shape={query_shape}, value_shape={value_shape}"
            )
        if tuple(value_shape[1:-1]) != tuple(key_shape[1:-1]):
            raise ValueError(
                "All dimensions of `value` and `key`, except the last one, must be equal. "
                f"Received: value_shape={value_shape} and key_shape={key_shape}"
            )
        return tuple(query_shape)

    def get_config(self) -> dict[str, Any]:
        def regularizer(r):
            return None if r is None else regularizers.serialize(r)

        return {
            **super().get_config(),
            "head_dim": self.head_dim,
            "num_query_heads": self.num_query_heads,
            "num_key_value_heads": self.num_key_value_heads,
            "use_bias": self.use_bias,
            "use_gate": self.use_gate,
            "sliding_window": self.sliding_window,
            "dropout": self.dropout,
            "kernel_initializer": initializers.serialize(self.kernel_initializer),
            "bias_initializer": initializers.serialize(self.bias_initializer),
            "kernel_regularizer": regularizer(self.kernel_regularizer),
            "bias_regularizer": regularizer(self.bias_regularizer),
            "activity_regularizer": regularizer(self.activity_regularizer),
            "kernel_constraint": None,
            "bias_constraint": None,
            "seed": self.seed,
        }


GroupedQueryAttention = GroupQueryAttention  # Keras's class name
