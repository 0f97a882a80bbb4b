"""Each optimizer's update against Keras's formula, step by step, with gradients
worked out by hand for a linear model under mean squared error."""

from __future__ import annotations

import numpy as np
import pytest

import kcompile as keras
from kcompile import layers, optimizers

STEPS = 5


def linear_model(optimizer, units=3, features=4):
    model = keras.Sequential([keras.Input(shape=(features,)), layers.Dense(units)])
    model.compile(optimizer=optimizer, loss="mse")
    return model


def mse_grads(w, b, x, y):
    pred = x @ w + b
    d = 2.0 * (pred - y) / pred.size
    return x.T @ d, d.sum(0)


def sgd(p, g, s, t, lr=0.01, momentum=0.0, nesterov=False):
    if not momentum:
        return p - lr * g
    m = s.get("m", np.zeros_like(p))
    m = -g * lr + m * momentum
    s["m"] = m
    return p + (-g * lr + m * momentum) if nesterov else p + m


def adam(p, g, s, t, lr=0.001, b1=0.9, b2=0.999, eps=1e-7, wd=None, amsgrad=False):
    if wd:
        p = p - p * wd * lr
    m = s.get("m", np.zeros_like(p))
    v = s.get("v", np.zeros_like(p))
    m = m + (g - m) * (1 - b1)
    v = v + (g * g - v) * (1 - b2)
    s["m"], s["v"] = m, v
    if amsgrad:
        v = s["vh"] = np.maximum(s.get("vh", np.zeros_like(p)), v)
    alpha = lr * np.sqrt(1 - b2**t) / (1 - b1**t)
    return p - m * alpha / (np.sqrt(v) + eps)


def rmsprop(p, g, s, t, lr=0.001, rho=0.9, momentum=0.0, eps=1e-7, centered=False):
    v = rho * s.get("v", np.zeros_like(p)) + (1 - rho) * g * g
    s["v"] = v
    if centered:
        a = s["a"] = rho * s.get("a", np.zeros_like(p)) + (1 - rho) * g
        denom = v - a * a + eps
    else:
        denom = v + eps
    inc = lr * g / np.sqrt(denom)
    if momentum > 0:
        m = s["m"] = momentum * s.get("m", np.zeros_like(p)) + inc
        return p - m
    return p - inc


CONFIGS = [
    ("sgd", lambda: optimizers.SGD(), sgd, {}),
    ("sgd-momentum", lambda: optimizers.SGD(0.05, momentum=0.9), sgd, dict(lr=0.05, momentum=0.9)),
    (
        "sgd-nesterov",
        lambda: optimizers.SGD(0.05, momentum=0.8, nesterov=True),
        sgd,
        dict(lr=0.05, momentum=0.8, nesterov=True),
    ),
    ("adam", lambda: optimizers.Adam(), adam, {}),
    (
        "adam-lr",
        lambda: optimizers.Adam(0.05, beta_1=0.8, epsilon=1e-3),
        adam,
        dict(lr=0.05, b1=0.8, eps=1e-3),
    ),
    (
        "adam-amsgrad",
        lambda: optimizers.Adam(0.02, amsgrad=True),
        adam,
        dict(lr=0.02, amsgrad=True),
    ),
    ("adamw", lambda: optimizers.AdamW(0.01), adam, dict(lr=0.01, wd=0.004)),
    ("rmsprop", lambda: optimizers.RMSprop(), rmsprop, {}),
    (
        "rmsprop-momentum-centered",
        lambda: optimizers.RMSprop(0.01, momentum=0.5, centered=True),
        rmsprop,
        dict(lr=0.01, momentum=0.5, centered=True),
    ),
    ("default-string", lambda: "rmsprop", rmsprop, {}),
]


