"""The seed model: a 784-128-10 MLP on Fashion-MNIST, written exactly as in Keras.

python examples/mnist_mlp.py            # train 5 epochs, evaluate, dump the IR
kcompile ir examples/mnist_mlp.py --stage train
"""

import os
import sys

import kcompile as keras
from kcompile import layers


def build_model():
    model = keras.Sequential(
        [
            keras.Input(shape=(28, 28)),
            layers.Flatten(),
            layers.Dense(128, activation="relu"),
            layers.Dense(10, activation="softmax"),
        ]
    )
    model.compile(loss="sparse_categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
    return model


if __name__ == "__main__":
    epochs = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    keras.utils.set_random_seed(int(os.environ.get("KCOMPILE_SEED", "1")))
    model = build_model()
    model.summary()
    (x_train, y_train), (x_test, y_test) = keras.datasets.fashion_mnist.load_data()
    model.fit(x_train / 255.0, y_train, epochs=epochs)
    loss, accuracy = model.evaluate(x_test / 255.0, y_test, verbose=2)
    print(f"test accuracy: {accuracy:.4f}")
    folder = os.path.abspath("dumps/mnist_mlp")
    paths = keras.inspect.dump_all(model, folder)
    print(
        f"IR dumps of every stage ({len(paths)} files: traced, autodiff, each pass) "
        f"written to {folder}/{{train,eval,predict}}/"
    )
    print("see also: kcompile memory examples/mnist_mlp.py; kcompile check examples/mnist_mlp.py")
