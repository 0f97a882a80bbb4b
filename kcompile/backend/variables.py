"""Weights: named numpy arrays owned by layers, fed to the graphs as inputs."""

from __future__ import annotations

import numpy as np

from kcompile.backend.symbolic import TracedTensor, current_context

ALIGN = 64


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

    def __init__(self, value: np.ndarray, path: str, trainable: bool = True) -> None:
        # The array is allocated once and updated in place: compiled steps bind to it.
        self.value = stable_array(value, np.float32)
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
        return "float32"

    def numpy(self) -> np.ndarray:
        return self.value.copy()

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
        np.copyto(self.value, value, casting="unsafe")

    def assign_add(self, delta) -> None:
        self.assign(self + delta)

    def assign_sub(self, delta) -> None:
        self.assign(self - delta)

    def __repr__(self) -> str:
        return f"<Variable path={self.path} shape={self.shape} trainable={self.trainable}>"
