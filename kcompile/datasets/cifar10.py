"""``keras.datasets.cifar10``: Keras's archive (cache or download, hash checked), its batch
files read with an unpickler restricted to numpy, channels last."""

from __future__ import annotations

import os

import numpy as np

from kcompile.datasets.keras_files import fetch, load_batch


def load_data():
    path = os.path.join(fetch("cifar-10-batches-py-target", extract=True), "cifar-10-batches-py")
    x_train = np.empty((50000, 3, 32, 32), dtype="uint8")
    y_train = np.empty((50000,), dtype="uint8")
    for i in range(1, 6):
        part = slice((i - 1) * 10000, i * 10000)
        x_train[part], y_train[part] = load_batch(os.path.join(path, f"data_batch_{i}"))
    x_test, y_test = load_batch(os.path.join(path, "test_batch"))
    y_train = np.reshape(y_train, (len(y_train), 1))
    y_test = np.reshape(np.asarray(y_test), (len(y_test), 1)).astype(y_train.dtype)
    x_train, x_test = x_train.transpose(0, 2, 3, 1), x_test.transpose(0, 2, 3, 1)
    return (x_train, y_train), (x_test.astype(x_train.dtype), y_test)
