"""Layers, activations and initializers against independent numpy formulas."""

from __future__ import annotations

import math

import numpy as np
import pytest

import kcompile as keras
from kcompile import initializers, layers


def _sig(x):
    return 1 / (1 + np.exp(-x))


def _softplus(x):
    return np.log1p(np.exp(-np.abs(x))) + np.maximum(x, 0)


_erf = np.vectorize(math.erf)
SELU_A, SELU_S = 1.6732632423543772, 1.0507009873554805

ACTIVATIONS = {
    "linear": lambda x: x,
    "relu": lambda x: np.maximum(x, 0),
    "relu6": lambda x: np.clip(x, 0, 6),
    "sigmoid": _sig,
    "tanh": np.tanh,
    "softmax": lambda x: np.exp(x) / np.exp(x).sum(-1, keepdims=True),
    "log_softmax": lambda x: x - np.log(np.exp(x).sum(-1, keepdims=True)),
    "elu": lambda x: np.where(x > 0, x, np.exp(x) - 1),
    "selu": lambda x: SELU_S * np.where(x > 0, x, SELU_A * (np.exp(x) - 1)),
    "gelu": lambda x: 0.5 * x * (1 + _erf(x / np.sqrt(2))),
    "softplus": _softplus,
    "softsign": lambda x: x / (np.abs(x) + 1),
    "silu": lambda x: x * _sig(x),
    "swish": lambda x: x * _sig(x),
    "leaky_relu": lambda x: np.where(x > 0, x, 0.2 * x),
    "hard_sigmoid": lambda x: np.clip(x / 6 + 0.5, 0, 1),
    "hard_silu": lambda x: x * np.clip(x / 6 + 0.5, 0, 1),
    "exponential": np.exp,
    "mish": lambda x: x * np.tanh(_softplus(x)),
}


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_activation_formulas(name, rng):
    x = (rng.normal(size=(7, 5)) * 4).astype(np.float32)
    got = layers.Activation(name)(x)
    np.testing.assert_allclose(got, ACTIVATIONS[name](x.astype(np.float64)), rtol=2e-6, atol=2e-6)


def test_softplus_and_sigmoid_do_not_overflow():
    x = np.array([[-200.0, 0.0, 200.0]], np.float32)
    np.testing.assert_allclose(
        layers.Activation("softplus")(x), [[0.0, math.log(2), 200.0]], rtol=1e-6
    )
    np.testing.assert_allclose(layers.Activation("sigmoid")(x), [[0.0, 0.5, 1.0]])


def test_dense_matches_numpy_on_rank_3_inputs(rng):
    layer = layers.Dense(4, activation="tanh")
    x = rng.normal(size=(2, 3, 5)).astype(np.float32)
    out = layer(x)
    k, b = layer.get_weights()
    np.testing.assert_allclose(out, np.tanh(x @ k + b), rtol=1e-5, atol=1e-6)
    assert out.shape == (2, 3, 4)


def test_flatten_reshape_merge_shapes():
    inp = keras.Input(shape=(2, 3, 4))
    assert layers.Flatten()(inp).shape == (None, 24)
    assert layers.Reshape((6, -1))(inp).shape == (None, 6, 4)
    a, b = layers.Flatten()(inp), layers.Flatten()(inp)
    assert layers.Concatenate()([a, b]).shape == (None, 48)
    for merge in (
        layers.Add,
        layers.Subtract,
        layers.Multiply,
        layers.Average,
        layers.Maximum,
        layers.Minimum,
    ):
        assert merge()([a, b]).shape == (None, 24)


def test_merge_layers_compute(rng):
    a, b = rng.normal(size=(3, 4)), rng.normal(size=(3, 4))
    np.testing.assert_allclose(layers.Add()([a, b]), a + b, rtol=1e-6)
    np.testing.assert_allclose(layers.Subtract()([a, b]), a - b, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(layers.Average()([a, b]), (a + b) / 2, rtol=1e-6)
    np.testing.assert_allclose(layers.Maximum()([a, b]), np.maximum(a, b), rtol=1e-6)
    np.testing.assert_allclose(
        layers.Concatenate(axis=1)([a, b]), np.concatenate([a, b], 1), rtol=1e-6
    )


@pytest.mark.parametrize("backend", ["llvm", "reference"])
def test_dot_and_the_functional_merge_helpers(backend, rng):
    a, b = keras.Input((3, 4)), keras.Input((5, 4))
    u, v = keras.Input((4,)), keras.Input((4,))
    pairs = layers.dot([a, b], axes=2)
    cosine = layers.dot([u, v], axes=1, normalize=True)
    mixed = layers.concatenate(
        [layers.add([u, v]), layers.subtract([u, v]), layers.average([u, v])]
    )
    extremes = layers.multiply([layers.maximum([u, v]), layers.minimum([u, v])])
    model = keras.Model([a, b, u, v], [pairs, cosine, mixed, extremes])
    assert [t.shape for t in model.outputs] == [(None, 3, 5), (None, 1), (None, 12), (None, 4)]
    model.compile("sgd", "mse", backend=backend)
    xa, xb = rng.normal(size=(2, 3, 4)), rng.normal(size=(2, 5, 4))
    xu, xv = rng.normal(size=(2, 4)), rng.normal(size=(2, 4))
    got = model.predict([xa, xb, xu, xv], verbose=0)
    unit = [w / np.linalg.norm(w, axis=1, keepdims=True) for w in (xu, xv)]
    want = [
        np.einsum("bij,bkj->bik", xa, xb),
        (unit[0] * unit[1]).sum(1, keepdims=True),
        np.concatenate([xu + xv, xu - xv, (xu + xv) / 2], 1),
        np.maximum(xu, xv) * np.minimum(xu, xv),
    ]
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="Dot 'bad'.*cannot contract axis 1"):
        layers.Dot(axes=1, name="bad")([a, b])