@pytest.mark.parametrize("name, make_opt, formula, kwargs", CONFIGS, ids=[c[0] for c in CONFIGS])
def test_update_rule_matches_keras_formula(name, make_opt, formula, kwargs, rng):
    model = linear_model(make_opt())
    w, b = (a.astype(np.float64) for a in model.get_weights())
    state_w, state_b = {}, {}
    for t in range(1, STEPS + 1):
        x = rng.normal(size=(7, 4)).astype(np.float32)
        y = rng.normal(size=(7, 3)).astype(np.float32)
        gw, gb = mse_grads(w, b, x.astype(np.float64), y.astype(np.float64))
        w = formula(w, gw, state_w, t, **kwargs)
        b = formula(b, gb, state_b, t, **kwargs)
        model.train_on_batch(x, y)
        got_w, got_b = model.get_weights()
        np.testing.assert_allclose(got_w, w, rtol=2e-5, atol=2e-6, err_msg=f"{name} step {t}")
        np.testing.assert_allclose(got_b, b, rtol=2e-5, atol=2e-6, err_msg=f"{name} step {t}")
    assert model.optimizer.iterations == STEPS


def test_defaults_are_keras_defaults():
    assert optimizers.SGD().learning_rate == 0.01
    a = optimizers.Adam()
    assert (a.learning_rate, a.beta_1, a.beta_2, a.epsilon) == (0.001, 0.9, 0.999, 1e-7)
    assert optimizers.AdamW().weight_decay == 0.004
    r = optimizers.RMSprop()
    assert (r.learning_rate, r.rho, r.momentum, r.epsilon) == (0.001, 0.9, 0.0, 1e-7)
    model = linear_model(optimizer="rmsprop")
    assert isinstance(model.optimizer, optimizers.RMSprop)


@pytest.mark.parametrize("clip", ["clipnorm", "clipvalue", "global_clipnorm"])
def test_gradient_clipping(clip, rng):
    model = linear_model(optimizers.SGD(1.0, **{clip: 0.1}))
    w, b = (a.astype(np.float64) for a in model.get_weights())
    x = rng.normal(size=(7, 4)).astype(np.float32) * 10
    y = rng.normal(size=(7, 3)).astype(np.float32)
    gw, gb = mse_grads(w, b, x.astype(np.float64), y.astype(np.float64))
    if clip == "clipnorm":
        gw = gw * 0.1 / max(np.linalg.norm(gw), 0.1)
        gb = gb * 0.1 / max(np.linalg.norm(gb), 0.1)
    elif clip == "clipvalue":
        gw, gb = np.clip(gw, -0.1, 0.1), np.clip(gb, -0.1, 0.1)
    else:
        norm = np.sqrt((gw**2).sum() + (gb**2).sum())
        scale = 0.1 * min(1 / norm, 1 / 0.1)
        gw, gb = gw * scale, gb * scale
    model.train_on_batch(x, y)
    np.testing.assert_allclose(model.get_weights()[0], w - gw, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(model.get_weights()[1], b - gb, rtol=1e-5, atol=1e-6)


def test_learning_rate_change_needs_no_recompile(rng):
    model = linear_model(optimizers.SGD(0.1))
    x = rng.normal(size=(7, 4)).astype(np.float32)
    y = rng.normal(size=(7, 3)).astype(np.float32)
    model.train_on_batch(x, y)
    graphs = len(model.compiled_steps.executables)
    model.optimizer.learning_rate = 0.0
    before = model.get_weights()
    model.train_on_batch(x, y)
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert len(model.compiled_steps.executables) == graphs


def test_use_ema_keeps_an_average_and_fit_ends_on_it(rng):
    """Keras's use_ema: after each step the average moves toward the new weights (the
    first step copies them); at the end of fit the weights become the average."""
    keras.utils.set_random_seed(2)
    inputs = keras.Input((3,))
    model = keras.Model(inputs, keras.layers.Dense(1)(inputs))
    model.compile(keras.optimizers.SGD(0.1, use_ema=True, ema_momentum=0.5), "mse")
    seen = []

    class Record(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            seen.append([w.copy() for w in self.model.get_weights()])

    x = rng.normal(size=(12, 3)).astype("float32")
    model.fit(x, x[:, :1], batch_size=4, epochs=1, shuffle=False, verbose=0, callbacks=[Record()])
    average = seen[0]
    for step in seen[1:]:
        average = [0.5 * a + 0.5 * w for a, w in zip(average, step)]
    for got, want in zip(model.get_weights(), average):
        np.testing.assert_allclose(got, want, rtol=1e-6)
