"""Keras's dataset files: where Keras downloads them from and their hashes (from Keras 3's
``keras.datasets``), read through ``get_file`` (Keras's cache, else a download)."""

from __future__ import annotations

import pickle

import numpy as np

from kcompile.utils.file_utils import get_file

BASE = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/"
FILES = {
    "mnist.npz": (BASE + "mnist.npz", "731c5ac602752760c8e48fbffcf8c3b850d9dc2a2aedcf2cc48468fc17b673d1"),
    "imdb.npz": (BASE + "imdb.npz", "69664113be75683a8fe16e3ed0ab59fda8886cb3cd7ada244f7d9544e4676b9f"),
    "imdb_word_index.json": (BASE + "imdb_word_index.json", "bfafd718b763782e994055a2d397834f"),
    "reuters.npz": (BASE + "reuters.npz", "d6586e694ee56d7a4e65172e12b3e987c03096cb01eab99753921ef915959916"),
    "reuters_word_index.json": (BASE + "reuters_word_index.json", "4d44cc38712099c9e383dc6e5f11a921"),
    "boston_housing.npz": (BASE + "boston_housing.npz", "f553886a1f8d56431e820c5b82552d9d95cfcb96d1e678153f8839538947dff5"),
    "cifar-10-batches-py-target": (
        "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
        "6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce",
    ),
    "cifar-100-python-target": (
        "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",
        "85cd44d02ba6437773c5bbd22e183051d648de2e7d6b014e1ef29b855ba677a7",
    ),
}  # fmt: skip


def fetch(name: str, path: str | None = None, **kwargs) -> str:
    origin, digest = FILES[name]
    return get_file(fname=path or name, origin=origin, file_hash=digest, **kwargs)


def load_npz(path: str) -> dict:
    """An npz file of Keras's (verified by its hash before this): object arrays of token
    lists need pickle, which stays restricted to numpy's own classes."""
    with np.load(path, allow_pickle=True) as f:
        return {k: f[k] for k in f.files}


class _NumpyOnly(pickle.Unpickler):
    """Unpickles numpy arrays and plain data only (CIFAR's batch files)."""

    def find_class(self, module: str, name: str):
        if module.split(".")[0] == "numpy" or (module, name) in (
            ("builtins", "dict"),
            ("builtins", "list"),
        ):
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to unpickle {module}.{name}")


def load_batch(path: str, label_key: str = "labels") -> tuple[np.ndarray, list]:
    """One CIFAR batch: data as [N, 3, 32, 32] uint8 and its labels."""
    with open(path, "rb") as f:
        batch = {k.decode("utf8"): v for k, v in _NumpyOnly(f, encoding="bytes").load().items()}
    data = batch["data"]
    return data.reshape(data.shape[0], 3, 32, 32), batch[label_key]


def remove_long_seq(maxlen: int, seq, label):
    """Keras's: the sequences (and their labels) shorter than ``maxlen``."""
    kept = [(x, y) for x, y in zip(seq, label) if len(x) < maxlen]
    return [x for x, _ in kept], [y for _, y in kept]


def mark(xs, start_char: int | None, index_from: int) -> list[list[int]]:
    """Keras's start mark and index shift of token lists."""
    if start_char is not None:
        return [[start_char] + [w + index_from for w in x] for x in xs]
    if index_from:
        return [[w + index_from for w in x] for x in xs]
    return [list(x) for x in xs]


def cut_vocabulary(xs, num_words: int | None, skip_top: int, oov_char: int | None):
    """Keras's vocabulary cut: tokens outside [skip_top, num_words) become ``oov_char``
    (or are dropped)."""
    if not num_words:
        num_words = max(max(x) for x in xs)
    if oov_char is not None:
        return [[w if skip_top <= w < num_words else oov_char for w in x] for x in xs]
    return [[w for w in x if skip_top <= w < num_words] for x in xs]
