"""``keras.datasets.boston_housing``, as Keras loads and splits it."""

from __future__ import annotations

import numpy as np

from kcompile.datasets.keras_files import fetch


def load_data(path: str = "boston_housing.npz", test_split: float = 0.2, seed: int = 113):
    if not 0 <= test_split < 1:
        raise ValueError(f"test_split must be in [0, 1), got {test_split}")
    with np.load(fetch("boston_housing.npz", path), allow_pickle=False) as f:
        x, y = f["x"], f["y"]
    indices = np.arange(len(x))
    np.random.RandomState(seed).shuffle(indices)
    x, y = x[indices], y[indices]
    cut = int(len(x) * (1 - test_split))
    return (np.array(x[:cut]), np.array(y[:cut])), (np.array(x[cut:]), np.array(y[cut:]))
