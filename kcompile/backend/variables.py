"""Weights: named numpy arrays owned by layers, fed to the graphs as inputs."""

from __future__ import annotations

import numpy as np

from kcompile.backend.symbolic import TracedTensor, current_context
from kcompile.ir.types import bfloat16

ALIGN = 64

# A variable of a narrow float dtype keeps its values in a float32 array (the compiled steps
# bind float32 arrays), each rounded to the dtype: the array holds exactly the narrow
# variable's numbers, as Keras's bfloat16 variable does.
NARROW_FLOATS = ("bfloat16", "float16")
# A variable of an integer dtype (a quantized layer's int8 kernel, ``model.quantize``)
# keeps its values in an array of that dtype, bound as such: the step reads it as i8.
INTEGERS = {"int8": np.int8}
VARIABLE_DTYPES = ("float32", *NARROW_FLOATS, *INTEGERS)


def narrow_float(dtype: str) -> np.dtype | None:
    """numpy's dtype for a narrow float variable dtype (bfloat16 as ``ml_dtypes``, as JAX
    gives it), None for any other. Looked up on use: ml_dtypes takes a second to import,
    which every process importing kcompile would pay."""
    if dtype == "bfloat16":
        return bfloat16()
    return np.dtype(np.float16) if dtype == "float16" else None


def variable_dtype(dtype) -> str:
    """The name of a weight dtype (a name, a numpy dtype or None: float32), or a clear
    error for one kcompile's weights do not take."""
    name = "float32" if dtype is None else str(getattr(dtype, "name", dtype))
    name = {"float64": "float32", "half": "float16"}.get(name, name)
    if name not in VARIABLE_DTYPES:
        raise NotImplementedError(
            f"weights of dtype {name!r}: kcompile's weights are one of {VARIABLE_DTYPES}"
        )
    return name


def rounded(value, dtype: str) -> np.ndarray:
    """``value`` as float32 holding numbers of ``dtype`` (rounded to nearest, ties to even);
    for an integer dtype, in that dtype (cast as numpy and JAX cast: truncated)."""
    value = np.asarray(value)
    integer = INTEGERS.get(dtype)
    if integer is not None:
        return value.astype(integer, copy=False)
    narrow = narrow_float(dtype)
    if narrow is None:
        return value.astype(np.float32, copy=False)
    return value.astype(narrow).astype(np.float32)


def storage_dtype(dtype: str) -> type:
    """The numpy dtype of a variable's array: float32, or its integer dtype."""
    return INTEGERS.get(dtype, np.float32)


def stable_array(value, dtype) -> np.ndarray:
    """A 64-byte-aligned, C-contiguous copy of ``value``."""
    value = np.asarray(value, dtype=dtype)
    raw = np.empty(value.nbytes + ALIGN, np.uint8)
    start = (-raw.ctypes.data) % ALIGN
    out = raw[start : start + value.nbytes].view(value.dtype).reshape(value.shape)
    out[...] = value
    return out


class Variable:
    """One weight array. ``path`` (``dense/kernel``) names it in every graph."""

    # Keras's: a function of the weight applied after each optimizer update (a
    # ``keras.constraints.Constraint``), or None.
    constraint = None

    def __init__(
        self, value: np.ndarray, path: str, trainable: bool = True, dtype: str = "float32"
    ) -> None:
        self._dtype = variable_dtype(dtype)
        # The array is allocated once and updated in place: compiled steps bind to it.
        self.value = stable_array(rounded(value, self._dtype), storage_dtype(self._dtype))
        self.path = path
        self.trainable = trainable
        # Read cast to the compute dtype inside a layer of a mixed policy (Keras's).
        self.autocast = True

    @property
    def name(self) -> str:
        return self.path.rsplit("/", 1)[-1]

    @property
    def shape(self) -> tuple[int, ...]:
        return self.value.shape

    @property
    def dtype(self) -> str:
        return self._dtype

    def numpy(self) -> np.ndarray:
        """A copy in the variable's dtype (bfloat16 as ``ml_dtypes``, as JAX gives it)."""
        narrow = narrow_float(self._dtype)
        return self.value.copy() if narrow is None else self.value.astype(narrow)

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        return self.value if dtype is None else self.value.astype(dtype)

    def assign(self, value) -> None:
        """Set the value; inside a traced step (a layer's ``call``), the step writes it."""
        ctx = current_context()
        if ctx is not None and hasattr(ctx, "assign"):
            ctx.assign(self, value)
            return
        if isinstance(value, TracedTensor):
            raise TypeError(f"variable {self.path} assigned a traced value outside its step")
        value = np.asarray(value)
        if value.shape != self.value.shape:
            raise ValueError(
                f"variable {self.path}: expected shape {self.value.shape}, got {value.shape}"
            )
        np.copyto(self.value, rounded(value, self._dtype), casting="unsafe")

    def assign_add(self, delta) -> None:
        self.assign(self + delta)

    def assign_sub(self, delta) -> None:
        self.assign(self - delta)

    def __repr__(self) -> str:
        return f"<Variable path={self.path} shape={self.shape} trainable={self.trainable}>"
