"""The ``keras.ops`` that run on concrete arrays only: ``nonzero`` and ``unique`` (the
shape of their output depends on the values, and a compiled kcompile step has static
shapes), ``nextafter`` and ``view`` (they read or write a float's bits, and kcompile's
IR has no bitcast). On arrays, numbers and variables outside a traced step they compute
with numpy, with Keras's (JAX backend's) results and dtypes; inside a traced step, or
on the functional API's symbolic tensors, they raise ``NotImplementedError`` naming the
op and why, as ``bincount`` does.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from kcompile.backend.dtypes import standardize_dtype
from kcompile.backend.keras_tensor import KerasTensor
from kcompile.backend.symbolic import TracedTensor, current_context
from kcompile.backend.variables import Variable
from kcompile.ops.core import unsupported
from kcompile.tree import flatten

_VALUE_SHAPED = "its output's shape depends on the values, and a compiled step has static shapes"
_BITS = "it reads the bits of a float, and kcompile's IR has no bitcast"
# The dtypes a view may produce: those numpy holds without extensions, 32 bits or less
# (Keras's JAX backend narrows 64-bit types).
_VIEW_DTYPES = ("float32", "float16", "int32", "uint32", "int16", "uint16", "int8", "uint8")


def concrete(name: str, why: str, *xs: Any) -> list[np.ndarray | None]:
    """The operands as numpy arrays (None stays None), or ``NotImplementedError`` for
    ``keras.ops.<name>`` when one is traced or symbolic (the step is being compiled)."""
    leaves = flatten(xs)
    symbolic = any(isinstance(x, TracedTensor | KerasTensor) for x in leaves)
    if symbolic or (current_context() is not None and any(isinstance(x, Variable) for x in leaves)):
        raise unsupported(
            name, f"inside a compiled step or a model ({why}); call it on concrete arrays"
        )
    return [None if x is None else np.asarray(getattr(x, "value", x)) for x in xs]


def _tensor(array: np.ndarray) -> np.ndarray:
    """A numpy result in the dtypes Keras's JAX backend gives (64-bit narrowed)."""
    kind = array.dtype.kind
    if kind == "f":
        return array.astype(np.float32)
    if kind in "iu" and array.dtype.itemsize == 8:
        return array.astype(np.int32)
    return array


def nonzero(x) -> tuple[np.ndarray, ...]:
    """The indices of the non-zero elements, one int32 array per axis."""
    (array,) = concrete("nonzero", _VALUE_SHAPED, x)
    return tuple(i.astype(np.int32) for i in np.nonzero(array))


def unique(
    x,
    sorted: bool = True,
    return_index: bool = False,
    return_inverse: bool = False,
    return_counts: bool = False,
    axis: int | None = None,
    size: int | None = None,
    fill_value: Any = None,
):
    """The sorted unique elements (or slices along ``axis``) of ``x``, with the indices,
    inverse and counts asked for (int32); NaNs are each unique, and with ``size`` the
    values are cut or padded to that length (with ``fill_value``, default the smallest
    value), as JAX's. ``sorted=False`` gives them sorted too, as JAX's does."""
    (array,) = concrete("unique", _VALUE_SHAPED, x)
    array = _tensor(array)
    parts = np.unique(
        array,
        return_index=True,
        return_inverse=True,
        return_counts=True,
        axis=axis,
        equal_nan=False,
    )
    values, index, inverse, counts = parts
    if axis is None:
        inverse = inverse.reshape(array.shape)
    if size is not None:
        values, index, counts = _to_size(values, index, counts, int(size), fill_value, axis)
    extras = [
        a.astype(np.int32)
        for a, wanted in ((index, return_index), (inverse, return_inverse), (counts, return_counts))
        if wanted
    ]
    return (values, *extras) if extras else values


def _to_size(values, index, counts, size: int, fill_value, axis):
    along = 0 if axis is None else axis
    have = values.shape[along]
    if have >= size:
        take = np.arange(size)
        return (np.take(values, take, along), index[:size], counts[:size])
    missing = size - have
    fill = np.take(values, [0], along) if fill_value is None else None
    pad_shape = list(values.shape)
    pad_shape[along] = missing
    filler = (
        np.repeat(fill, missing, along)
        if fill is not None
        else np.full(pad_shape, fill_value, values.dtype)
    )
    values = np.concatenate([values, filler], along)
    index = np.concatenate([index, np.zeros(missing, index.dtype)])  # JAX pads with 0s
    counts = np.concatenate([counts, np.zeros(missing, counts.dtype)])
    return values, index, counts


def nextafter(x1, x2) -> np.ndarray:
    """The next float32 after ``x1`` towards ``x2``, elementwise."""
    a, b = concrete("nextafter", _BITS, x1, x2)
    return np.nextafter(a.astype(np.float32), b.astype(np.float32))


def view(x, dtype=None) -> np.ndarray:
    """The bits of ``x`` read as ``dtype`` (numpy's ``ndarray.view``: the last axis
    grows or shrinks when the item sizes differ)."""
    (array,) = concrete("view", _BITS, x)
    array = _tensor(array)
    if dtype is None:
        return array
    name = standardize_dtype(dtype)
    if name not in _VIEW_DTYPES:
        raise unsupported(
            "view",
            f"dtype={name!r}: kcompile views its arrays only as one of {', '.join(_VIEW_DTYPES)}",
        )
    if array.ndim == 0 and array.dtype.itemsize != np.dtype(name).itemsize:
        raise ValueError(
            f"keras.ops.view: a scalar of {array.dtype} cannot be viewed as {name} "
            "(the item sizes differ)"
        )
    return array.view(np.dtype(name))


__all__ = ["nextafter", "nonzero", "unique", "view"]
