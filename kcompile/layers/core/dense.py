"""Keras's ``Dense``: a matrix product with the kernel, plus bias, then the activation;
quantized to int8 or int4 as Keras quantizes it (``quantize``, ``kcompile.quantizers``);
with a LoRA delta as Keras adds one (``enable_lora``, ``layers.lora``)."""

from __future__ import annotations

from typing import Any

import numpy as np

from kcompile import activations, quantizers
from kcompile.ir import DType, Value
from kcompile.ir import build as B
from kcompile.layers import lora
from kcompile.layers.layer import Layer, TraceContext
from kcompile.layers.weight_arguments import set_weight_arguments, weight_config


class Dense(lora.LoraLayer, Layer):
    propagates_mask = True
    quantizes_int4 = True

    def __init__(
        self,
        units: int,
        activation: Any = None,
        use_bias: bool = True,
        kernel_initializer: Any = "glorot_uniform",
        bias_initializer: Any = "zeros",
        kernel_regularizer: Any = None,
        bias_regularizer: Any = None,
        kernel_constraint: Any = None,
        bias_constraint: Any = None,
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
            kernel_initializer=kernel_initializer,
            bias_initializer=bias_initializer,
            kernel_regularizer=kernel_regularizer,
            bias_regularizer=bias_regularizer,
            kernel_constraint=kernel_constraint,
            bias_constraint=bias_constraint,
        )
        if not isinstance(units, int) or units <= 0:
            raise ValueError(
                f"Dense '{self.name}': units must be a positive integer, got {units!r}"
            )
        self.units = units
        self.activation = activations.get(activation)
        self.use_bias = use_bias

    def build(self, input_shape):
        if input_shape[-1] is None:
            raise ValueError(
                f"Dense '{self.name}': the last dimension of the input must be "
                f"known, got shape {input_shape}"
            )
        kernel_shape = (input_shape[-1], self.units)
        if self.quantization_mode is not None:  # (a quantized layer loaded from its config)
            self.quantized_build(kernel_shape, self.quantization_mode)
        else:
            self._kernel = self.add_weight(
                kernel_shape,
                self.kernel_initializer,
                name="kernel",
                regularizer=self.kernel_regularizer,
                constraint=self.kernel_constraint,
            )
        self.bias = (
            self.add_weight(
                (self.units,),
                self.bias_initializer,
                name="bias",
                regularizer=self.bias_regularizer,
                constraint=self.bias_constraint,
            )
            if self.use_bias
            else None
        )
        self.built = True
        if self.lora_rank:
            self.enable_lora(self.lora_rank, lora_alpha=self.lora_alpha)

    def call(self, ctx: TraceContext, x: Value) -> Value:
        if not x.dtype.is_float:  # Keras's matmul promotes integers to the kernel's float
            x = B.cast(x, DType.f32)
        if self.quantization_mode in ("int8", "int4"):
            call = self._int8_call if self.quantization_mode == "int8" else self._int4_call
            y = call(ctx, x)
            if self.lora_enabled:  # Keras adds the float low-rank product to the result
                lora_x = B.matmul(x, ctx.weight(self.lora_kernel_a))
                y = lora.added_to_output(self, ctx, y, lora_x)
        else:
            kernel = ctx.weight(self._kernel)
            if self.lora_enabled:
                kernel = lora.added_to_kernel(self, ctx, kernel)
            y = B.matmul(x, kernel)
        if self.bias is not None:
            y = y + ctx.weight(self.bias)
        return self.activation(y)

    # --- int8 and int4, as Keras 3.15.1's Dense ----------------------------------------

    @property
    def kernel(self) -> Any:
        """Keras's: the kernel variable; once quantized to int4, its values unpacked (an
        int8 array of shape (input_dim, units)); ``_kernel`` is the packed variable. With
        LoRA, Keras's sum of those values and the low-rank delta (float32)."""
        kernel = self._kernel
        if self.quantization_mode == "int4":
            kernel = quantizers.unpack_int4(self._kernel.numpy(), self.units, axis=-1)
        if self.lora_enabled:
            return lora.merged(self, np.asarray(kernel))
        return kernel

    def _lora_base_shape(self) -> tuple[int, ...]:
        return (self._kernel.shape[0], self.units)  # (an int4 kernel is packed)

    def quantize(self, mode: Any = None, type_check: bool = True, config: Any = None) -> None:
        """Keras's: the float kernel replaced by an int8 one and a per-output-channel
        ``kernel_scale`` (abs-max over the input axis), the policy by
        ``int8_from_<policy>``; or by int4 values packed along the units (per channel,
        or in groups of ``block_size`` input rows with zero points), the policy by
        ``int4/<block_size>_from_<policy>``."""
        mode = quantizers.resolve_mode(mode, config)
        quantizers.check_quantize_args(self, mode)
        if type_check and type(self) is not Dense:  # (Keras's: subclasses stay float)
            raise quantizers.not_implemented(self)
        self.quantization_config = quantizers.layer_config(
            self, config or quantizers.default_config(mode)
        )
        old = self._kernel
        if mode == "int4":
            block_size = quantizers.int4_block_size(self, self.quantization_config)
            values, scale, zero = quantizers.quantize_int4_kernel(old.numpy(), block_size)
        else:
            values, scale = quantizers.abs_max_quantize(old.numpy(), axis=0, to_numpy=True)
            scale, zero = scale.squeeze(0), None
        self._forget_variable(old)
        self.quantized_build(old.shape, mode, self.quantization_config)
        self._kernel.assign(values)
        self.kernel_scale.assign(scale)
        if zero is not None:
            self.kernel_zero.assign(zero)
        if self.dtype_policy.quantization_mode is None:
            self.dtype_policy = quantizers.quantized_policy(self, mode)

    def quantized_build(self, kernel_shape: Any, mode: Any, config: Any = None) -> None:
        """Keras's ``_int8_build`` (an int8 kernel and a float scale per output channel,
        both frozen) or ``_int4_build``."""
        if mode == "int4":
            self._int4_build(tuple(kernel_shape), config)
            return
        if mode != "int8":
            quantizers.refuse_mode(mode, f"Dense '{self.name}'")
            raise quantizers.not_implemented(self, "quantized_build")
        self._kernel = self.add_weight(
            tuple(kernel_shape), "zeros", dtype="int8", trainable=False, name="kernel"
        )
        self.kernel_scale = self.add_weight(
            (self.units,), "ones", trainable=False, name="kernel_scale"
        )
        self._is_quantized = True

    def _int4_build(self, kernel_shape: tuple, config: Any) -> None:
        """Keras's ``_int4_build``, all frozen: the kernel packed along the units,
        (input_dim, ceil(units / 2)) int8; per channel a scale per unit; in groups of
        ``block_size`` rows a (groups, units) scale and int8 zero point, and ``g_idx``,
        each input row's group (float32, as Keras keeps it)."""
        input_dim, units = kernel_shape
        block_size = quantizers.int4_block_size(self, config or self.quantization_config)
        self._int4_block_size = quantizers.grouped_block_size(block_size)
        self._kernel = quantizers.add_int4_variables(self, input_dim, units, self._int4_block_size)
        self._is_quantized = True

    def _int4_call(self, ctx: TraceContext, x: Value) -> Value:
        """Keras's ``_int4_call``, weight-only: per channel ``(x @ q) / kernel_scale``
        (the product of the float inputs and the unpacked integers, then the division),
        its input gradient that of ``x @ (q / kernel_scale)``; in groups ``x @ ((q -
        zero) * scale)``, each row with its group's scale and zero point."""
        packed = ctx.weight(self._kernel)
        kernel_scale = ctx.weight(self.kernel_scale)
        if self._int4_block_size is None:
            unpacked = B.cast(quantizers.dequantize_int4_in_graph(packed, self.units), x.dtype)
            y = B.div(B.matmul(x, unpacked), kernel_scale)
            return B.gradient_via(y, B.matmul(x, B.div(unpacked, kernel_scale)))
        grouped = (kernel_scale, ctx.weight(self.kernel_zero), ctx.weight(self.g_idx))
        float_kernel = quantizers.dequantize_int4_in_graph(packed, self.units, grouped)
        return B.matmul(x, B.cast(float_kernel, x.dtype))

    def _int8_call(self, ctx: TraceContext, x: Value) -> Value:
        """Keras's ``_int8_call``: inputs quantized per row, int8 x int8 into int32, cast
        to the compute dtype, divided by ``kernel_scale * inputs_scale``; the input's
        gradient that of ``x @ (kernel / kernel_scale)``."""
        kernel = ctx.weight(self._kernel)  # int8
        kernel_scale = ctx.weight(self.kernel_scale)  # in the compute dtype
        quantized, inputs_scale = quantizers.quantize_in_graph(x, (-1,))
        y = B.cast(B.matmul(quantized, kernel), x.dtype)
        y = B.div(y, B.mul(kernel_scale, inputs_scale))
        proxy = B.matmul(x, quantizers.dequantized(kernel, kernel_scale, x.dtype))
        return B.gradient_via(y, proxy)

    def _keras_saved_order(self):
        return lora.saved_order(self, self._kernel)

    def _keras_saved_values(self) -> dict:
        """The kernel Keras saves with LoRA: merged (``lora.merged_kernel_values``)."""
        shape = (self._kernel.shape[0], self.units)
        return lora.merged_kernel_values(
            self, self.units, shape, 0, lambda s: s, lambda s: s.squeeze(0)
        )

    @property
    def variable_serialization_spec(self) -> dict:
        """Keras's: for each quantization mode, the names of the variables its weights
        file holds, in order (``float8``, ``gptq`` and ``awq`` kcompile refuses)."""
        return {
            None: ["kernel", "bias"],
            "int8": ["kernel", "bias", "kernel_scale"],
            "int4": ["kernel", "bias", "kernel_scale", "kernel_zero", "g_idx"],
        }

    def get_config(self):
        lora_keys = {}
        if self.lora_rank:  # (Keras writes them only when set)
            lora_keys = {"lora_rank": self.lora_rank, "lora_alpha": self.lora_alpha}
        return {
            **super().get_config(),
            "units": self.units,
            "use_bias": self.use_bias,
            "activation": activations.serialize(self.activation),
            **weight_config(self, "kernel", "bias"),
            "quantization_config": quantizers.serialize_config(self.quantization_config),
            **lora_keys,
        }
