"""``keras.datasets.imdb``: Keras's token lists and its treatment of them (shuffle with
``seed``, start mark, index shift, length and vocabulary cuts)."""

from __future__ import annotations

import json

import numpy as np

from kcompile.datasets.keras_files import (
    cut_vocabulary,
    fetch,
    load_npz,
    mark,
    remove_long_seq,
)


def load_data(
    path: str = "imdb.npz",
    num_words: int | None = None,
    skip_top: int = 0,
    maxlen: int | None = None,
    seed: int = 113,
    start_char: int | None = 1,
    oov_char: int | None = 2,
    index_from: int = 3,
    **kwargs,
):
    f = load_npz(fetch("imdb.npz", path))
    x_train, labels_train, x_test, labels_test = (
        f["x_train"],
        f["y_train"],
        f["x_test"],
        f["y_test"],
    )
    rng = np.random.RandomState(seed)
    indices = np.arange(len(x_train))
    rng.shuffle(indices)
    x_train, labels_train = x_train[indices], labels_train[indices]
    indices = np.arange(len(x_test))
    rng.shuffle(indices)
    x_test, labels_test = x_test[indices], labels_test[indices]
    train, test = mark(x_train, start_char, index_from), mark(x_test, start_char, index_from)
    labels_train, labels_test = list(labels_train), list(labels_test)
    if maxlen:
        train, labels_train = remove_long_seq(maxlen, train, labels_train)
        test, labels_test = remove_long_seq(maxlen, test, labels_test)
        if not train or not test:
            raise ValueError(
                f"After filtering for sequences shorter than maxlen={maxlen}, no sequence was "
                "kept. Increase maxlen."
            )
    xs = cut_vocabulary(train + test, num_words, skip_top, oov_char)
    labels = np.concatenate([labels_train, labels_test])
    cut = len(train)
    return (
        (np.array(xs[:cut], dtype="object"), labels[:cut]),
        (np.array(xs[cut:], dtype="object"), labels[cut:]),
    )


def get_word_index(path: str = "imdb_word_index.json") -> dict:
    with open(fetch("imdb_word_index.json", path)) as f:
        return json.load(f)
