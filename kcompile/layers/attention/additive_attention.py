"""Keras's ``AdditiveAttention`` (Bahdanau): scores ``sum(scale * tanh(q + k))`` over the
features, with a learned ``scale`` vector; the rest (masks, causal mask, dropout, the
query's mask on the output) is ``Attention``'s."""

from __future__ import annotations

from typing import Any

from kcompile import ops
from kcompile import random as krandom
from kcompile.layers.attention.attention import _ATTENTION_OFFSET, Attention
from kcompile.layers.attention.causal_mask import causal_mask


class AdditiveAttention(Attention):
    def __init__(self, use_scale: bool = True, dropout: float = 0.0, **kwargs: Any) -> None:
        super().__init__(use_scale=use_scale, dropout=dropout, **kwargs)

    def build(self, input_shape):
        if not isinstance(input_shape, list | tuple) or len(input_shape) not in (2, 3):
            raise ValueError(
                f"AdditiveAttention '{self.name}' is called on a list [query, value] or "
                f"[query, value, key], got {input_shape}"
            )
        dim = input_shape[0][-1]
        self.scale = (
            self.add_weight((dim,), "glorot_uniform", name="scale") if self.use_scale else None
        )
        self.concat_score_weight = None

    def call(
        self,
        inputs,
        mask=None,
        training=False,
        return_attention_scores=False,
        use_causal_mask=False,
    ):
        q, v = inputs[0], inputs[1]
        k = inputs[2] if len(inputs) > 2 else v
        summed = ops.tanh(ops.expand_dims(q, -2) + ops.expand_dims(k, -3))
        if self.scale is not None:
            summed = self.scale * summed
        scores = ops.sum(summed, axis=-1)
        q_mask = mask[0] if mask else None
        v_mask = mask[1] if mask else None
        allowed = None if v_mask is None else ops.expand_dims(ops.cast(v_mask, "bool"), -2)
        if use_causal_mask:
            causal = causal_mask(scores.shape[-2], scores.shape[-1])
            allowed = causal if allowed is None else ops.logical_and(allowed, causal)
        if allowed is not None:
            scores = ops.where(allowed, scores, scores - _ATTENTION_OFFSET)
        weights = ops.softmax(scores, axis=-1)
        kept = weights
        if training and self.dropout > 0:
            kept = krandom.dropout(weights, self.dropout, seed=self.seed_generator)
        out = ops.matmul(kept, v)
        if q_mask is not None:
            out = ops.where(ops.expand_dims(ops.cast(q_mask, "bool"), -1), out, 0.0)
        return (out, weights) if return_attention_scores else out

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        del config["score_mode"]  # Keras's AdditiveAttention has none
        return config
