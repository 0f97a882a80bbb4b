"""Tensor types: a dtype and a static shape whose dims may be the batch symbol ``N``."""

from __future__ import annotations

import enum
from dataclasses import dataclass

import numpy as np

BATCH = "N"
"""The one symbolic dimension: the batch size, bound at run time."""

Dim = int | str
Shape = tuple[Dim, ...]


class DType(enum.Enum):
    f32 = "f32"
    i32 = "i32"
    bool = "bool"

    @property
    def numpy(self) -> np.dtype:
        return _NUMPY[self]

    @property
    def is_float(self) -> bool:
        return self is DType.f32

    @staticmethod
    def parse(text: str) -> DType:
        try:
            return DType(text)
        except ValueError:
            known = ", ".join(d.value for d in DType)
            raise ValueError(f"unknown dtype {text!r}; expected one of {known}") from None

    @staticmethod
    def from_numpy(dtype: np.dtype) -> DType:
        dtype = np.dtype(dtype)
        if dtype.kind == "f":
            return DType.f32
        if dtype.kind in "iu":
            return DType.i32
        if dtype.kind == "b":
            return DType.bool
        raise TypeError(f"no kcompile dtype for numpy dtype {dtype}")


_NUMPY = {
    DType.f32: np.dtype(np.float32),
    DType.i32: np.dtype(np.int32),
    DType.bool: np.dtype(np.bool_),
}


class ShapeError(ValueError):
    """An op was given operands whose shapes or dtypes it cannot take."""


@dataclass(frozen=True, slots=True)
class TensorType:
    dtype: DType
    shape: Shape

    def __post_init__(self) -> None:
        for d in self.shape:
            if isinstance(d, str):
                if d != BATCH:
                    raise ShapeError(f"unknown symbolic dimension {d!r}; only {BATCH} is allowed")
            elif not isinstance(d, int) or isinstance(d, bool) or d < 0:
                raise ShapeError(f"bad dimension {d!r} in shape {self.shape}")

    @property
    def rank(self) -> int:
        return len(self.shape)

    @property
    def is_static(self) -> bool:
        return BATCH not in self.shape

    def with_shape(self, shape: Shape) -> TensorType:
        return TensorType(self.dtype, tuple(shape))

    def with_dtype(self, dtype: DType) -> TensorType:
        return TensorType(dtype, self.shape)

    def concrete_shape(self, n: int | None) -> tuple[int, ...]:
        """The shape with ``N`` replaced by the batch size ``n``."""
        return bind_shape(self.shape, n)

    def static_size(self) -> int:
        """Number of elements, counting ``N`` as 1."""
        size = 1
        for d in self.shape:
            size *= 1 if d == BATCH else d
        return size

    def __str__(self) -> str:
        return f"{self.dtype.value}[{','.join(str(d) for d in self.shape)}]"


def bind_shape(shape: Shape, n: int | None) -> tuple[int, ...]:
    """``shape`` with ``N`` replaced by the batch size ``n``."""
    if BATCH not in shape:
        return tuple(shape)  # type: ignore[arg-type]
    if n is None:
        raise ShapeError(f"shape {_fmt_shape(shape)} needs a batch size")
    return tuple(n if d == BATCH else d for d in shape)


def f32(*shape: Dim) -> TensorType:
    return TensorType(DType.f32, tuple(shape))


def i32(*shape: Dim) -> TensorType:
    return TensorType(DType.i32, tuple(shape))


def boolean(*shape: Dim) -> TensorType:
    return TensorType(DType.bool, tuple(shape))


def broadcast_shapes(*shapes: Shape) -> Shape:
    """Numpy broadcasting, where ``N`` matches only ``N`` or 1."""
    rank = max((len(s) for s in shapes), default=0)
    out: list[Dim] = []
    for axis in range(rank):
        dims = {s[axis - rank + len(s)] for s in shapes if axis - rank + len(s) >= 0}
        dims.discard(1)
        if len(dims) > 1:
            shown = " and ".join(_fmt_shape(s) for s in shapes)
            raise ShapeError(f"shapes {shown} do not broadcast")
        out.append(dims.pop() if dims else 1)
    return tuple(out)


def _fmt_shape(shape: Shape) -> str:
    return "[" + ",".join(str(d) for d in shape) + "]"


def normalize_axes(axes: int | tuple[int, ...] | list[int] | None, rank: int) -> tuple[int, ...]:
    if axes is None:
        return tuple(range(rank))
    if isinstance(axes, int):
        axes = (axes,)
    out = []
    for a in axes:
        if not -rank <= a < rank:
            raise ShapeError(f"axis {a} is out of range for rank {rank}")
        out.append(a % rank if rank else 0)
    if len(set(out)) != len(out):
        raise ShapeError(f"repeated axis in {tuple(axes)}")
    return tuple(sorted(out))