def test_a_model_with_dict_outputs_predicts_a_dict(rng):
    inputs = keras.Input((3,))
    model = keras.Model(
        inputs, {"second": layers.Dense(2)(inputs), "first": layers.Dense(1)(inputs)}
    )
    assert model.output_names == ["first", "second"]  # Keras's order: sorted keys
    out = model.predict(rng.normal(size=(4, 3)), verbose=0)
    assert sorted(out) == ["first", "second"] and out["second"].shape == (4, 2)


def test_layer_names_are_unique_per_session():
    assert [layers.Dense(1).name for _ in range(3)] == ["dense", "dense_1", "dense_2"]
    keras.backend.clear_session()
    assert layers.Dense(1).name == "dense"


def test_nested_model_as_layer(rng):
    inner = keras.Sequential([keras.Input(shape=(3,)), layers.Dense(2)])
    x = keras.Input(shape=(3,))
    outer = keras.Model(x, layers.Dense(1)(inner(x)))
    outer.compile(optimizer="sgd", loss="mse")
    xs = rng.normal(size=(5, 3))
    k1, b1 = inner.get_weights()
    k2, b2 = outer.layers[-1].get_weights()
    np.testing.assert_allclose(outer.predict(xs, verbose=0), (xs @ k1 + b1) @ k2 + b2, rtol=1e-5)
    outer.fit(xs, rng.normal(size=(5, 1)), verbose=0)
    assert not np.allclose(inner.get_weights()[0], k1)  # the inner weights trained too


def test_functional_summary_has_connected_to(capsys):
    a = keras.Input(shape=(3,), name="a")
    b = keras.Input(shape=(3,), name="b")
    out = layers.Add(name="sum")([layers.Dense(3, name="d")(a), b])
    keras.Model([a, b], out).summary()
    text = capsys.readouterr().out
    assert "Connected to" in text
    assert "d[0][0], b[0][0]" in text
    assert "a (InputLayer)" in text


# --- initializers -------------------------------------------------------------


def test_glorot_uniform_limits_and_seed():
    w = initializers.GlorotUniform(seed=3)((300, 200))
    limit = math.sqrt(6 / 500)
    assert w.dtype == np.float32 and np.abs(w).max() <= limit
    assert np.abs(w).max() > 0.95 * limit
    np.testing.assert_array_equal(w, initializers.GlorotUniform(seed=3)((300, 200)))


@pytest.mark.parametrize(
    "name, std",
    [
        ("he_normal", math.sqrt(2 / 400)),
        ("lecun_normal", math.sqrt(1 / 400)),
        ("glorot_normal", math.sqrt(2 / 700)),
    ],
)
def test_truncated_normal_variance_scaling(name, std):
    w = initializers.get(name)((400, 300))
    assert abs(w.std() / std - 1) < 0.02
    assert np.abs(w).max() <= 2 * std / 0.87962566103423978 + 1e-6


def test_orthogonal_and_uniform_and_constants():
    q = initializers.Orthogonal()((6, 4))
    np.testing.assert_allclose(q.T @ q, np.eye(4), atol=1e-5)
    q = initializers.Orthogonal(gain=2.0)((3, 8))
    np.testing.assert_allclose(q @ q.T, 4 * np.eye(3), atol=1e-5)
    u = initializers.RandomUniform()((1000,))
    assert u.min() >= -0.05 and u.max() <= 0.05
    np.testing.assert_array_equal(initializers.get("zeros")((2,)), [0, 0])
    np.testing.assert_array_equal(initializers.Constant(3.0)((2,)), [3, 3])
    with pytest.raises(ValueError, match="known initializers"):
        initializers.get("glorot")


def test_dense_defaults_are_keras_defaults():
    layer = layers.Dense(5)
    layer.build((None, 7))
    k, b = layer.get_weights()
    assert np.abs(k).max() <= math.sqrt(6 / 12)
    np.testing.assert_array_equal(b, np.zeros(5))


def test_set_random_seed_makes_models_reproducible():
    def make():
        keras.backend.clear_session()
        keras.utils.set_random_seed(42)
        return keras.Sequential([keras.Input(shape=(4,)), layers.Dense(3)]).get_weights()

    for a, b in zip(make(), make()):
        np.testing.assert_array_equal(a, b)
