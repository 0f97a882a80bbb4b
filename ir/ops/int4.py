"""A quantized layer's int4 kernel (``model.quantize("int4")``) and products that read it.

Keras keeps an int4 kernel of ``K x N`` values two a byte along the columns: ``packed``
is ``i8[K, ceil(N / 2)]``, the first value of each pair in the low nibble, both signed
(``pack_int4``). In groups of rows (Keras's default) each value has its row's group's
``scale`` and ``zero`` point: ``scale`` f32 and ``zero`` i8, both ``[G, N]``, and
``g_idx`` (f32 ``[K]``, as Keras keeps it) names each row's group.

- ``dequantize_int4(packed) {columns=N}``: the f32 values of the nibbles (per channel,
  the layer divides the product by its scale afterwards, as Keras does);
  ``dequantize_int4(packed, scale, zero, g_idx) {columns=N}``: ``(q - zero) * scale``
  with each row's group's ``scale`` and ``zero`` (Keras's ``dequantize_with_sz_map``), the
  subtraction exact, one rounding.
- ``matmul_int4(a, packed[, scale, zero, g_idx]) {columns=N}``: ``a[*L, K] ·
  dequantize_int4(...)`` -> f32 ``[*L, N]``, the product whose B the native GEMM
  unpacks as it packs its panels (``passes.int4_products`` makes it after autodiff): the
  f32 kernel never exists in memory. Its input's gradient reads the dequantized kernel.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from kcompile.ir import build as B
from kcompile.ir import traits as T
from kcompile.ir.graph import Value
from kcompile.ir.ops.common import expect_dtype
from kcompile.ir.registry import OpDef, register
from kcompile.ir.types import DType, ShapeError, TensorType


def _check_kernel(types: list[TensorType], attrs, op: str) -> tuple[int, int]:
    """The kernel's (rows, columns), its operands checked."""
    if len(types) not in (1, 4):
        raise ShapeError(
            f"{op} takes the packed kernel, or it with scale, zero and g_idx; "
            f"got {len(types)} operand(s)"
        )
    packed = types[0]
    expect_dtype(packed, DType.i8, f"{op}'s packed kernel")
    columns = attrs.get("columns")
    if packed.rank != 2 or not isinstance(columns, int) or (columns + 1) // 2 != packed.shape[1]:
        raise ShapeError(
            f"{op} needs a packed kernel [K, ceil(columns / 2)] and its columns, "
            f"got {packed} and columns={columns!r}"
        )
    rows = packed.shape[0]
    if len(types) == 4:
        scale, zero, g_idx = types[1:]
        expect_dtype(scale, DType.f32, f"{op}'s scale")
        expect_dtype(zero, DType.i8, f"{op}'s zero point")
        expect_dtype(g_idx, DType.f32, f"{op}'s g_idx")
        if scale.rank != 2 or scale.shape[1] != columns or zero.shape != scale.shape:
            raise ShapeError(
                f"{op}'s scale and zero must be [groups, {columns}], got {scale}, {zero}"
            )
        if g_idx.shape != (rows,):
            raise ShapeError(f"{op}'s g_idx must hold one group per row ({rows}), got {g_idx}")
    return rows, columns


def unpacked(packed: np.ndarray, columns: int) -> np.ndarray:
    """The signed nibbles of ``packed`` (``i8[K, ceil(N / 2)]``) as int8 ``[K, N]``."""
    bytes_ = packed.astype(np.int16)
    low = ((bytes_ & 0x0F) ^ 8) - 8
    high = (((bytes_ >> 4) & 0x0F) ^ 8) - 8
    values = np.stack([low, high], axis=-1).reshape(packed.shape[0], -1)
    return values[:, :columns].astype(np.int8)


def dequantized(args: list[np.ndarray], columns: int, dtype: np.dtype) -> np.ndarray:
    """``dequantize_int4``'s values, in ``dtype`` (f32, or f64 in gradient checks)."""
    values = unpacked(args[0], columns).astype(dtype)
    if len(args) == 1:
        return values
    scale, zero, g_idx = args[1:]
    groups = np.asarray(g_idx).astype(np.int64)
    if groups.size and (groups.min() < 0 or groups.max() >= scale.shape[0]):
        raise ValueError(f"dequantize_int4: g_idx holds groups outside 0..{scale.shape[0] - 1}")
    return (values - zero[groups].astype(dtype)) * scale[groups].astype(dtype)


