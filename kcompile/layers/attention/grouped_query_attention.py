"""Keras's ``GroupQueryAttention`` (its class ``GroupedQueryAttention``): multi-head attention
where groups of query heads share one key/value head, with Keras's weights, masks
(causal, sliding window) and numbers.

Written with ``keras.ops`` like ``MultiHeadAttention``. As Keras's, it holds its
projections as EinsumDense layers (``query``, ``key``, ``gate`` with ``use_gate``,
``value``, ``attention_output``: so ``model.quantize`` and LoRA reach them as Keras's do)
and computes the scores and their weighted sum itself. Weight names and shapes are
Keras's (``gqa/query/kernel`` of shape ``(dim, query_heads, head_dim)``, ...), in Keras's
order, so weights move between the two.
"""

from __future__ import annotations

import math
from typing import Any

from kcompile import constraints, initializers, ops, regularizers
from kcompile import random as krandom
from kcompile.backend import session as backend
from kcompile.layers.activations.softmax import Softmax
from kcompile.layers.attention.causal_mask import causal_mask
from kcompile.layers.attention.multi_head_attention import _masked_softmax
from kcompile.layers.attention.projections import projection
from kcompile.layers.layer import Layer
from kcompile.layers.regularization.dropout import Dropout
from kcompile.utils.config_serialization import serialize_optional


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
        self.kernel_constraint = constraints.get(kernel_constraint)
        self.bias_constraint = constraints.get(bias_constraint)
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
        # Keras's EinsumDense sublayers, in the order it makes them (query, key, gate,
        # value, its Softmax and Dropout, output: the order of ``layer.weights``), kept
        # as public attributes, which the layer tracks; ``_query_dense`` and the others,
        # Keras's names, read them.
        self.query_dense = self._dense("bqm,muh->bquh", (None, heads, dim), "uh", "query")
        self.query_dense.build(tuple(query_shape))
        self.key_dense = self._dense("bkm,mvh->bkvh", (None, kv_heads, dim), "vh", "key")
        self.key_dense.build(tuple(key_shape))
        if self.use_gate:
            self.gate_dense = self._dense(
                "bqm,muh->bquh", (None, heads, dim), "uh", "gate", activation="sigmoid"
            )
            self.gate_dense.build(tuple(query_shape))
        self.value_dense = self._dense("bkm,mvh->bkvh", (None, kv_heads, dim), "vh", "value")
        self.value_dense.build(tuple(value_shape))
        # Keras's Softmax and Dropout (whose work the call does itself): held so that
        # model.quantize visits them and warns of them as Keras's does.
        self.softmax_layer = Softmax(axis=-1, dtype=self.dtype_policy)
        self.dropout_layer = Dropout(rate=self.dropout, dtype=self.dtype_policy)
        for inner in (self.softmax_layer, self.dropout_layer):
            inner.built = True
        self.output_dense = self._dense(
            "bquh,uhm->bqm", (None, self.feature_dim), "m", "attention_output"
        )
        self.output_dense.build((None, None, heads, dim))

    def _dense(self, equation: str, output_shape: tuple, bias_axes: str, name: str, **extra):
        """A projection as Keras's ``GroupedQueryAttention`` makes it, under this layer
        (Keras passes it the layer's activity regularizer, which it also keeps)."""
        made = projection(
            self, equation, output_shape, bias_axes, name, self.activity_regularizer, **extra
        )
        return self._nest(made)

    _query_dense = property(lambda self: self.query_dense)
    _key_dense = property(lambda self: self.key_dense)
    _gate_dense = property(lambda self: self.gate_dense)
    _value_dense = property(lambda self: self.value_dense)
    _output_dense = property(lambda self: self.output_dense)
    _softmax = property(lambda self: self.softmax_layer)
    _dropout_layer = property(lambda self: self.dropout_layer)

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
        # (the bias and any rescale after each split into heads run in the product's
        # epilogue: ``passes.sink_reshapes``)
        gate = self.gate_dense(query) if self.use_gate else None  # sigmoid, [B, T, N, H]
        q = self.query_dense(query)  # [B, T, N, H]
        # each key/value head repeated for its group of query heads: [B, S, N, H]
        k = ops.repeat(self.key_dense(key), self.num_repeats, axis=2)
        v = ops.repeat(self.value_dense(value), self.num_repeats, axis=2)
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
        out = self.output_dense(mixed)
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
            "kernel_constraint": serialize_optional(constraints, self.kernel_constraint),
            "bias_constraint": serialize_optional(constraints, self.bias_constraint),
            "seed": self.seed,
        }


GroupedQueryAttention = GroupQueryAttention  # Keras's class name
