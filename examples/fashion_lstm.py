"""An LSTM reading each Fashion-MNIST image row by row (28 steps of 28 pixels).

python examples/fashion_lstm.py [epochs]
"""

import os
import sys

import kcompile as keras
from kcompile import layers


def build_model():
    model = keras.Sequential(
        [
            keras.Input(shape=(28, 28)),
            layers.LSTM(128),
            layers.Dense(10, activation="softmax"),
        ]
    )
    model.compile(loss="sparse_categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
    return model


if __name__ == "__main__":
    epochs = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    keras.utils.set_random_seed(int(os.environ.get("KCOMPILE_SEED", "1")))
    model = build_model()
    model.summary()
    (x_train, y_train), (x_test, y_test) = keras.datasets.fashion_mnist.load_data()
    model.fit(x_train / 255.0, y_train, epochs=epochs)
    _, accuracy = model.evaluate(x_test / 255.0, y_test, verbose=2)
    print(f"test accuracy: {accuracy:.4f}")
