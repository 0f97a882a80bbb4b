"""Keras's LoRA (low-rank adaptation) on Dense, EinsumDense and Embedding, as Keras 3.15
has it: ``enable_lora(rank)`` freezes the layer's kernel (or table) and adds two trainable
float32 weights ``a`` (the kernel's shape with its last axis ``rank``) and ``b`` (rank,
last axis); the layer computes with ``kernel + (alpha / rank) * a @ b``. A quantized layer
keeps its integer product and adds ``(alpha / rank) * (x a) b`` to its result. Saving
writes the merged kernel in the layer's own form (requantized, with a new scale, when
quantized) and not ``a`` and ``b``; loading sets them to zeros, so the loaded layer
computes what the saved one did. The helpers here are what the three layers share."""

from __future__ import annotations

from typing import Any

import numpy as np

from kcompile import initializers, quantizers
from kcompile.backend.variables import Variable
from kcompile.ir import Value
from kcompile.ir import build as B


def init_args(layer: Any, lora_rank: int | None, lora_alpha: float | None) -> None:
    """The constructor's ``lora_rank`` / ``lora_alpha`` (alpha defaults to the rank)."""
    layer.lora_rank = lora_rank
    layer.lora_alpha = lora_alpha if lora_alpha is not None else lora_rank
    layer.lora_enabled = False


# How Keras's refusal names a constrained weight (its message says "embedding").
_CONSTRAINED = {"kernel": "kernel", "embeddings": "embedding"}


class LoraLayer:
    """Keras's ``enable_lora`` for a layer whose LoRA weight is ``_<lora_weight>`` (its
    regularizer and constraint ``<lora_weight>_regularizer`` / ``_constraint``):
    Dense's and EinsumDense's kernel, Embedding's table."""

    lora_weight = "kernel"

    def _lora_base_shape(self) -> tuple[int, ...]:
        """The weight's shape as its values are (an int4 kernel's unpacked)."""
        return tuple(getattr(self, f"_{self.lora_weight}").shape)

    def enable_lora(
        self,
        rank: int,
        lora_alpha: float | None = None,
        a_initializer: Any = "he_uniform",
        b_initializer: Any = "zeros",
    ) -> None:
        """Keras's: the weight frozen, ``lora_<weight>_a`` (its shape with the last axis
        ``rank``) and ``lora_<weight>_b`` (rank, its last axis) added in float32,
        trainable; on a quantized layer too (the integer weight stays as it is, the
        low-rank product is added to the integer product's result)."""
        prefix = self.lora_weight
        if getattr(self, f"{prefix}_constraint", None):
            raise ValueError(
                f"Lora is incompatible with {_CONSTRAINED[prefix]} constraints. In order to "
                f"enable lora on this layer, remove the `{prefix}_constraint` argument."
            )
        if not self.built:
            raise ValueError("Cannot enable lora on a layer that isn't yet built.")
        if self.lora_enabled:
            raise ValueError("lora is already enabled. This can only be done once per layer.")
        if not isinstance(rank, int) or rank <= 0:
            raise ValueError(
                f"{type(self).__name__} '{self.name}': the LoRA rank must be a "
                f"positive integer, got {rank!r}"
            )
        shape = self._lora_base_shape()
        regularizer = getattr(self, f"{prefix}_regularizer", None)
        a = self.add_weight(
            (*shape[:-1], rank),
            initializers.get(a_initializer),
            dtype="float32",
            name=f"lora_{prefix}_a",
            regularizer=regularizer,
        )
        b = self.add_weight(
            (rank, shape[-1]),
            initializers.get(b_initializer),
            dtype="float32",
            name=f"lora_{prefix}_b",
            regularizer=regularizer,
        )
        setattr(self, f"lora_{prefix}_a", a)
        setattr(self, f"lora_{prefix}_b", b)
        self._lora_pair = (a, b)
        getattr(self, f"_{prefix}").trainable = False
        self.lora_enabled = True
        self.lora_rank = rank
        self.lora_alpha = lora_alpha if lora_alpha is not None else rank


def scale(layer: Any) -> float:
    return layer.lora_alpha / layer.lora_rank


def delta(layer: Any, ctx: Any) -> Value:
    """``(alpha / rank) * a @ b`` in the step (a delta of the kernel's shape)."""
    a, b = (ctx.weight(v) for v in layer._lora_pair)
    product = B.matmul(a, b)
    return B.mul(product, B.const(product.graph, scale(layer), product.dtype))


def added_to_kernel(layer: Any, ctx: Any, kernel: Value) -> Value:
    """Keras's float ``kernel`` property: ``kernel + (alpha / rank) * a @ b``, in the
    kernel's dtype."""
    return B.add(kernel, B.cast(delta(layer, ctx), kernel.dtype))


