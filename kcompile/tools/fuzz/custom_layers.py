"""Custom layers written as Keras users write them (``keras.ops``, ``add_weight``, nested
layers), for the model fuzzer: generated models use them beside the built-in layers, so
tracing user code is checked against the reference interpreter like everything else."""

from __future__ import annotations

import math

from kcompile import layers, ops


class OpsDense(layers.Layer):
    """A dense layer with its activation, written with keras.ops."""

    def __init__(self, units, activation="relu", **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.activation = activation

    def build(self, input_shape):
        self.kernel = self.add_weight(shape=(input_shape[-1], self.units), name="kernel")
        self.bias = self.add_weight(shape=(self.units,), initializer="zeros", name="bias")

    def call(self, inputs):
        y = ops.matmul(inputs, self.kernel) + self.bias
        return getattr(ops, self.activation)(y) if self.activation else y


class OpsNorm(layers.Layer):
    """Standardize along the last axis with ``ops.moments``, then scale and shift."""

    def build(self, input_shape):
        self.gamma = self.add_weight(shape=(input_shape[-1],), initializer="ones", name="gamma")
        self.beta = self.add_weight(shape=(input_shape[-1],), initializer="zeros", name="beta")

    def call(self, inputs):
        mean, variance = ops.moments(inputs, axes=[-1], keepdims=True)
        return (inputs - mean) * ops.rsqrt(variance + 1e-3) * self.gamma + self.beta


class OpsSelfAttention(layers.Layer):
    """Single-head dot-product self-attention over a sequence, with nested Dense layers."""

    def __init__(self, units, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.query = layers.Dense(units)
        self.key = layers.Dense(units)
        self.value = layers.Dense(units)

    def call(self, inputs):
        q, k, v = self.query(inputs), self.key(inputs), self.value(inputs)
        scores = ops.einsum("btd,bsd->bts", q, k) / math.sqrt(self.units)
        return ops.matmul(ops.softmax(scores, axis=-1), v)


class OpsResidual(layers.Layer):
    """x + tanh(x) * clip(x): elementwise ops and a residual, no weights."""

    def call(self, inputs):
        return inputs + ops.tanh(inputs) * ops.clip(inputs, -1.0, 1.0)


class SelfMultiHeadAttention(layers.Layer):
    """``MultiHeadAttention`` over one sequence, as transformer blocks call it
    (``mha(x, x)``), optionally causal, with or without its attention scores."""

    def __init__(self, num_heads, key_dim, value_dim=None, causal=False, scores=False, **kwargs):
        super().__init__(**kwargs)
        self.causal, self.scores = causal, scores
        self.mha = layers.MultiHeadAttention(num_heads, key_dim, value_dim=value_dim)

    def call(self, inputs):
        out = self.mha(
            inputs, inputs, use_causal_mask=self.causal, return_attention_scores=self.scores
        )
        if self.scores:  # the scores join through their mean over keys
            out, scores = out
            return out + ops.expand_dims(ops.mean(ops.sum(scores, axis=1), axis=-1), -1)
        return out


class SelfAttention(layers.Layer):
    """``Attention()([x, x])`` with dot or concat scores, optionally causal."""

    def __init__(self, use_scale=False, score_mode="dot", causal=False, **kwargs):
        super().__init__(**kwargs)
        self.causal = causal
        self.attention = layers.Attention(use_scale=use_scale, score_mode=score_mode)

    def call(self, inputs):
        return self.attention([inputs, inputs], use_causal_mask=self.causal)
