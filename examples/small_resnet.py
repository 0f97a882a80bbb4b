"""A small residual network on 32x32x3 images (CIFAR-10's shape), written as in Keras.

A Conv-BN-ReLU stem, three residual stages of 32, 64 and 128 channels (the second and
third downsample with a stride of 2 and a 1x1 projection on the shortcut), global
average pooling and a 10-way softmax, trained with Adam. CIFAR-10 cannot be downloaded
here, so the script trains on synthetic images whose class sets the mean of a channel.

python examples/small_resnet.py [epochs]
kcompile profile examples/small_resnet.py --batch 128
"""

import os
import sys

import numpy as np

import kcompile as keras
from kcompile import layers


def conv_bn(x, filters, strides=1, relu=True):
    x = layers.Conv2D(filters, 3, strides=strides, padding="same", use_bias=False)(x)
    x = layers.BatchNormalization()(x)
    return layers.Activation("relu")(x) if relu else x


def residual(x, filters, strides=1):
    shortcut = x
    if strides != 1 or x.shape[-1] != filters:
        shortcut = layers.Conv2D(filters, 1, strides=strides, use_bias=False)(x)
        shortcut = layers.BatchNormalization()(shortcut)
    x = conv_bn(x, filters, strides)
    x = conv_bn(x, filters, relu=False)
    return layers.Activation("relu")(layers.Add()([x, shortcut]))


def build_model():
    inputs = keras.Input(shape=(32, 32, 3))
    x = conv_bn(inputs, 32)
    for filters, strides in ((32, 1), (64, 2), (128, 2)):
        x = residual(x, filters, strides)
    x = layers.GlobalAveragePooling2D()(x)
    outputs = layers.Dense(10, activation="softmax")(x)
    model = keras.Model(inputs, outputs, name="small_resnet")
    model.compile(loss="sparse_categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
    return model


def make_data(count: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Images of noise whose class shifts one channel's mean in one quadrant."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 10, count)
    x = rng.standard_normal((count, 32, 32, 3)).astype(np.float32) * 0.5
    for c in range(10):
        rows, cols = (c // 5) * 16, (c % 5) * 6
        x[y == c, rows : rows + 16, cols : cols + 6, c % 3] += 1.0
    return x, y.astype(np.int32)


def main(epochs: int = 2, train: int = 4096) -> float:
    """Train on synthetic images; returns the test accuracy."""
    keras.utils.set_random_seed(int(os.environ.get("KCOMPILE_SEED", "1")))
    model = build_model()
    model.summary()
    x_train, y_train = make_data(train)
    x_test, y_test = make_data(1024, seed=1)
    model.fit(x_train, y_train, batch_size=128, epochs=epochs)
    _, accuracy = model.evaluate(x_test, y_test, verbose=2)
    print(f"test accuracy: {accuracy:.4f}")
    return accuracy


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 2)
