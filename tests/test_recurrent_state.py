"""Recurrent layers' states and cells: ``initial_state=`` and ``return_state`` (an
encoder's states into a decoder), ``layers.RNN`` with the built-in cells, a user's cell
and ``StackedRNNCells``, against Keras 3's numbers (``keras_fixtures/recurrent_state.npz``,
made by ``make_recurrent_fixtures.py``); ``dropout`` / ``recurrent_dropout`` against
numpy with the masks of the step's random op; gradients by central differences; compiled
training against the reference interpreter; ``stateful=True`` refused with its reason."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import kcompile as keras
from kcompile import layers
from kcompile.ir.ops.random import stream_key, uniform_bits
from tests.fixture_arrays import numbered
from tests.gradcheck import assert_model_gradients
from tests.recurrent_state_programs import PROGRAMS, minimal_cell_class

FIXTURES = np.load(Path(__file__).parent / "keras_fixtures" / "recurrent_state.npz")


def _arrays(name: str, kind: str) -> list[np.ndarray]:
    return numbered(FIXTURES, name, kind)


@pytest.mark.parametrize("name", sorted(PROGRAMS))
def test_states_and_cells_match_keras(name):
    """Keras's weights loaded, the same inputs: Keras's outputs, natively and on the
    reference interpreter."""
    model, inputs = PROGRAMS[name](keras)
    model.set_weights(_arrays(name, "w"))
    for x, want in zip(inputs, _arrays(name, "x")):
        np.testing.assert_array_equal(x, want)
    for backend in ("llvm", "reference"):
        model.compile("sgd", "mse", backend=backend)
        got = model.predict(inputs, verbose=0)
        got = got if isinstance(got, list) else [got]
        want = _arrays(name, "y")
        assert len(got) == len(want)
        for a, b in zip(got, want):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=2e-6, err_msg=f"{name} {backend}")


def _seq2seq(kind="LSTM", units=4, steps=(4, 5), **options):
    enc_in, dec_in = keras.Input((steps[0], 3)), keras.Input((steps[1], 2))
    layer = getattr(layers, kind)
    states = layer(units, return_state=True, **options)(enc_in)[1:]
    seq = layer(units, return_sequences=True, **options)(dec_in, initial_state=states)
    return keras.Model([enc_in, dec_in], layers.Dense(2)(seq))


@pytest.mark.parametrize("kind", ["SimpleRNN", "LSTM", "GRU"])
def test_gradients_flow_through_initial_states(kind, rng):
    """The encoder learns only through the decoder's initial state."""
    model = _seq2seq(kind, units=2, steps=(3, 2))
    model.compile("sgd", "mse")
    assert_model_gradients(model, rng, 2, lambda r, n: r.normal(size=(n, 2, 2)))


def test_gradients_through_user_and_stacked_cells(rng):
    cell = minimal_cell_class(keras)
    inputs = keras.Input((4, 3))
    h = layers.RNN(cell(3), return_sequences=True)(inputs)
    out = layers.RNN([layers.GRUCell(3), cell(2), layers.LSTMCell(2, dropout=0.5)])(h)
    model = keras.Model(inputs, out)
    model.compile("sgd", "mse")
    assert_model_gradients(model, rng, 3, lambda r, n: r.normal(size=(n, 2)))


def _fit_twice(build, x, y):
    results = []
    for backend in ("llvm", "reference"):
        keras.utils.set_random_seed(3)
        model = build()
        model.compile("adam", "mse", backend=backend)
        history = model.fit(x, y, epochs=2, batch_size=4, shuffle=False, verbose=0)
        results.append((history.history["loss"], model.get_weights()))
    return results


@pytest.mark.parametrize("kind", ["SimpleRNN", "LSTM", "GRU"])
def test_compiled_training_with_dropout_matches_the_reference(kind, rng):
    x = [rng.normal(size=(8, 4, 3)).astype("float32"), rng.normal(size=(8, 5, 2))]
    x[1] = x[1].astype("float32")
    y = rng.normal(size=(8, 5, 2)).astype("float32")
    native, reference = _fit_twice(
        lambda: _seq2seq(kind, dropout=0.3, recurrent_dropout=0.4, seed=5), x, y
    )
    np.testing.assert_allclose(native[0], reference[0], rtol=1e-4)
    for a, b in zip(native[1], reference[1]):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


