"""End to end on Fashion-MNIST: the seed program (examples/mnist_mlp.py) and the LSTM
example (examples/fashion_lstm.py)."""

from __future__ import annotations

import importlib.util
import os

import pytest

import kcompile as keras

EXAMPLES = os.path.join(os.path.dirname(__file__), "..", "examples")


def load_example(name: str = "mnist_mlp"):
    spec = importlib.util.spec_from_file_location(name, os.path.join(EXAMPLES, f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def fashion_mnist():
    try:
        return keras.datasets.fashion_mnist.load_data()
    except FileNotFoundError as e:
        pytest.fail(f"Fashion-MNIST is required (CI installs it): {e}")


@pytest.mark.slow
def test_seed_program_on_native_code():
    """0.85 test accuracy after 3 epochs and 0.87 after 5, on the default (LLVM) backend."""
    (x_train, y_train), (x_test, y_test) = fashion_mnist()
    keras.utils.set_random_seed(1)
    model = load_example().build_model()
    assert model.compiled_steps.config.backend == "llvm"
    x_test = x_test / 255.0
    accuracy = {}

    def record(epoch, logs):
        accuracy[epoch + 1] = model.evaluate(x_test, y_test, verbose=0)[1]

    history = model.fit(
        x_train / 255.0,
        y_train,
        epochs=5,
        verbose=0,
        callbacks=[keras.callbacks.LambdaCallback(on_epoch_end=record)],
    )
    assert history.history["accuracy"][-1] > 0.87
    assert accuracy[3] >= 0.85
    assert accuracy[5] >= 0.87


@pytest.mark.slow
def test_lstm_example_reaches_its_accuracy():
    """examples/fashion_lstm.py: 28 rows as 28 steps of one scan; it learns: 0.82 after one
    epoch (0.83 after two, 0.87 after the example's three: 8-9 s an epoch on a 2-core AMD
    EPYC, `python examples/fashion_lstm.py`; one epoch keeps the suite in its time)."""
    (x_train, y_train), (x_test, y_test) = fashion_mnist()
    keras.utils.set_random_seed(1)
    model = load_example("fashion_lstm").build_model()
    ops = [n.op for n in model.step_graph("train").nodes]
    assert ops.count("scan") == 2  # the forward loop and its gradient, not 28 unrolled steps
    model.fit(x_train / 255.0, y_train, epochs=1, verbose=0)
    assert model.evaluate(x_test / 255.0, y_test, verbose=0)[1] >= 0.80
