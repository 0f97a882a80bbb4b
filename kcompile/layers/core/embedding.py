"""Embedding: rows of a table picked by integer ids; the gradient is a scatter-add.
Quantized to int8 as Keras quantizes it: one scale per row (``quantize``)."""

from __future__ import annotations

from typing import Any

from kcompile import initializers, quantizers
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
        quantization_config: Any = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.quantization_config = quantizers.layer_config(self, quantization_config)
        self.embeddings_regularizer = embeddings_regularizer
        self.mask_zero = bool(mask_zero)
        self.input_dim, self.output_dim = int(input_dim), int(output_dim)
        self.embeddings_initializer = embeddings_initializer or initializers.RandomUniform(
            -0.05, 0.05
        )

    def build(self, input_shape):
        if self.quantization_mode is not None:  # (a quantized layer loaded from its config)
            self.quantized_build((self.input_dim, self.output_dim), self.quantization_mode)
            return
        self.embeddings = self.add_weight(
            (self.input_dim, self.output_dim),
            self.embeddings_initializer,
            name="embeddings",
            regularizer=self.embeddings_regularizer,
        )

    def call(self, ctx, ids):
        ids = B.cast(ids, DType.i32)
        if self.quantization_mode == "int8":
            return self._int8_call(ctx, ids)
        return B.take(ctx.weight(self.embeddings), ids)

    # --- int8, as Keras 3.15.1's Embedding -----------------------------------------------

    @property
    def _embeddings(self):
        """Keras's name of the table's variable (``embeddings`` is the same variable)."""
        return self.embeddings

    def quantize(self, mode: Any = None, type_check: bool = True, config: Any = None) -> None:
        """Keras's: the table replaced by int8 rows, each with its scale (abs-max over
        the row: ``embeddings_scale``, one per id), the policy by ``int8_from_<policy>``."""
        mode = quantizers.resolve_mode(mode, config)
        quantizers.check_quantize_args(self, mode)
        if type_check and type(self) is not Embedding:  # (Keras's: subclasses stay float)
            raise quantizers.not_implemented(self)
        self.quantization_config = quantizers.layer_config(
            self, config or quantizers.Int8QuantizationConfig()
        )
        old = self.embeddings
        values, scale = quantizers.abs_max_quantize(old.numpy(), axis=-1, to_numpy=True)
        self._forget_variable(old)
        self.quantized_build(old.shape, mode)
        self.embeddings.assign(values)
        self.embeddings_scale.assign(scale.squeeze(-1))
        if self.dtype_policy.quantization_mode is None:
            self.dtype_policy = quantizers.quantized_policy(self, mode)

    def quantized_build(self, embeddings_shape: Any, mode: Any, config: Any = None) -> None:
        """Keras's ``_int8_build``: an int8 table and a float scale per row, frozen."""
        if mode != "int8":
            quantizers.refuse_mode(mode, f"{type(self).__name__} '{self.name}'")
            raise quantizers.not_implemented(self, "quantized_build")
        self.embeddings = self.add_weight(
            tuple(embeddings_shape), "zeros", dtype="int8", trainable=False, name="embeddings"
        )
        self.embeddings_scale = self.add_weight(
            (self.input_dim,), "ones", trainable=False, name="embeddings_scale"
        )
        self._is_quantized = True

    def _int8_call(self, ctx, ids):
        """Keras's ``_int8_call``: the int8 rows of the ids, in the compute dtype, each
        divided by its row's scale (no gradient: the table is frozen)."""
        rows = B.take(ctx.weight(self.embeddings), ids)
        scale = B.take(ctx.weight(self.embeddings_scale), ids)
        dtype = scale.dtype  # (the compute dtype: a float variable is read in it)
        return B.div(B.cast(rows, dtype), B.reshape(scale, (*scale.shape, 1)))

    def compute_mask(self, inputs, previous_mask):
        """With ``mask_zero``, id 0 is padding: the mask is ``ids != 0``."""
        return B.ne(inputs, B.const(inputs.graph, 0, inputs.dtype)) if self.mask_zero else None

    def get_config(self):
        quantized = {}
        if self.quantization_mode is not None:  # (Keras writes it; None when float)
            quantized["quantization_config"] = quantizers.serialize_config(self.quantization_config)
        return {
            **quantized,
            **super().get_config(),
            "input_dim": self.input_dim,
            "output_dim": self.output_dim,
            "mask_zero": self.mask_zero,
        }
