"""``kcompile.utils.data_utils``: the Keras utilities kcompile provides."""

from __future__ import annotations

import numpy as np


def to_categorical(y, num_classes: int | None = None) -> np.ndarray:
    y = np.asarray(y, dtype=np.int64)
    if y.ndim > 1 and y.shape[-1] == 1:
        y = y.reshape(y.shape[:-1])
    num_classes = int(y.max()) + 1 if num_classes is None else num_classes
    out = np.zeros((*y.shape, num_classes), dtype=np.float32)
    np.put_along_axis(out, y[..., None], 1.0, axis=-1)
    return out


def normalize(x, axis: int = -1, order: int = 2) -> np.ndarray:
    """Keras's ``utils.normalize``: ``x`` divided by its ``order``-norm along ``axis``
    (zero norms left as they are)."""
    x = np.asarray(x, dtype=np.float32)
    norm = np.atleast_1d(np.linalg.norm(x, order, axis))
    norm[norm == 0] = 1
    return x / np.expand_dims(norm, axis)


def pad_sequences(
    sequences,
    maxlen: int | None = None,
    dtype: str = "int32",
    padding: str = "pre",
    truncating: str = "pre",
    value: float = 0.0,
) -> np.ndarray:
    """Keras's ``pad_sequences``: a list of sequences as one [samples, maxlen] array,
    padded with ``value`` and cut to ``maxlen`` at the start (``"pre"``) or end
    (``"post"``)."""
    if padding not in ("pre", "post") or truncating not in ("pre", "post"):
        raise ValueError(
            f"pad_sequences: padding and truncating are 'pre' or 'post', got {padding!r} "
            f"and {truncating!r}"
        )
    try:
        rows = [np.asarray(s) for s in sequences]
    except TypeError:
        raise ValueError("pad_sequences: `sequences` must be iterable") from None
    lengths = [len(r) for r in rows]
    maxlen = max(lengths, default=0) if maxlen is None else int(maxlen)
    tail = next((r.shape[1:] for r in rows if len(r)), ())
    out = np.full((len(rows), maxlen, *tail), value, dtype=dtype)
    for i, row in enumerate(rows):
        if not len(row):
            continue
        if row.shape[1:] != tail:
            raise ValueError(
                f"pad_sequences: sequence {i} has elements of shape {row.shape[1:]}, the "
                f"others {tail}"
            )
        cut = row[-maxlen:] if truncating == "pre" else row[:maxlen]
        if padding == "post":
            out[i, : len(cut)] = cut
        else:
            out[i, maxlen - len(cut) :] = cut
    return out


def split_dataset(dataset, left_size=None, right_size=None, shuffle: bool = False, seed=None):
    """Keras's ``split_dataset`` for arrays and tuples (or lists) of arrays: two parts of
    ``left_size`` and ``right_size`` samples (fractions of the whole when floats; the
    other part takes the rest)."""
    arrays = list(dataset) if isinstance(dataset, tuple | list) else [dataset]
    arrays = [np.asarray(a) for a in arrays]
    n = len(arrays[0])
    if any(len(a) != n for a in arrays):
        raise ValueError("split_dataset: the arrays have different numbers of samples")

    def count(size):
        if size is None:
            return None
        if isinstance(size, float):
            if not 0 < size < 1:
                raise ValueError(f"split_dataset: a fraction must be in (0, 1), got {size}")
            return round(size * n)
        return int(size)

    left, right = count(left_size), count(right_size)
    if left is None and right is None:
        raise ValueError("split_dataset: give left_size or right_size")
    left = n - right if left is None else left
    right = n - left if right is None else right
    if left + right > n or min(left, right) < 0:
        raise ValueError(f"split_dataset: sizes {left} + {right} exceed the {n} samples")
    order = np.arange(n)
    if shuffle:
        order = np.random.default_rng(seed).permutation(n)
    parts = [order[:left], order[left : left + right]]
    split = [tuple(a[p] for a in arrays) for p in parts]
    if not isinstance(dataset, tuple | list):
        split = [s[0] for s in split]
    return split[0], split[1]


__all__ = ["normalize", "pad_sequences", "split_dataset", "to_categorical"]
