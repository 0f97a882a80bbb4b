"""ConvLSTM1D/2D/3D: the recurrence written out in numpy from Keras's ConvLSTMCell
(input convolution with the layer's window, recurrent convolution "same", gates i, f,
c, o), Keras's own numbers on the same weights (``conv3d_cases``), initial_state,
return_sequences/return_state and go_backwards, dropout in training only, gradients by
central differences, compiled training against the reference interpreter, configs,
output shapes and Keras's refusals."""

from __future__ import annotations

import numpy as np
import pytest

import kcompile as keras
from kcompile import layers
from tests.conv3d_cases import check_keras_cases, conv_numpy
from tests.fixture_scripts.make_conv3d_fixtures import CASES
from tests.gradcheck import assert_model_gradients


def _sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def conv_lstm_numpy(layer, x, initial=None):
    """(every step's h in the input's order of time, final h, final c)."""
    kernel, recurrent, bias = (w.numpy().astype(np.float64) for w in layer.weights)
    f = layer.filters
    steps = range(x.shape[1])[::-1] if layer.go_backwards else range(x.shape[1])
    ones = (1,) * layer.rank
    h = c = None
    if initial is not None:
        h, c = (s.astype(np.float64) for s in initial)
    outputs = {}
    for t in steps:
        z = conv_numpy(x[:, t], kernel, layer.strides, layer.padding, layer.dilation_rate) + bias
        if h is None:
            h = c = np.zeros((*z.shape[:-1], f))
        z = z + conv_numpy(h, recurrent, ones, "same", ones)
        i, fg, g, o = (z[..., k * f : (k + 1) * f] for k in range(4))
        c = _sigmoid(fg) * c + _sigmoid(i) * np.tanh(g)
        h = _sigmoid(o) * np.tanh(c)
        outputs[t] = h
    order = sorted(outputs) if not layer.go_backwards else list(steps)
    return np.stack([outputs[t] for t in order], axis=1), h, c


def test_the_recurrence_matches_its_definition(rng):
    seq2, seq1 = keras.Input((4, 5, 4, 2)), keras.Input((3, 7, 2))
    state = [keras.Input((5, 4, 3)), keras.Input((5, 4, 3))]
    a = layers.ConvLSTM2D(3, (3, 2), padding="same", return_sequences=True, go_backwards=True)
    b = layers.ConvLSTM2D(3, 2, padding="same", return_state=True)
    c = layers.ConvLSTM1D(2, 3, strides=2, return_sequences=True)
    outs = [a(seq2), *b(seq2, initial_state=state), c(seq1)]
    model = keras.Model([seq2, seq1, *state], outs)
    x2 = rng.normal(size=(2, 4, 5, 4, 2)).astype(np.float32)
    x1 = rng.normal(size=(2, 3, 7, 2)).astype(np.float32)
    s = [rng.normal(size=(2, 5, 4, 3)).astype(np.float32) for _ in range(2)]
    got = model.predict([x2, x1, *s], verbose=0)
    close = dict(rtol=1e-5, atol=2e-6)
    # Keras returns go_backwards's steps in the order it ran them (last input step first)
    np.testing.assert_allclose(got[0], conv_lstm_numpy(a, x2)[0], **close)
    _, h, cell = conv_lstm_numpy(b, x2, s)
    for y, want in zip(got[1:4], (h, h, cell)):
        np.testing.assert_allclose(y, want, **close)
    np.testing.assert_allclose(got[4], conv_lstm_numpy(c, x1)[0], **close)
    assert a.compute_output_shape((None, 4, 5, 4, 2)) == (None, 4, 5, 4, 3)
    assert b.compute_output_shape((None, 4, 5, 4, 2)) == ((None, 5, 4, 3),) * 3
    assert b.compute_output_shape((None, 4, 5, 4, 2), [(None, 5, 4, 3)] * 2)[0] == (None, 5, 4, 3)
    assert c.compute_output_shape((None, 3, 7, 2)) == (None, 3, 3, 2)


@pytest.mark.slow
def test_outputs_and_configs_match_keras():
    check_keras_cases([n for n, case in CASES.items() if case[0].startswith("ConvLSTM")])


def small_model(dropout: float = 0.0):
    inputs = keras.Input((3, 4, 1))
    h = layers.ConvLSTM1D(
        2, 2, padding="same", return_sequences=True, dropout=dropout, recurrent_dropout=dropout
    )(inputs)
    h = layers.ConvLSTM1D(1, 2, go_backwards=True, dropout=dropout, seed=4)(h)
    return keras.Model(inputs, layers.Dense(2)(layers.Flatten()(h)))


