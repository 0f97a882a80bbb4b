"""The seed model: a 784-128-10 MLP on Fashion-MNIST, written exactly as in Keras.

python examples/mnist_mlp.py            # train 5 epochs, evaluate, dump every step
KCOMPILE_DUMP=DIR python examples/mnist_mlp.py   # the same, the dumps into DIR
kcompile ir examples/mnist_mlp.py --stage train
mpiexec -n 2 python examples/mnist_mlp.py 5 --distributed   # data-parallel over MPI
"""

import argparse
import os

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


def dump_steps(model, folder: str | None = None) -> str:
    """Compile every step with its dump into ``folder`` (else ``$KCOMPILE_DUMP``, else
    dumps/mnist_mlp), in the tree ``KCOMPILE_DUMP`` writes: one folder per step graph
    (train_step, eval_step, predict), each with the IR after every stage (.kir), the LLVM
    IR before and after optimization (.ll, .opt.ll) and the assembly (.s). The folder."""
    folder = os.path.abspath(folder or os.environ.get("KCOMPILE_DUMP") or "dumps/mnist_mlp")
    paths = keras.inspect.dump_all(model, folder)
    steps = ",".join(dict.fromkeys(os.path.basename(os.path.dirname(p)) for p in paths))
    print(
        f"dumps of every step ({len(paths)} files: .kir, .ll, .opt.ll, .s) in {folder}/{{{steps}}}/"
    )
    return folder


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("epochs", nargs="?", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=32, help="the global batch")
    parser.add_argument(
        "--distributed",
        action="store_true",
        help="train data-parallel over the processes of an MPI job (mpiexec -n P ...)",
    )
    return parser.parse_args()


if __name__ == "__main__":
    args = arguments()
    if args.distributed:
        keras.distribution.set_distribution(keras.distribution.DataParallel())
    first = keras.distribution.active() is None or keras.distribution.active().rank == 0
    keras.utils.set_random_seed(int(os.environ.get("KCOMPILE_SEED", "1")))
    model = build_model()
    if first:
        model.summary()
    (x_train, y_train), (x_test, y_test) = keras.datasets.fashion_mnist.load_data()
    model.fit(x_train / 255.0, y_train, epochs=args.epochs, batch_size=args.batch_size)
    loss, accuracy = model.evaluate(x_test / 255.0, y_test, verbose=2)
    if not first:
        raise SystemExit(0)
    print(f"test accuracy: {accuracy:.4f}")
    dump_steps(model)
    print("see also: kcompile memory examples/mnist_mlp.py; kcompile check examples/mnist_mlp.py")
