"""Eager results that carry a Keras mask (``_keras_mask``).

Called on arrays, a Keras layer returns backend arrays, and one whose output has a mask
(an ``Embedding`` with ``mask_zero``, ``Masking``, a layer's ``compute_mask``) sets the
mask on that array as ``_keras_mask``; the next eager call reads it from there (Keras's
``backend.set_keras_mask`` / ``get_keras_mask``). kcompile's eager results are numpy
arrays, which take no attributes: a masked one is a view of this subclass. Arrays made
from it by numpy (arithmetic, reductions) are new tensors, plain and without the mask,
as Keras's are.
"""

from __future__ import annotations

from typing import Any

import numpy as np


class ArrayWithMask(np.ndarray):
    """A numpy array with Keras's ``_keras_mask`` attribute (a boolean array)."""

    def __array_wrap__(self, out: np.ndarray, context: Any = None, return_scalar: bool = False):
        # What numpy computes from this array is a new tensor: plain, no mask.
        out = np.asarray(out)
        return out[()] if return_scalar else out


def with_mask(array: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    """``array`` with ``mask`` attached as ``_keras_mask`` (as is, when ``mask`` is None)."""
    if mask is None:
        return array
    out = np.asarray(array).view(ArrayWithMask)
    out._keras_mask = np.asarray(mask, dtype=bool)
    return out


def mask_of(x: Any) -> np.ndarray | None:
    """The mask attached to ``x`` by an earlier eager call, or None."""
    mask = getattr(x, "_keras_mask", None)
    return None if mask is None else np.asarray(mask, dtype=bool)