@pytest.mark.slow
def test_gradients_by_central_differences(rng):
    model = small_model()
    model.compile("sgd", "mse")
    assert_model_gradients(model, rng, 2, lambda r, n: r.normal(size=(n, 2)))


@pytest.mark.slow
def test_compiled_training_with_dropout_matches_the_reference_interpreter(rng):
    def build(backend):
        keras.backend.clear_session()
        keras.utils.set_random_seed(7)
        model = small_model(dropout=0.3)
        model.compile(optimizer="adam", loss="mse", backend=backend)
        return model

    native, reference = build("llvm"), build("reference")
    for step, n in enumerate((1, 4)):
        x = rng.normal(size=(n, 3, 4, 1)).astype(np.float32)
        y = rng.normal(size=(n, 2)).astype(np.float32)
        a, b = native.train_on_batch(x, y), reference.train_on_batch(x, y)
        assert a == pytest.approx(b, rel=1e-5), step
        for va, vb in zip(native.weights, reference.weights):
            np.testing.assert_allclose(va.value, vb.value, rtol=1e-4, atol=1e-6, err_msg=va.path)


@pytest.mark.slow
def test_dropout_acts_in_training_only(rng):
    x = rng.normal(size=(4, 3, 5, 2)).astype(np.float32)
    y = rng.normal(size=(4, 4, 2)).astype(np.float32)
    losses = {}
    for rate in (0.0, 0.5):
        keras.utils.set_random_seed(2)
        inputs = keras.Input((3, 5, 2))
        layer = layers.ConvLSTM1D(2, 2, dropout=rate, recurrent_dropout=rate, seed=1)
        model = keras.Model(inputs, layer(inputs))
        model.compile(keras.optimizers.SGD(0.0), "mse")  # the weights stay
        losses[rate] = (model.train_on_batch(x, y), model.evaluate(x, y, verbose=0))
    assert losses[0.0][0] == pytest.approx(losses[0.0][1], rel=1e-6)
    assert losses[0.5][1] == pytest.approx(losses[0.0][1], rel=1e-6)  # no dropout in evaluation
    assert losses[0.5][0] != pytest.approx(losses[0.5][1], rel=1e-3)


def test_weights_configs_and_round_trips():
    layer = layers.ConvLSTM3D(4, (1, 2, 3), padding="same", recurrent_activation="hard_sigmoid")
    layer.build((None, 2, 3, 4, 5, 6))
    assert [w.shape for w in layer.weights] == [(1, 2, 3, 6, 16), (1, 2, 3, 4, 16), (16,)]
    bias = layer.bias.numpy()
    np.testing.assert_array_equal(bias[4:8], 1.0)  # unit_forget_bias
    np.testing.assert_array_equal(np.delete(bias, range(4, 8)), 0.0)
    for made in (layer, layers.ConvLSTM1D(2, 3, return_state=True, go_backwards=True, seed=2)):
        config = made.get_config()
        for key in (
            "filters",
            "kernel_size",
            "strides",
            "padding",
            "data_format",
            "dilation_rate",
            "recurrent_activation",
            "unit_forget_bias",
            "return_sequences",
            "return_state",
            "go_backwards",
            "stateful",
        ):
            assert key in config, key
        assert "units" not in config
        assert type(made).from_config(config).get_config() == config


def test_refusals():
    with pytest.raises(ValueError, match="`strides > 1` is not compatible with"):
        layers.ConvLSTM2D(2, 3, strides=2, dilation_rate=2)
    with pytest.raises(ValueError, match="expects inputs of rank 5"):
        layers.ConvLSTM2D(2, 3)(keras.Input((4, 5, 2)))
    with pytest.raises(ValueError, match="only support static input shapes"):
        layers.ConvLSTM1D(2, 3)(keras.Input((4, None, 2)))
    with pytest.raises(NotImplementedError, match="stateful=True"):
        layers.ConvLSTM2D(2, 3, stateful=True)
    with pytest.raises(ValueError, match=r"initial_state\[0\] must have shape"):
        seq, bad = keras.Input((3, 5, 2)), keras.Input((4, 2))
        layers.ConvLSTM1D(2, 3)(seq, initial_state=[bad, bad])
