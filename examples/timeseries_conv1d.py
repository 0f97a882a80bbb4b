"""Time-series classification with a fully convolutional network, in the shape of
keras-io's ``timeseries_classification_from_scratch`` (FordA: 500 steps, one channel,
two classes): three Conv1D(64, 3, "same") + BatchNormalization + ReLU blocks, global
average pooling and a softmax. FordA cannot be downloaded here, so the script makes
series whose class sets the period of a noisy sine (25 or 8 steps).

python examples/timeseries_conv1d.py [epochs]
"""

import os
import sys

import numpy as np

import kcompile as keras
from kcompile import layers

STEPS = 500


def build_model():
    inputs = keras.Input(shape=(STEPS, 1))
    x = inputs
    for _ in range(3):
        x = layers.Conv1D(filters=64, kernel_size=3, padding="same")(x)
        x = layers.BatchNormalization()(x)
        x = layers.ReLU()(x)
    x = layers.GlobalAveragePooling1D()(x)
    outputs = layers.Dense(2, activation="softmax")(x)
    model = keras.Model(inputs, outputs, name="timeseries_conv1d")
    model.compile(
        optimizer="adam",
        loss="sparse_categorical_crossentropy",
        metrics=["sparse_categorical_accuracy"],
    )
    return model


def make_data(count: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Noisy sines: class 0 has a period of 25 steps, class 1 of 8."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, count)
    t = np.arange(STEPS, dtype=np.float32)
    phase = rng.uniform(0, 2 * np.pi, (count, 1))
    x = np.sin(2 * np.pi * t / np.where(y == 0, 25.0, 8.0)[:, None] + phase)
    x = x + rng.standard_normal(x.shape) * 0.5
    return x[..., None].astype(np.float32), y.astype(np.int32)


def main(epochs: int = 5, train: int = 2048) -> float:
    """Train on synthetic series; returns the test accuracy."""
    keras.utils.set_random_seed(int(os.environ.get("KCOMPILE_SEED", "1")))
    model = build_model()
    model.summary()
    x_train, y_train = make_data(train)
    x_test, y_test = make_data(512, seed=1)
    model.fit(x_train, y_train, batch_size=32, epochs=epochs)
    _, accuracy = model.evaluate(x_test, y_test, verbose=2)
    print(f"test accuracy: {accuracy:.4f}")
    return accuracy


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 5)