def _uniform(seed: int, shape: tuple) -> np.ndarray:
    """The step's random op at counter 0 (an eager call's)."""
    return uniform_bits(stream_key(seed, 0), int(np.prod(shape))).reshape(shape)


def _mask(seed: int, shape: tuple, rate: float) -> np.ndarray:
    return np.where(_uniform(seed, shape) >= rate, 1.0 / (1.0 - rate), 0.0)


def test_dropout_is_one_mask_per_sequence_and_only_in_training():
    """Linear SimpleRNN, kernel I, no recurrence: each step's output is its input times
    the input mask, the same mask at every step."""
    layer = layers.SimpleRNN(
        6,
        activation=None,
        use_bias=False,
        return_sequences=True,
        kernel_initializer="identity",
        recurrent_initializer="zeros",
        dropout=0.5,
        seed=11,
    )
    x = np.ones((40, 7, 6), "float32")
    out = layer(x, training=True)
    mask = out[:, 0]
    assert set(np.unique(mask)) == {0.0, 2.0}
    np.testing.assert_array_equal(out, np.repeat(mask[:, None], 7, 1))
    np.testing.assert_allclose(mask, _mask(11, (40, 6), 0.5))
    np.testing.assert_array_equal(layer(x), x)  # not in inference


def test_recurrent_dropout_keeps_one_mask_for_the_state():
    """Linear SimpleRNN, no input, recurrent kernel I, initial state 1: h_t = m^t."""
    layer = layers.SimpleRNN(
        5,
        activation=None,
        use_bias=False,
        return_sequences=True,
        kernel_initializer="zeros",
        recurrent_initializer="identity",
        recurrent_dropout=0.5,
        seed=3,
    )
    x = np.zeros((30, 4, 2), "float32")
    h0 = np.ones((30, 5), "float32")
    out = layer(x, initial_state=[h0], training=True)
    m = _mask(3 + 7919, (30, 5), 0.5)
    np.testing.assert_allclose(out, np.stack([m**t for t in range(1, 5)], 1))


def sigmoid(z):
    return 1 / (1 + np.exp(-z))


def test_lstm_dropout_is_kerass_implementation_one(rng):
    """With recurrent_dropout, Keras's LSTMCell drops the inputs and the state with one
    mask per gate (implementation=1): numpy's LSTM with those masks."""
    n, steps, f, u = 5, 3, 4, 3
    layer = layers.LSTM(u, dropout=0.4, recurrent_dropout=0.3, seed=20, return_sequences=True)
    x = rng.normal(size=(n, steps, f)).astype("float32")
    h0, c0 = rng.normal(size=(n, u)), rng.normal(size=(n, u))
    out = layer(x, initial_state=[h0.astype("float32"), c0.astype("float32")], training=True)
    k, r, b = (w.astype(np.float64) for w in layer.get_weights())
    input_masks = [_mask(20 + g, (n, f), 0.4) for g in range(4)]
    state_masks = [_mask(20 + 7919 + g, (n, u), 0.3) for g in range(4)]
    h, c, want = h0, c0, []
    for t in range(steps):
        z = [
            (x[:, t] * input_masks[g]) @ k[:, g * u : (g + 1) * u]
            + (h * state_masks[g]) @ r[:, g * u : (g + 1) * u]
            + b[g * u : (g + 1) * u]
            for g in range(4)
        ]
        c = sigmoid(z[1]) * c + sigmoid(z[0]) * np.tanh(z[2])
        h = sigmoid(z[3]) * np.tanh(c)
        want.append(h)
    np.testing.assert_allclose(out, np.stack(want, 1), rtol=1e-5, atol=1e-6)


def test_gru_input_dropout_alone_is_one_mask(rng):
    """Without recurrent_dropout Keras's GRUCell (implementation=2) drops the inputs with
    one mask for all gates."""
    n, f, u = 4, 3, 2
    layer = layers.GRU(u, dropout=0.5, seed=8)
    x = rng.normal(size=(n, 2, f)).astype("float32")
    dropped = x * _mask(8, (n, f), 0.5)[:, None].astype("float32")
    twin = layers.GRU(u)
    twin(dropped)
    layer(x)
    twin.set_weights(layer.get_weights())
    np.testing.assert_allclose(layer(x, training=True), twin(dropped), rtol=1e-5, atol=1e-6)