def added_to_output(layer: Any, ctx: Any, y: Value, lora_x: Value) -> Value:
    """Keras's quantized calls: ``y + (alpha / rank) * (lora_x @ b)``, where ``lora_x`` is
    the input's product with ``a`` (by the layer's own product: a matmul, the einsum, a
    take of rows), in ``y``'s dtype."""
    b = ctx.weight(layer._lora_pair[1])
    product = B.matmul(lora_x, b)
    scaled = B.mul(product, B.const(product.graph, scale(layer), product.dtype))
    return B.cast(B.add(y, B.cast(scaled, y.dtype)), y.dtype)


def merged(layer: Any, float_kernel: np.ndarray) -> np.ndarray:
    """A float kernel (or table) with the layer's delta added, as numpy float32."""
    a, b = (v.numpy().astype(np.float32) for v in layer._lora_pair)
    delta_value = np.float32(scale(layer)) * (a @ b)
    return (np.asarray(float_kernel, np.float32).reshape(delta_value.shape) + delta_value).astype(
        np.float32
    )


def saved_order(layer: Any, kernel: Variable) -> list[Variable] | None:
    """A Dense's or EinsumDense's variables in Keras's saved order: the quantized order
    (``quantizers.saved_order``), or with LoRA the kernel and bias without ``a`` and
    ``b``; None for a float layer without LoRA (saved as made)."""
    saved = quantizers.saved_order(layer, kernel)
    if saved is None and layer.lora_enabled:
        saved = [v for v in (kernel, layer.bias) if v is not None]
    return saved


def merged_kernel_values(
    layer: Any,
    columns: int,
    shape: tuple[int, ...],
    reduced_axes: Any,
    scale_as_kernel: Any,
    scale_as_saved: Any,
) -> dict:
    """Keras's ``_get_kernel_with_merged_lora`` (Dense, EinsumDense) and
    ``_get_embeddings_with_merged_lora`` (Embedding): the layer's LoRA weight saved with
    its delta added; a quantized one dequantized, merged and quantized again as
    ``quantize`` does (int8 over ``reduced_axes``; int4 over the (rows, ``columns``) it
    packs), with its new scale (``<weight>_scale``; ``scale_as_kernel`` /
    ``scale_as_saved``: the layer's layouts of an int8 scale) and zero points; by
    variable, none without LoRA."""
    if not layer.lora_enabled:
        return {}
    variable = getattr(layer, f"_{layer.lora_weight}")
    kernel = variable.numpy()
    if layer.quantization_mode is None:
        return {variable: merged(layer, kernel)}
    if layer.quantization_mode == "int8":
        scale_variable = getattr(layer, f"{layer.lora_weight}_scale")
        float_kernel = kernel.astype(np.float32) / scale_as_kernel(scale_variable.numpy())
        values, scale = quantizers.abs_max_quantize(
            merged(layer, float_kernel), axis=reduced_axes, to_numpy=True
        )
        return {variable: values, scale_variable: scale_as_saved(scale)}
    return _merged_int4(layer, quantizers.unpack_int4(kernel, columns, axis=-1), shape)


def _merged_int4(layer: Any, unpacked: np.ndarray, shape: tuple[int, ...]) -> dict:
    """Keras's merge of an int4 kernel (``unpacked``: its (rows, columns) values; ``shape``
    the kernel's): dequantized per column or in groups, the delta added, quantized again
    as ``quantize`` does; the new packed values, scale and zero points by variable."""
    scale = layer.kernel_scale.numpy()
    zero = getattr(layer, "kernel_zero", None)
    if layer._int4_block_size is None:
        float_kernel = unpacked.astype(np.float32) / scale
    else:
        float_kernel = quantizers.dequantize_grouped(
            unpacked, scale, zero.numpy(), layer.g_idx.numpy()
        )
    kernel = merged(layer, float_kernel.reshape(shape)).reshape(unpacked.shape)
    packed, scale, zero_values = quantizers.quantize_int4_kernel(kernel, layer._int4_block_size)
    saved = {layer._kernel: packed, layer.kernel_scale: scale}
    if zero is not None:
        saved[zero] = zero_values
    return saved


def zero_after_load(layer: Any) -> None:
    """Keras's ``load_own_variables`` on a LoRA layer: the saved kernel holds the delta
    already, so ``a`` and ``b`` start again from zeros."""
    if getattr(layer, "lora_enabled", False):
        for v in layer._lora_pair:
            v.assign(np.zeros(v.shape, np.float32))
