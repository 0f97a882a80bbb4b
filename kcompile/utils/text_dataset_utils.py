"""``keras.utils.text_dataset_from_directory`` (Keras's
``keras/src/utils/text_dataset_utils.py``): the ``.txt`` files of class subfolders as
batches of strings, in a kcompile ``Dataset``. Keras's TensorFlow path yields byte
strings cut at ``max_length`` bytes; here each sample is the file's text (UTF-8, cut
at ``max_length`` bytes, a character split by the cut dropped) as a Python ``str``
in an object array, which kcompile's ``TextVectorization`` takes, as Keras's grain path
gives ``str``."""

from __future__ import annotations

from typing import Any

import numpy as np

from kcompile.utils import dataset_utils


def _read_text(path: str, max_length: int | None) -> np.ndarray:
    with open(path, "rb") as f:
        data = f.read()
    if max_length is not None:
        data = data[:max_length]
    return np.asarray(data.decode("utf-8", errors="ignore"), dtype=object)


def text_dataset_from_directory(
    directory: str,
    labels: Any = "inferred",
    label_mode: str | None = "int",
    class_names: list[str] | None = None,
    batch_size: int | None = 32,
    max_length: int | None = None,
    shuffle: bool = True,
    seed: int | None = None,
    validation_split: float | None = None,
    subset: str | None = None,
    follow_links: bool = False,
    format: str = "tf",
    verbose: bool = True,
):
    """Texts from ``directory`` (one subfolder per class with ``labels="inferred"``),
    with labels as ``image_dataset_from_directory`` gives them."""
    if format not in ("tf", "grain"):
        raise ValueError(f'`format` should be either "tf" or "grain". Received: format={format}')
    return dataset_utils.from_directory(
        directory, labels=labels, label_mode=label_mode, class_names=class_names,
        formats=(".txt",), what="text", load=lambda p: _read_text(p, max_length),
        batch_size=batch_size, shuffle=shuffle, seed=seed, validation_split=validation_split,
        subset=subset, follow_links=follow_links, verbose=verbose,
    )  # fmt: skip


__all__ = ["text_dataset_from_directory"]
