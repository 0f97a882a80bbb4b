"""A transformer encoder block at the benchmark's size (sequence 128, width 128, 4 heads,
batch 32): MultiHeadAttention and a GELU feed-forward, each in a residual with
LayerNormalization, then mean pooling and a softmax over 10 classes. The task: the class
of a sequence is the feature, of the first 10, whose mean over the sequence is largest.

    python examples/encoder_block.py [epochs]
"""

import os
import sys

import numpy as np

import kcompile as keras
from kcompile import layers

SEQ, WIDTH, HEADS, FF, CLASSES = 128, 128, 4, 512, 10


def build_model() -> keras.Model:
    inputs = keras.Input(shape=(SEQ, WIDTH))
    attention = layers.MultiHeadAttention(HEADS, WIDTH // HEADS)(inputs, inputs)
    x = layers.LayerNormalization()(layers.Add()([inputs, attention]))
    ff = layers.Dense(FF, activation="gelu")(x)
    ff = layers.Dense(WIDTH)(ff)
    x = layers.LayerNormalization()(layers.Add()([x, ff]))
    x = layers.GlobalAveragePooling1D()(x)
    outputs = layers.Dense(CLASSES, activation="softmax")(x)
    model = keras.Model(inputs, outputs)
    model.compile(loss="sparse_categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
    return model


def make_data(count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((count, SEQ, WIDTH)).astype("float32")
    y = rng.integers(0, CLASSES, count)
    x[np.arange(count), :, y] += 0.3
    return x, y


if __name__ == "__main__":
    epochs = int(sys.argv[1]) if len(sys.argv) > 1 else 2
    keras.utils.set_random_seed(int(os.environ.get("KCOMPILE_SEED", "1")))
    model = build_model()
    model.summary()
    x_train, y_train = make_data(2048, seed=1)
    x_test, y_test = make_data(512, seed=2)
    model.fit(x_train, y_train, batch_size=32, epochs=epochs)
    _, accuracy = model.evaluate(x_test, y_test, verbose=2)
    print(f"test accuracy: {accuracy:.4f}")
