"""Small helpers shared by the op families."""

from __future__ import annotations

import numpy as np

from kcompile.ir.types import DType, ShapeError, TensorType


def expect_arity(types: list[TensorType], n: int) -> None:
    if len(types) != n:
        raise ShapeError(f"expected {n} operand(s), got {len(types)}")


def expect_float(t: TensorType, what: str = "operand") -> None:
    if not t.dtype.is_float:
        raise ShapeError(f"{what} must be a float (f32, bf16, f16), got {t}")


def expect_dtype(t: TensorType, dtype: DType, what: str = "operand") -> None:
    if t.dtype is not dtype:
        raise ShapeError(f"{what} must be {dtype.value}, got {t}")


def product_dtype(types: list[TensorType], attrs) -> DType:
    """The dtype of a product's result: its operands' one dtype; f32 for a product that
    multiplies bf16 values (``precision="bf16"``) of operands held in f32 or stored in
    bf16 (``passes.narrow_storage``), which it reads widened."""
    dtypes = {t.dtype for t in types}
    if attrs.get("precision") == "bf16" and dtypes <= {DType.f32, DType.bf16}:
        return DType.f32
    if attrs.get("precision") == "i8" and dtypes <= {DType.f32, DType.i8}:
        return DType.f32  # int8 values, held in f32 or stored in bytes (passes.int8_products)
    return same_dtype(types)


def widened(ctx, args: list) -> list:
    """A product's operands for the reference: those stored in bf16 or int8 widened to the
    f32 the product computes in (exact)."""
    narrow = (DType.bf16.numpy, np.dtype(np.int8))
    return [a.astype(ctx.storage(DType.f32)) if a.dtype in narrow else a for a in args]


def same_dtype(types: list[TensorType]) -> DType:
    if len(types) == 2 and types[0].dtype is types[1].dtype:
        return types[0].dtype  # (the common case, checked on every rebuild of a graph)
    dtypes = {t.dtype for t in types}
    if len(dtypes) != 1:
        shown = ", ".join(str(t) for t in types)
        raise ShapeError(f"operands must have one dtype, got {shown}")
    return dtypes.pop()
