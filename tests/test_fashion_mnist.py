"""End to end: the seed program on Fashion-MNIST (the Debian dataset package)."""

from __future__ import annotations

import pytest

import kcompile as keras
from kcompile import layers


@pytest.mark.slow
def test_seed_program_reaches_085_after_3_epochs():
    try:
        (x_train, y_train), (x_test, y_test) = keras.datasets.fashion_mnist.load_data()
    except FileNotFoundError as e:
        pytest.fail(f"Fashion-MNIST is required (CI installs it): {e}")
    keras.utils.set_random_seed(1)
    model = keras.Sequential(
        [
            keras.Input(shape=(28, 28)),
            layers.Flatten(),
            layers.Dense(128, activation="relu"),
            layers.Dense(10, activation="softmax"),
        ]
    )
    model.compile(loss="sparse_categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
    history = model.fit(x_train / 255.0, y_train, epochs=3, verbose=0)
    _, accuracy = model.evaluate(x_test / 255.0, y_test, verbose=0)
    assert history.history["accuracy"][-1] > 0.85
    assert accuracy >= 0.85