def test_stateful_is_refused_with_its_reason():
    with pytest.raises(NotImplementedError, match="stateful=True is not supported.*initial_state"):
        layers.LSTM(3, stateful=True)
    with pytest.raises(NotImplementedError, match="stateful"):
        layers.RNN(layers.GRUCell(2), stateful=True)
    layer = layers.GRU(2)
    layer.reset_states()  # Keras's: a layer that is not stateful has none to reset
    layer.reset_state()


def test_initial_state_of_the_wrong_count_or_size_is_refused():
    x, h = keras.Input((3, 2)), keras.Input((4,))
    with pytest.raises(ValueError, match="initial_state has 1 tensors.*2 states"):
        layers.LSTM(4)(x, initial_state=[h])
    with pytest.raises(ValueError, match=r"initial_state\[0\] must have shape \(batch, 5\)"):
        layers.GRU(5)(x, initial_state=[h])


def test_a_cell_called_alone_is_one_step(rng):
    cell = layers.LSTMCell(3)
    x = rng.normal(size=(2, 4)).astype("float32")
    h, c = np.zeros((2, 3), "float32"), np.zeros((2, 3), "float32")
    out, h1, c1 = cell(x, [h, c])
    full = layers.RNN(cell, return_state=True)(x[:, None])
    for a, b in zip((out, h1, c1), full):
        np.testing.assert_allclose(a, b, rtol=1e-6)


def test_rnn_configs_round_trip():
    layer = layers.RNN([layers.LSTMCell(3, dropout=0.2), layers.GRUCell(2)], return_state=True)
    again = layers.RNN.from_config(layer.get_config())
    assert [type(c).__name__ for c in again.cell.cells] == ["LSTMCell", "GRUCell"]
    assert again.cell.cells[0].dropout == 0.2 and again.return_state
    lstm = layers.LSTM(3, dropout=0.1, recurrent_dropout=0.2, seed=4)
    config = lstm.get_config()
    assert (config["dropout"], config["recurrent_dropout"], config["seed"]) == (0.1, 0.2, 4)
    assert layers.LSTM.from_config(config).recurrent_dropout == 0.2


def test_bidirectional_keeps_working_with_dropout(rng):
    inputs = keras.Input((4, 3))
    out = layers.Bidirectional(layers.LSTM(2, dropout=0.2, recurrent_dropout=0.2))(inputs)
    model = keras.Model(inputs, out)
    model.compile("sgd", "mse")
    x = rng.normal(size=(6, 4, 3)).astype("float32")
    model.fit(x, np.zeros((6, 4), "float32"), epochs=1, verbose=0)
    assert model.predict(x, verbose=0).shape == (6, 4)


def test_keras_parity_when_keras_is_installed(rng):
    """The seq2seq program with Keras in this process, when it is installed."""
    keras_module = pytest.importorskip("keras")
    if getattr(keras_module, "__name__", "") == "kcompile":
        pytest.skip("keras here is kcompile")
    theirs, inputs = PROGRAMS["seq2seq_lstm"](keras_module)
    ours, _ = PROGRAMS["seq2seq_lstm"](keras)
    ours.set_weights(theirs.get_weights())
    for a, b in zip(ours.predict(inputs, verbose=0), theirs.predict(inputs, verbose=0)):
        np.testing.assert_allclose(a, np.asarray(b), rtol=1e-5, atol=2e-6)


@pytest.mark.parametrize("stacked", [False, True])
def test_rnn_of_cells_round_trips_through_a_keras_file(tmp_path, stacked):
    """The cells' weights are saved at Keras's paths (a file without them would load with
    fresh weights and predict something else)."""
    cell = [layers.GRUCell(3), layers.LSTMCell(4)] if stacked else layers.LSTMCell(4)
    inputs = keras.Input((5, 2))
    model = keras.Model(inputs, layers.RNN(cell)(inputs))
    x = np.random.default_rng(0).random((3, 5, 2), dtype=np.float32)
    path = str(tmp_path / "rnn.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
