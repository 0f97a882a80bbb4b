"""``keras.datasets.fashion_mnist``: local IDX files (Keras's cache, Debian's
``dataset-fashion-mnist``), else Keras's download."""

from __future__ import annotations

import os

from kcompile.datasets.idx import find_files, read_idx
from kcompile.datasets.keras_files import BASE
from kcompile.utils.file_utils import get_file

FILES = [
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
]


def load_data():
    """((x_train, y_train), (x_test, y_test)) as uint8 arrays, like keras.datasets: from
    Keras's cache or a local copy (Debian's ``dataset-fashion-mnist``), else downloaded
    from Keras's URL."""
    try:
        paths = find_files(["fashion-mnist", "fashion_mnist"], FILES, "dataset-fashion-mnist")
    except FileNotFoundError as missing:
        try:
            paths = [
                get_file(f, origin=BASE + f, cache_subdir=os.path.join("datasets", "fashion-mnist"))
                for f in FILES
            ]
        except OSError as e:
            raise FileNotFoundError(f"{missing}\n{e}") from None
    x_train, y_train, x_test, y_test = (read_idx(p) for p in paths)
    return (x_train, y_train), (x_test, y_test)
