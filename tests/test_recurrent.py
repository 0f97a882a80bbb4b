"""Recurrent layers against numpy implementations of Keras's equations, their gradients
against central differences, and compiled train steps against the reference."""

from __future__ import annotations

import numpy as np
import pytest

import kcompile as keras
from kcompile import layers
from tests.gradcheck import assert_model_gradients


def sigmoid(z):
    return 1 / (1 + np.exp(-z))


def run_lstm(x, k, r, b, backwards=False):
    n, steps, _ = x.shape
    u = r.shape[0]
    h, c, outs = np.zeros((n, u)), np.zeros((n, u)), []
    for t in range(steps - 1, -1, -1) if backwards else range(steps):
        i, f, g, o = np.split(x[:, t] @ k + h @ r + b, 4, axis=1)
        c = sigmoid(f) * c + sigmoid(i) * np.tanh(g)
        h = sigmoid(o) * np.tanh(c)
        outs.append(h)
    return np.stack(outs, 1), h, c


def run_gru(x, k, r, b):
    h, outs = np.zeros((x.shape[0], r.shape[0])), []
    for t in range(x.shape[1]):
        xz, xr, xh = np.split(x[:, t] @ k + b[0], 3, axis=1)
        rz, rr, rh = np.split(h @ r + b[1], 3, axis=1)
        z, rg = sigmoid(xz + rz), sigmoid(xr + rr)
        h = z * h + (1 - z) * np.tanh(xh + rg * rh)
        outs.append(h)
    return np.stack(outs, 1), h


def run_simple(x, k, r, b):
    h, outs = np.zeros((x.shape[0], r.shape[0])), []
    for t in range(x.shape[1]):
        h = np.tanh(x[:, t] @ k + h @ r + b)
        outs.append(h)
    return np.stack(outs, 1), h


