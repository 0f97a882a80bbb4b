"""Embedding: rows of a table picked by integer ids; the gradient is a scatter-add.
Quantized to int8 as Keras quantizes it: one scale per row (``quantize``); with a LoRA
delta as Keras adds one (``enable_lora``, ``layers.lora``)."""

from __future__ import annotations

from typing import Any

from kcompile import quantizers
from kcompile.ir import DType, Value
from kcompile.ir import build as B
from kcompile.layers import lora
from kcompile.layers.layer import Layer
from kcompile.layers.weight_arguments import activity_config, set_weight_arguments, weight_config


class Embedding(lora.LoraLayer, Layer):
    lora_weight = "embeddings"

    def __init__(
        self,
        input_dim: int,
        output_dim: int,
        embeddings_initializer: Any = None,
        embeddings_regularizer: Any = None,
        embeddings_constraint: Any = None,
        mask_zero: bool = False,
        lora_rank: int | None = None,
        lora_alpha: float | None = None,
        quantization_config: Any = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        lora.init_args(self, lora_rank, lora_alpha)
        self.quantization_config = quantizers.layer_config(self, quantization_config)
        set_weight_arguments(
            self,
            embeddings_initializer=embeddings_initializer or "uniform",  # Keras's default
            embeddings_regularizer=embeddings_regularizer,
            embeddings_constraint=embeddings_constraint,
        )
        self.mask_zero = bool(mask_zero)
        self.input_dim, self.output_dim = int(input_dim), int(output_dim)

    def build(self, input_shape):
        if self.quantization_mode is not None:  # (a quantized layer loaded from its config)
            self.quantized_build((self.input_dim, self.output_dim), self.quantization_mode)
        else:
            self._embeddings = self.add_weight(
                (self.input_dim, self.output_dim),
                self.embeddings_initializer,
                name="embeddings",
                regularizer=self.embeddings_regularizer,
                constraint=self.embeddings_constraint,
            )
        self.built = True
        if self.lora_rank:
            self.enable_lora(self.lora_rank, lora_alpha=self.lora_alpha)

    @property
    def embeddings(self) -> Any:
        """Keras's: the table's variable (``_embeddings``); with LoRA, the sum of its values
        and the low-rank delta (float32), as Keras's property computes it."""
        if self.lora_enabled:
            return lora.merged(self, self._embeddings.numpy())
        return self._embeddings

    def call(self, ctx, ids):
        ids = B.cast(ids, DType.i32)
        if self.quantization_mode == "int8":
            return self._int8_call(ctx, ids)
        return B.take(self._table(ctx), ids)

    def _table(self, ctx) -> Value:
        """The float table in the step: with LoRA, Keras's merged ``embeddings``."""
        table = ctx.weight(self._embeddings)
        return lora.added_to_kernel(self, ctx, table) if self.lora_enabled else table

    def _keras_saved_order(self):
        if not self.lora_enabled:
            return None
        return [self._embeddings] + (
            [self.embeddings_scale] if self.quantization_mode == "int8" else []
        )

    def _keras_saved_values(self) -> dict:
        """The table Keras saves with LoRA: merged (``lora.merged_kernel_values``; an
        int8 one requantized per row)."""
        return lora.merged_kernel_values(
            self, 0, (), -1, lambda s: s[:, None], lambda s: s.squeeze(-1)
        )

    @property
    def variable_serialization_spec(self) -> dict:
        """Keras's: for each quantization mode, the names of the variables its weights
        file holds, in order (kcompile quantizes an Embedding to int8 only)."""
        return {
            None: ["embeddings"],
            "int8": ["embeddings", "embeddings_scale"],
            "int4": ["embeddings", "embeddings_scale", "embeddings_zero", "g_idx"],
        }

    # --- int8, as Keras 3.15.1's Embedding -----------------------------------------------

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
        old = self._embeddings
        values, scale = quantizers.abs_max_quantize(old.numpy(), axis=-1, to_numpy=True)
        self._forget_variable(old)
        self.quantized_build(old.shape, mode)
        self._embeddings.assign(values)
        self.embeddings_scale.assign(scale.squeeze(-1))
        if self.dtype_policy.quantization_mode is None:
            self.dtype_policy = quantizers.quantized_policy(self, mode)

    def quantized_build(self, embeddings_shape: Any, mode: Any, config: Any = None) -> None:
        """Keras's ``_int8_build``: an int8 table and a float scale per row, frozen."""
        if mode != "int8":
            quantizers.refuse_mode(mode, f"{type(self).__name__} '{self.name}'")
            raise quantizers.not_implemented(self, "quantized_build")
        self._embeddings = self.add_weight(
            tuple(embeddings_shape), "zeros", dtype="int8", trainable=False, name="embeddings"
        )
        self.embeddings_scale = self.add_weight(
            (self.input_dim,), "ones", trainable=False, name="embeddings_scale"
        )
        self._is_quantized = True

    def _int8_call(self, ctx, ids):
        """Keras's ``_int8_call``: the int8 rows of the ids, in the compute dtype, each
        divided by its row's scale (no gradient: the table is frozen); with LoRA, plus
        the rows of ``a`` times ``b``, scaled."""
        rows = B.take(ctx.weight(self._embeddings), ids)
        scale = B.take(ctx.weight(self.embeddings_scale), ids)
        dtype = scale.dtype  # (the compute dtype: a float variable is read in it)
        y = B.div(B.cast(rows, dtype), B.reshape(scale, (*scale.shape, 1)))
        if not self.lora_enabled:
            return y
        lora_x = B.take(ctx.weight(self.lora_embeddings_a), ids)
        return lora.added_to_output(self, ctx, y, lora_x)

    def compute_mask(self, inputs, previous_mask):
        """With ``mask_zero``, id 0 is padding: the mask is ``ids != 0``."""
        return B.ne(inputs, B.const(inputs.graph, 0, inputs.dtype)) if self.mask_zero else None

    def get_config(self):
        lora_keys = {}
        if self.lora_rank:  # (Keras writes them only when set)
            lora_keys = {"lora_rank": self.lora_rank, "lora_alpha": self.lora_alpha}
        return {
            **super().get_config(),
            "input_dim": self.input_dim,
            "output_dim": self.output_dim,
            **weight_config(self, "embeddings"),
            **activity_config(self),
            "mask_zero": self.mask_zero,
            "quantization_config": quantizers.serialize_config(self.quantization_config),
            **lora_keys,
        }
