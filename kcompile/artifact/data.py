"""Training data for ``kcompile run``, read from a folder.

Two layouts: ``.npy`` files named after the artifact's inputs and labels
(``x.npy`` and ``y.npy`` serve a model with one of each), or an MNIST-family IDX
folder (``train-images-idx3-ubyte[.gz]``, ``train-labels-idx1-ubyte[.gz]``, and the
``t10k-`` pair for validation), whose images are scaled to [0, 1] as float32.
"""

from __future__ import annotations

import os

import numpy as np

from kcompile.datasets.idx import read_idx

IDX = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte")
IDX_TEST = ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


def read_folder(folder: str, inputs: list[str], labels: list[str]):
    """((xs, ys), validation (xs, ys) or None) from ``folder``."""
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"{folder}: no such folder")
    if _idx_path(folder, IDX[0]):
        return _read_idx_pair(folder, IDX), _read_idx_pair(folder, IDX_TEST, optional=True)
    xs = [_npy(folder, name, "x" if len(inputs) == 1 else None) for name in inputs]
    ys = [_npy(folder, name, "y" if len(labels) == 1 else None) for name in labels]
    return (xs, ys), None


def _npy(folder: str, name: str, alias: str | None) -> np.ndarray:
    candidates = [name.replace("/", "_") + ".npy", *([f"{alias}.npy"] if alias else [])]
    for candidate in candidates:
        path = os.path.join(folder, candidate)
        if os.path.exists(path):
            return np.load(path, allow_pickle=False)
    raise FileNotFoundError(f"{folder}: no {' or '.join(candidates)} for {name!r}")


def _idx_path(folder: str, stem: str) -> str | None:
    for name in (stem + ".gz", stem):
        if os.path.exists(os.path.join(folder, name)):
            return os.path.join(folder, name)
    return None


def _read_idx_pair(folder: str, stems: tuple[str, str], optional: bool = False):
    paths = [_idx_path(folder, s) for s in stems]
    if not all(paths):
        if optional:
            return None
        raise FileNotFoundError(f"{folder}: needs {stems[0]} and {stems[1]} (IDX, gzipped or not)")
    images, labels = (read_idx(p) for p in paths)
    return [(images / 255.0).astype(np.float32)], [labels.astype(np.int32)]
