"""``keras.datasets.mnist``: Keras's ``mnist.npz`` (its cache, else a download checked by
its hash); offline without it, the IDX files of a local package."""

from __future__ import annotations

import numpy as np

from kcompile.datasets.fashion_mnist import FILES
from kcompile.datasets.idx import find_files, read_idx
from kcompile.datasets.keras_files import fetch


def load_data(path: str = "mnist.npz"):
    """((x_train, y_train), (x_test, y_test)) as uint8 arrays, like keras.datasets."""
    try:
        npz = fetch("mnist.npz", path)
    except OSError as download_error:
        try:
            paths = find_files(["mnist"], FILES, "a package providing the MNIST IDX files")
        except FileNotFoundError:
            raise download_error from None
        x_train, y_train, x_test, y_test = (read_idx(p) for p in paths)
        return (x_train, y_train), (x_test, y_test)
    with np.load(npz, allow_pickle=False) as f:
        return (f["x_train"], f["y_train"]), (f["x_test"], f["y_test"])
