"""``kcompile.utils``: the Keras utilities kcompile provides."""

from __future__ import annotations

import numpy as np

from kcompile.backend import clear_session, set_random_seed


def to_categorical(y, num_classes: int | None = None) -> np.ndarray:
    y = np.asarray(y, dtype=np.int64)
    if y.ndim > 1 and y.shape[-1] == 1:
        y = y.reshape(y.shape[:-1])
    num_classes = int(y.max()) + 1 if num_classes is None else num_classes
    out = np.zeros((*y.shape, num_classes), dtype=np.float32)
    np.put_along_axis(out, y[..., None], 1.0, axis=-1)
    return out


__all__ = ["clear_session", "set_random_seed", "to_categorical"]
