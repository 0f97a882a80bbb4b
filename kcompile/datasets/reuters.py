"""``keras.datasets.reuters``: Keras's newswire token lists, shuffled with ``seed`` and
split by ``test_split`` as Keras does."""

from __future__ import annotations

import json

import numpy as np

from kcompile.datasets.keras_files import cut_vocabulary, fetch, load_npz, mark, remove_long_seq


def load_data(
    path: str = "reuters.npz",
    num_words: int | None = None,
    skip_top: int = 0,
    maxlen: int | None = None,
    test_split: float = 0.2,
    seed: int = 113,
    start_char: int | None = 1,
    oov_char: int | None = 2,
    index_from: int = 3,
):
    f = load_npz(fetch("reuters.npz", path))
    xs, labels = f["x"], f["y"]
    indices = np.arange(len(xs))
    np.random.RandomState(seed).shuffle(indices)
    xs, labels = mark(xs[indices], start_char, index_from), list(labels[indices])
    if maxlen:
        xs, labels = remove_long_seq(maxlen, xs, labels)
    xs = cut_vocabulary(xs, num_words, skip_top, oov_char)
    cut = int(len(xs) * (1 - test_split))
    return (
        (np.array(xs[:cut], dtype="object"), np.array(labels[:cut])),
        (np.array(xs[cut:], dtype="object"), np.array(labels[cut:])),
    )


def get_word_index(path: str = "reuters_word_index.json") -> dict:
    with open(fetch("reuters_word_index.json", path)) as f:
        return json.load(f)
