"""Keras's ``ReversibleEmbedding``: an ``Embedding`` that can also be called with
``reverse=True`` to project vectors back to logits over the vocabulary, with the
transposed table (``tie_weights=True``) or a table of its own, and an optional
``logit_soft_cap`` (``tanh(logits / cap) * cap``)."""

from __future__ import annotations

from typing import Any

from kcompile import initializers, ops, regularizers
from kcompile.backend.symbolic import TracedTensor, current_context
from kcompile.layers.core.embedding import Embedding


class ReversibleEmbedding(Embedding):
    def __init__(
        self,
        input_dim: int,
        output_dim: int,
        tie_weights: bool = True,
        embeddings_initializer: Any = "uniform",
        embeddings_regularizer: Any = None,
        embeddings_constraint: Any = None,
        mask_zero: bool = False,
        reverse_dtype: Any = None,
        logit_soft_cap: float | None = None,
        quantization_config: Any = None,
        **kwargs: Any,
    ) -> None:
        if embeddings_initializer == "uniform":
            # Keras's alias of RandomUniform(-0.05, 0.05): Embedding's default
            embeddings_initializer = None
        super().__init__(
            input_dim,
            output_dim,
            embeddings_initializer=embeddings_initializer,
            embeddings_regularizer=embeddings_regularizer,
            mask_zero=mask_zero,
            **kwargs,
        )
        if embeddings_constraint is not None:
            raise NotImplementedError(
                f"ReversibleEmbedding '{self.name}': embeddings_constraint is not supported "
                "(kcompile has no weight constraints yet)"
            )
        if quantization_config is not None:
            raise NotImplementedError(
                f"ReversibleEmbedding '{self.name}': quantization is not supported yet"
            )
        if reverse_dtype not in (None, "float32"):
            raise NotImplementedError(
                f"ReversibleEmbedding '{self.name}': reverse_dtype={reverse_dtype!r}; "
                "kcompile computes in float32"
            )
        self.tie_weights = tie_weights
        self.reverse_dtype = reverse_dtype
        self.logit_soft_cap = logit_soft_cap
        self._reversed = False  # whether the call being traced is a reverse one

    def build(self, input_shape=None):
        if self.quantization_mode is not None:
            from kcompile import quantizers

            raise quantizers.QuantizationNotSupported(
                f"ReversibleEmbedding '{self.name}': policy {self.dtype_policy.name!r}: "
                "quantized ReversibleEmbeddings are not supported by kcompile yet"
            )
        super().build(input_shape)
        if not self.tie_weights:
            self.reverse_embeddings = self.add_weight(
                (self.output_dim, self.input_dim),
                self.embeddings_initializer,
                name="reverse_embeddings",
            )

    def call(self, inputs, reverse=False):
        self._reversed = bool(reverse)
        table = TracedTensor(self._table(current_context()))  # (with LoRA, merged)
        if not reverse:
            return ops.take(table, ops.cast(inputs, "int32"), axis=0)
        kernel = ops.transpose(table) if self.tie_weights else self.reverse_embeddings
        logits = ops.matmul(inputs, kernel)
        if self.logit_soft_cap is not None:
            cap = self.logit_soft_cap
            logits = ops.multiply(ops.tanh(ops.divide(logits, cap)), cap)
        return logits

    def quantize(self, mode: Any = None, type_check: bool = True, config: Any = None) -> None:
        """Keras quantizes a ReversibleEmbedding (its reverse projection too, with scales
        of its own); kcompile does not yet: refused, never left silently in float."""
        from kcompile import quantizers

        mode = quantizers.resolve_mode(mode, config)
        quantizers.check_quantize_args(self, mode)
        raise quantizers.QuantizationNotSupported(
            f"ReversibleEmbedding '{self.name}': quantize({mode!r}) is not supported by "
            "kcompile yet (Keras also quantizes its reverse projection with per-row input "
            "scales); quantize the model with filters= that leave this layer out"
        )

    def compute_mask(self, inputs, previous_mask):
        """Keras's: ids that are 0 are padding (``mask_zero``) in a forward call; the
        logits of a reverse call carry no mask."""
        if self._reversed or not self.mask_zero:
            return None
        return ops.not_equal(inputs, 0)

    def compute_output_shape(self, input_shape: Any, reverse: bool = False) -> tuple:
        shape = list(input_shape)
        if reverse:
            shape[-1] = self.input_dim
        else:
            shape.append(self.output_dim)
        return tuple(shape)

    def get_config(self) -> dict[str, Any]:
        regularizer = self.embeddings_regularizer
        activity = self.activity_regularizer
        return {
            **super().get_config(),
            # Keras's Embedding keys, which kcompile's Embedding config leaves out
            "embeddings_initializer": initializers.serialize(
                initializers.get(self.embeddings_initializer)
            ),
            "embeddings_regularizer": None
            if regularizer is None
            else regularizers.serialize(regularizers.get(regularizer)),
            "activity_regularizer": None if activity is None else regularizers.serialize(activity),
            "embeddings_constraint": None,
            "quantization_config": None,
            "tie_weights": self.tie_weights,
            "reverse_dtype": self.reverse_dtype,
            "logit_soft_cap": self.logit_soft_cap,
        }
