"""``keras.datasets.cifar100``: Keras's archive (cache or download, hash checked), its two
batch files read with an unpickler restricted to numpy, channels last."""

from __future__ import annotations

import os

import numpy as np

from kcompile.datasets.keras_files import fetch, load_batch


def load_data(label_mode: str = "fine") -> tuple[tuple[np.ndarray, np.ndarray], ...]:
    """Keras's ``cifar100.load_data``: labels are the 100 fine classes or, with
    ``label_mode="coarse"``, their 20 superclasses; each label array is [N, 1]."""
    if label_mode not in ("fine", "coarse"):
        raise ValueError(
            f'`label_mode` must be one of `"fine"`, `"coarse"`. Received: label_mode={label_mode}.'
        )
    path = os.path.join(fetch("cifar-100-python-target", extract=True), "cifar-100-python")
    splits = []
    for part in ("train", "test"):
        x, y = load_batch(os.path.join(path, part), label_key=f"{label_mode}_labels")
        # Keras reshapes the label list as it is (int64), unlike cifar10's uint8 buffer
        splits.append((x.transpose(0, 2, 3, 1), np.reshape(y, (len(y), 1))))
    return tuple(splits)
