"""Whole train steps: the LLVM backend against the reference interpreter, step by step.

Tolerances: losses and metrics rtol 1e-5; weights and optimizer state rtol 1e-4 with
atol 1e-6 after each of five steps (reassociated sums differ from numpy's pairwise
order by a few ulp, and Adam divides by small numbers).
"""

from __future__ import annotations

import numpy as np
import pytest

import kcompile as keras
from kcompile import layers, optimizers


def mlp_mse_sgd(backend):
    model = keras.Sequential(
        [keras.Input(shape=(13,)), layers.Dense(17, activation="tanh"), layers.Dense(3)]
    )
    model.compile(
        optimizer=optimizers.SGD(0.1, momentum=0.9), loss="mse", metrics=["mae"], backend=backend
    )
    return model, lambda rng, n: (rng.normal(size=(n, 13)), rng.normal(size=(n, 3)))


def mlp_softmax_adam(backend):
    model = keras.Sequential(
        [
            keras.Input(shape=(28, 28)),
            layers.Flatten(),
            layers.Dense(32, activation="relu"),
            layers.Dropout(0.25),
            layers.Dense(10, activation="softmax"),
        ]
    )
    model.compile(
        optimizer="adam",
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
        backend=backend,
    )
    return model, lambda rng, n: (rng.random((n, 28, 28)), rng.integers(0, 10, n))


def two_inputs_rmsprop(backend):
    a = keras.Input(shape=(6,), name="a")
    b = keras.Input(shape=(4,), name="b")
    h = layers.Concatenate()([a, b])
    h = layers.Dense(12, activation="gelu")(h)
    h = layers.Add()([h, layers.Dense(12, activation="sigmoid")(h)])
    out = layers.Dense(2, activation="softmax")(h)
    model = keras.Model([a, b], out)
    model.compile(
        optimizer="rmsprop",
        loss="categorical_crossentropy",
        metrics=["accuracy", "precision", "recall"],
        backend=backend,
    )

    def data(rng, n):
        return (
            (rng.normal(size=(n, 6)), rng.normal(size=(n, 4))),
            np.eye(2)[rng.integers(0, 2, n)],
        )

    return model, data


MODELS = [mlp_mse_sgd, mlp_softmax_adam, two_inputs_rmsprop]


def build(factory, backend):
    keras.backend.clear_session()
    keras.utils.set_random_seed(7)
    return factory(backend)


@pytest.mark.parametrize("factory", MODELS, ids=lambda f: f.__name__)
def test_five_train_steps_match(factory):
    native, data = build(factory, "llvm")
    reference, _ = build(factory, "reference")
    for a, b in zip(native.get_weights(), reference.get_weights()):
        np.testing.assert_array_equal(a, b)
    rng = np.random.default_rng(3)
    for step in range(5):
        x, y = data(rng, 7 + 9 * step)  # a different batch size every step
        got = native.train_on_batch(x, y, return_dict=True)
        want = reference.train_on_batch(x, y, return_dict=True)
        assert got.keys() == want.keys()
        for key in want:
            assert got[key] == pytest.approx(want[key], rel=1e-5, abs=1e-6), (step, key)
        for va, vb in zip(native.weights, reference.weights):
            np.testing.assert_allclose(
                va.value, vb.value, rtol=1e-4, atol=1e-6, err_msg=f"{va.path} after step {step}"
            )
        for name, slot in native.optimizer.slots.items():
            np.testing.assert_allclose(
                slot,
                reference.optimizer.slots[name],
                rtol=1e-4,
                atol=1e-6,
                err_msg=f"{name} after step {step}",
            )
    assert native.optimizer.iterations == reference.optimizer.iterations == 5
    x, y = data(rng, 50)
    np.testing.assert_allclose(
        native.predict(x, verbose=0), reference.predict(x, verbose=0), rtol=1e-4, atol=1e-6
    )
    ev_native = native.evaluate(x, y, verbose=0, return_dict=True)
    ev_reference = reference.evaluate(x, y, verbose=0, return_dict=True)
    for key in ev_reference:
        assert ev_native[key] == pytest.approx(ev_reference[key], rel=1e-5, abs=1e-6)


def test_predict_any_batch_without_recompiling(rng):
    model, _ = build(mlp_softmax_adam, "llvm")
    x = rng.random((101, 28, 28))
    full = model.predict(x, batch_size=101, verbose=0)
    for bs in (1, 7, 33, 64):
        np.testing.assert_allclose(
            model.predict(x, batch_size=bs, verbose=0), full, rtol=1e-5, atol=1e-7
        )
    assert len(model.compiled_steps.executables) == 1
