"""keras-io's "Convolutional autoencoder for image denoising", in its own words (Conv2D
and MaxPooling2D down, Conv2DTranspose with strides 2 up, a sigmoid Conv2D out), on
images it makes: bright rectangles on a dark 28x28 field, with Gaussian noise added.

    python examples/denoising_autoencoder.py [epochs]

On 2,048 images, its validation binary cross-entropy falls to 0.099 in the default 10
epochs (the noisy inputs themselves score 0.437 against the clean images), in about 40 s
on a 2-vCPU Xeon; it prints both.
"""

import sys

import numpy as np

import kcompile as keras
from kcompile import layers


def make_images(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    images = np.zeros((n, 28, 28, 1), "float32")
    for image in images:
        for _ in range(rng.integers(1, 4)):
            top, left = rng.integers(0, 20, 2)
            height, width = rng.integers(4, 9, 2)
            image[top : top + height, left : left + width] = rng.uniform(0.6, 1.0)
    return images


def noise(images: np.ndarray, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    noisy = images + 0.4 * rng.normal(size=images.shape)
    return np.clip(noisy, 0.0, 1.0).astype("float32")


def build_model() -> keras.Model:
    input = layers.Input(shape=(28, 28, 1))
    # Encoder
    x = layers.Conv2D(32, (3, 3), activation="relu", padding="same")(input)
    x = layers.MaxPooling2D((2, 2), padding="same")(x)
    x = layers.Conv2D(32, (3, 3), activation="relu", padding="same")(x)
    x = layers.MaxPooling2D((2, 2), padding="same")(x)
    # Decoder
    x = layers.Conv2DTranspose(32, (3, 3), strides=2, activation="relu", padding="same")(x)
    x = layers.Conv2DTranspose(32, (3, 3), strides=2, activation="relu", padding="same")(x)
    x = layers.Conv2D(1, (3, 3), activation="sigmoid", padding="same")(x)
    autoencoder = keras.Model(input, x)
    autoencoder.compile(optimizer="adam", loss="binary_crossentropy")
    return autoencoder


def main(epochs: int) -> tuple[float, float]:
    keras.utils.set_random_seed(0)
    train, test = make_images(2048, 1), make_images(256, 2)
    noisy_train, noisy_test = noise(train, 3), noise(test, 4)
    autoencoder = build_model()
    autoencoder.summary()
    autoencoder.fit(
        x=noisy_train,
        y=train,
        epochs=epochs,
        batch_size=128,
        shuffle=True,
        validation_data=(noisy_test, test),
    )
    loss = autoencoder.evaluate(noisy_test, test, verbose=0)
    eps = 1e-7
    clipped = np.clip(noisy_test, eps, 1 - eps)
    baseline = float(-np.mean(test * np.log(clipped) + (1 - test) * np.log(1 - clipped)))
    print(f"validation loss: {loss:.4f} (the noisy images themselves: {baseline:.4f})")
    return loss, baseline


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 10)
