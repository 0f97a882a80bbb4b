"""MNIST from local IDX files, looked up in the same places as Fashion-MNIST."""

from __future__ import annotations

from kcompile.datasets.fashion_mnist import FILES
from kcompile.datasets.idx import find_files, read_idx


def load_data():
    """((x_train, y_train), (x_test, y_test)) as uint8 arrays, like keras.datasets."""
    paths = find_files(["mnist"], FILES, "a package providing the MNIST IDX files")
    x_train, y_train, x_test, y_test = (read_idx(p) for p in paths)
    return (x_train, y_train), (x_test, y_test)