@pytest.mark.parametrize("steps", [1, 5])
def test_lstm_equations_and_initializers(steps, rng):
    layer = layers.LSTM(6, return_sequences=True, return_state=True)
    x = rng.normal(size=(3, steps, 4)).astype(np.float32)
    out, h, c = layer(x)
    k, r, b = layer.get_weights()
    assert k.shape == (4, 24) and r.shape == (6, 24) and b.shape == (24,)
    np.testing.assert_array_equal(b, np.r_[np.zeros(6), np.ones(6), np.zeros(12)])
    np.testing.assert_allclose(r @ r.T, np.eye(6), atol=1e-5)  # orthogonal rows
    want_out, want_h, want_c = run_lstm(x, k, r, b)
    np.testing.assert_allclose(out, want_out, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(h, want_h, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(c, want_c, rtol=1e-5, atol=1e-6)


def test_lstm_go_backwards_and_last_output(rng):
    layer = layers.LSTM(3, go_backwards=True)
    x = rng.normal(size=(2, 4, 2)).astype(np.float32)
    out = layer(x)
    _, want_h, _ = run_lstm(x, *layer.get_weights(), backwards=True)
    np.testing.assert_allclose(out, want_h, rtol=1e-5, atol=1e-6)


def test_gru_reset_after_and_simple_rnn(rng):
    gru = layers.GRU(5, return_sequences=True)
    x = rng.normal(size=(3, 4, 2)).astype(np.float32)
    out = gru(x)
    k, r, b = gru.get_weights()
    assert b.shape == (2, 15)
    np.testing.assert_allclose(out, run_gru(x, k, r, b)[0], rtol=1e-5, atol=1e-6)
    rnn = layers.SimpleRNN(4)
    np.testing.assert_allclose(rnn(x), run_simple(x, *rnn.get_weights())[1], rtol=1e-5, atol=1e-6)


def test_gru_reset_after_false_is_refused():
    with pytest.raises(NotImplementedError, match="GRU 'g': only reset_after=True"):
        layers.GRU(3, reset_after=False, name="g")
    with pytest.raises(NotImplementedError, match="GRUCell 'c': only reset_after=True"):
        layers.GRUCell(3, reset_after=False, name="c")


def test_bidirectional_concat(rng):
    bi = layers.Bidirectional(layers.LSTM(3, return_sequences=True))
    x = rng.normal(size=(2, 4, 2)).astype(np.float32)
    out = bi(x)
    fk, fr, fb, bk, br, bb = bi.get_weights()
    forward = run_lstm(x, fk, fr, fb)[0]
    backward = run_lstm(x, bk, br, bb, backwards=True)[0][:, ::-1]
    np.testing.assert_allclose(out, np.concatenate([forward, backward], -1), rtol=1e-5, atol=1e-6)


def recurrent_model(kind):
    cell = {
        "lstm": layers.LSTM(4),
        "gru": layers.GRU(4),
        "bi": layers.Bidirectional(layers.SimpleRNN(3)),
    }[kind]
    return keras.Sequential([keras.Input(shape=(3, 2)), cell, layers.Dense(2, "softmax")])


@pytest.mark.parametrize("kind", ["lstm", "gru", "bi"])
def test_gradients_by_central_differences(kind, rng):
    model = recurrent_model(kind)
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    assert_model_gradients(model, rng, 2, lambda r, n: np.array([0, 1], np.int32))


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_compiled_train_steps_match_reference(kind, rng):
    def build(backend):
        keras.backend.clear_session()
        keras.utils.set_random_seed(3)
        model = recurrent_model(kind)
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", backend=backend)
        return model

    native, reference = build("llvm"), build("reference")
    for n in (1, 6, 9):
        x = rng.normal(size=(n, 3, 2)).astype(np.float32)
        y = rng.integers(0, 2, n)
        assert native.train_on_batch(x, y) == pytest.approx(
            reference.train_on_batch(x, y), rel=1e-5
        )
        for a, b in zip(native.get_weights(), reference.get_weights()):
            np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


def test_text_classifier_example_learns():
    import importlib.util
    import os

    path = os.path.join(os.path.dirname(__file__), "..", "examples", "text_classifier.py")
    spec = importlib.util.spec_from_file_location("text_classifier", path)
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    x, y = example.make_reviews(3000, seed=1)
    x_test, y_test = example.make_reviews(1000, seed=2)
    assert x.dtype == np.int32 and x.shape == (3000, example.LENGTH) and 0.3 < y.mean() < 0.7
    model = example.build_model()
    model.fit(x, y, epochs=8, verbose=0)
    assert model.evaluate(x_test, y_test, verbose=0)[1] > 0.85


def test_go_backwards_sequences_in_keras_order(rng):
    layer = layers.LSTM(3, return_sequences=True, go_backwards=True)
    x = rng.normal(size=(2, 4, 2)).astype(np.float32)
    out = layer(x)
    want, _, _ = run_lstm(x, *layer.get_weights(), backwards=True)  # in the order it ran
    np.testing.assert_allclose(out, want, rtol=1e-5, atol=1e-6)


def test_native_predict_of_sequences_at_odd_batch_sizes(rng):
    def build(backend):
        keras.backend.clear_session()
        keras.utils.set_random_seed(5)
        model = keras.Sequential(
            [
                keras.Input(shape=(5, 3)),
                layers.LSTM(4, return_sequences=True, go_backwards=True),
                layers.Bidirectional(layers.GRU(3, return_sequences=True)),
                layers.SimpleRNN(2),
            ]
        )
        model.compile(optimizer="sgd", loss="mse", backend=backend)
        return model

    native, reference = build("llvm"), build("reference")
    for n in (1, 5, 33):
        x = rng.normal(size=(n, 5, 3)).astype(np.float32)
        np.testing.assert_allclose(
            native.predict(x, verbose=0), reference.predict(x, verbose=0), rtol=1e-5, atol=1e-6
        )
