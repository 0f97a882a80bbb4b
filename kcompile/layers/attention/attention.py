"""Keras's ``Attention``: dot-product (Luong) or concat scores, with Keras's weights,
masks and numbers; written with ``keras.ops`` like a user's layer, so it is traced into
the step."""

from __future__ import annotations

from typing import Any

from kcompile import ops
from kcompile import random as krandom
from kcompile.layers.attention.causal_mask import causal_mask
from kcompile.layers.layer import Layer

# Keras's offset for the scores Attention masks out.
_ATTENTION_OFFSET = 1.0e9


class Attention(Layer):
    """Keras's dot-product (Luong) attention: ``Attention()([query, value])`` or
    ``[query, value, key]``, with ``use_scale``, ``score_mode="concat"``, dropout,
    ``mask=[query_mask, value_mask]``, ``use_causal_mask``, ``return_attention_scores``."""

    propagates_mask = True

    def __init__(
        self,
        use_scale: bool = False,
        score_mode: str = "dot",
        dropout: float = 0.0,
        seed: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if score_mode not in ("dot", "concat"):
            raise ValueError(
                f"Attention '{self.name}': score_mode must be 'dot' or 'concat', got {score_mode!r}"
            )
        self.use_scale, self.score_mode, self.dropout, self.seed = (
            use_scale,
            score_mode,
            dropout,
            seed,
        )
        self.seed_generator = krandom.SeedGenerator(seed) if dropout > 0 else None

    def build(self, input_shape):
        if not isinstance(input_shape, list | tuple) or len(input_shape) not in (2, 3):
            raise ValueError(
                f"Attention '{self.name}' is called on a list [query, value] or "
                f"[query, value, key], got {input_shape}"
            )
        self.scale = self.add_weight((), "ones", name="scale") if self.use_scale else None
        self.concat_score_weight = (
            self.add_weight((), "ones", name="concat_score_weight")
            if self.score_mode == "concat"
            else None
        )

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
        if self.score_mode == "dot":
            scores = ops.matmul(q, ops.swapaxes(k, -2, -1))
            if self.scale is not None:
                scores = scores * self.scale
        else:
            summed = ops.expand_dims(q, -2) + ops.expand_dims(k, -3)
            if self.scale is not None:
                summed = summed * self.scale
            scores = self.concat_score_weight * ops.sum(ops.tanh(summed), axis=-1)
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

    def compute_mask(self, inputs, previous_mask):
        """Keras's: the query's mask."""
        return previous_mask[0] if previous_mask else None

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "use_scale": self.use_scale,
            "score_mode": self.score_mode,
            "dropout": self.dropout,
            "seed": self.seed,
        }
