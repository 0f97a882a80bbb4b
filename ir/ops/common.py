"""Small helpers shared by the op families."""

from __future__ import annotations

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


def same_dtype(types: list[TensorType]) -> DType:
    dtypes = {t.dtype for t in types}
    if len(dtypes) != 1:
        shown = ", ".join(str(t) for t in types)
        raise ShapeError(f"operands must have one dtype, got {shown}")
    return dtypes.pop()
