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
    """An element type. What each one is (its numpy dtype, its width, whether it is a
    float) is a row of ``_INFO``, so a new dtype is one entry there."""

    f32 = "f32"
    bf16 = "bf16"
    f16 = "f16"
    i32 = "i32"
    i8 = "i8"
    u8 = "u8"
    bool = "bool"

    @property
    def numpy(self) -> np.dtype:
        return _info(self).numpy()

    @property
    def is_float(self) -> bool:
        return _info(self).kind == "f"

    @property
    def is_narrow_float(self) -> bool:
        """A float narrower than f32: stored narrow, computed in f32, rounded once."""
        return self.is_float and self is not DType.f32

    @property
    def is_int(self) -> bool:
        return _info(self).kind in "iu"

    @property
    def itemsize(self) -> int:
        """Bytes per element."""
        return _info(self).bytes

    @property
    def keras_name(self) -> str:
        """The dtype's name in Keras (``"bfloat16"``, ``"int8"``, ...)."""
        return _info(self).keras

    @staticmethod
    def parse(text: str) -> DType:
        try:
            return DType(text)
        except ValueError:
            known = ", ".join(d.value for d in DType)
            raise ValueError(f"unknown dtype {text!r}; expected one of {known}") from None

    @staticmethod
    def from_numpy(dtype: np.dtype) -> DType:
        """The dtype that holds a numpy array's values: narrow floats and bytes keep their
        width, other floats are f32 and other integers i32 (converted, never
        reinterpreted)."""
        dtype = np.dtype(dtype)
        for d, info in _INFO.items():
            if dtype.name == info.numpy_name:  # by name: no ml_dtypes import
                return d
        if dtype.kind == "f":
            return DType.f32
        if dtype.kind in "iu":
            return DType.i32
        if dtype.kind == "b":
            return DType.bool
        raise TypeError(f"no kcompile dtype for numpy dtype {dtype}")

    @staticmethod
    def from_keras(name: str) -> DType:
        """The dtype of a Keras dtype name (64-bit ones narrowed to 32, as on Keras's JAX
        backend; the 16-bit integers to i32)."""
        for d, info in _INFO.items():
            if name == info.keras:
                return d
        wide = {"float64": DType.f32, "int64": DType.i32, "int16": DType.i32}
        wide |= {"uint16": DType.i32, "uint32": DType.i32, "uint64": DType.i32}
        if name in wide:
            return wide[name]
        raise ValueError(f"no kcompile dtype for Keras dtype {name!r}")


@dataclass(frozen=True)
class _DTypeInfo:
    kind: str  # numpy's kind letter: f, i, u, b
    bytes: int
    keras: str
    numpy_name: str  # numpy's name, or "bfloat16" (ml_dtypes)

    def numpy(self) -> np.dtype:
        if self.numpy_name == "bfloat16":
            return bfloat16()
        return np.dtype(self.numpy_name)


_INFO = {
    DType.f32: _DTypeInfo("f", 4, "float32", "float32"),
    DType.bf16: _DTypeInfo("f", 2, "bfloat16", "bfloat16"),
    DType.f16: _DTypeInfo("f", 2, "float16", "float16"),
    DType.i32: _DTypeInfo("i", 4, "int32", "int32"),
    DType.i8: _DTypeInfo("i", 1, "int8", "int8"),
    DType.u8: _DTypeInfo("u", 1, "uint8", "uint8"),
    DType.bool: _DTypeInfo("b", 1, "bool", "bool"),
}


def _info(dtype: DType) -> _DTypeInfo:
    return _INFO[dtype]


def bfloat16() -> np.dtype:
    """numpy's dtype for bfloat16 arrays: ``ml_dtypes.bfloat16``, the one JAX and Keras
    use (numpy has none of its own)."""
    try:
        import ml_dtypes
    except ImportError:
        raise ImportError(
            "bfloat16 arrays need the ml_dtypes package (pip install ml_dtypes)"
        ) from None
    return np.dtype(ml_dtypes.bfloat16)


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
    if len(shapes) == 2 and shapes[0] == shapes[1]:
        return tuple(shapes[0])  # (most operands: checked on every rebuild of a graph)
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