def _infer_dequantize(types, attrs):
    rows, columns = _check_kernel(types, attrs, "dequantize_int4")
    return [TensorType(DType.f32, (rows, columns))]


def _reference_dequantize(ctx, args, attrs):
    return [dequantized(args, attrs["columns"], ctx.storage(DType.f32))]


register(
    OpDef(
        "dequantize_int4",
        "int4",
        None,
        _infer_dequantize,
        _reference_dequantize,
        # Not differentiable: the kernel, its scales, zero points and groups are frozen
        # (Keras's int4 variables are not trainable).
        None,
        doc="dequantize_int4(packed[, scale, zero, g_idx]) {columns}: an int4 kernel's f32 values",
        traits=T.Traits(T.Pattern.OPAQUE),
    )
)


def _infer_product(types, attrs):
    if not types:
        raise ShapeError("matmul_int4 takes an operand and the int4 kernel")
    a = types[0]
    expect_dtype(a, DType.f32, "matmul_int4's left operand")
    rows, columns = _check_kernel(types[1:], attrs, "matmul_int4")
    if a.rank < 1 or a.shape[-1] != rows:
        raise ShapeError(f"contracted dimensions differ: {a} · int4 kernel of {rows} rows")
    return [TensorType(DType.f32, (*a.shape[:-1], columns))]


def _reference_product(ctx, args, attrs):
    a = args[0]
    return [a @ dequantized(args[1:], attrs["columns"], a.dtype)]


def _product_gradient(node, g):
    """The input's gradient through the dequantized kernel (``gy · kernelᵀ``); none to the
    kernel's operands, which are frozen."""
    _, *kernel = node.inputs
    float_kernel = B.dequantize_int4(kernel[0], node.attrs["columns"], kernel[1:])
    return [B.matmul(g[0], float_kernel, transpose_b=True), *([None] * len(kernel))]


register(
    OpDef(
        "matmul_int4",
        "int4",
        None,
        _infer_product,
        _reference_product,
        _product_gradient,
        doc="matmul_int4(a, packed[, scale, zero, g_idx]) {columns}: a · its int4 kernel",
        traits=T.Traits(T.Pattern.PRODUCT, loop_bodies=frozenset({"matmul"})),
    )
)


def expanded(packed: Value, columns: int, grouped: Sequence[Value] = ()) -> Value:
    """``dequantize_int4`` in primitive ops, for the code generators (which lower
    ``matmul_int4`` but not ``dequantize_int4`` itself: a training step's backward reads
    the dequantized kernel). Float arithmetic, exact on these small integers: a signed
    byte is ``16 * high + low`` with ``high`` its signed top nibble and ``low`` its bottom
    nibble unsigned, so ``high = floor(b / 16)`` (``b * 0.0625``, exact) and ``low = b -
    16 * high``, signed by subtracting 16 from 8 and above; the halves interleaved along
    the columns (the first of a pair is the low nibble), the padding column dropped.
    Grouped: ``(q - zero) * scale`` with each row's group's values (``take`` by
    ``g_idx``), in the scale's dtype."""
    rows, pairs = packed.shape
    byte = B.cast(packed, DType.f32)
    high = B.floor(B.mul(byte, 0.0625))
    low = B.sub(byte, B.mul(high, 16.0))
    low = B.sub(low, B.mul(B.floor(B.mul(low, 0.125)), 16.0))
    both = B.concat([B.reshape(low, (rows, pairs, 1)), B.reshape(high, (rows, pairs, 1))], 2)
    values = B.reshape(both, (rows, 2 * pairs))
    if 2 * pairs != columns:
        values = B.slice_(values, (0, 0), (rows, columns))
    if not grouped:
        return values
    scale, zero, g_idx = grouped
    groups = B.cast(g_idx, DType.i32)
    zeros = B.cast(B.take(zero, groups), scale.dtype)
    return B.mul(B.sub(B.cast(values, scale.dtype), zeros), B.take(scale, groups))
