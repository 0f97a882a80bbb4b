"""Fashion-MNIST from local IDX files (Debian's ``dataset-fashion-mnist``)."""

from __future__ import annotations

from kcompile.datasets.idx import find_files, read_idx

FILES = [
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
]


def load_data():
    """((x_train, y_train), (x_test, y_test)) as uint8 arrays, like keras.datasets."""
    paths = find_files(["fashion-mnist", "fashion_mnist"], FILES, "dataset-fashion-mnist")
    x_train, y_train, x_test, y_test = (read_idx(p) for p in paths)
    return (x_train, y_train), (x_test, y_test)
