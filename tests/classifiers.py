"""The small dense classifier that the epoch-loop and artifact tests train."""

from __future__ import annotations

import kcompile as keras
from kcompile import layers


def dense_classifier(features: int, hidden: int, seed: int):
    """Input(features) -> Dense(hidden, relu) -> Dense(3, softmax), compiled with Adam,
    sparse cross-entropy and accuracy. Built after ``clear_session``, so two calls give
    the same layer names and, with one ``seed``, the same weights."""
    keras.backend.clear_session()
    keras.utils.set_random_seed(seed)
    model = keras.Sequential(
        [
            keras.Input(shape=(features,)),
            layers.Dense(hidden, activation="relu"),
            layers.Dense(3, activation="softmax"),
        ]
    )
    model.compile(loss="sparse_categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
    return model
