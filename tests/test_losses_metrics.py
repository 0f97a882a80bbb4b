"""Losses and metrics against their formulas (Keras's clipping, reduction and resolution)."""

from __future__ import annotations

import numpy as np
import pytest

import kcompile as keras
from kcompile import layers, losses, metrics

EPS = 1e-7


def softmax(z):
    e = np.exp(z - z.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def log_softmax(z):
    s = z - z.max(-1, keepdims=True)
    return s - np.log(np.exp(s).sum(-1, keepdims=True))


@pytest.fixture
def data(rng):
    logits = rng.normal(size=(9, 4)) * 3
    probs = softmax(logits)
    probs[0] = [1.0, 0.0, 0.0, 0.0]  # exercises the clipping
    labels = rng.integers(0, 4, size=9)
    labels[0] = 1
    onehot = np.eye(4)[labels]
    return logits, probs, labels, onehot


def test_mse_mae(rng):
    t, p = rng.normal(size=(6, 3)), rng.normal(size=(6, 3))
    np.testing.assert_allclose(losses.MeanSquaredError()(t, p), ((p - t) ** 2).mean(), rtol=1e-6)
    np.testing.assert_allclose(losses.MeanAbsoluteError()(t, p), np.abs(p - t).mean(), rtol=1e-6)
    np.testing.assert_allclose(losses.mse(t, p), ((p - t) ** 2).mean(-1), rtol=1e-6)
    # y_true (N,) against y_pred (N, 1): Keras expands the labels.
    t1, p1 = rng.normal(size=6), rng.normal(size=(6, 1))
    np.testing.assert_allclose(losses.get("mse")(t1, p1), ((p1[:, 0] - t1) ** 2).mean(), rtol=1e-6)


def test_sum_reduction(rng):
    t, p = rng.normal(size=(6, 3)), rng.normal(size=(6, 3))
    got = losses.MeanSquaredError(reduction="sum")(t, p)
    np.testing.assert_allclose(got, ((p - t) ** 2).mean(-1).sum(), rtol=1e-6)


def test_categorical_crossentropy(data):
    logits, probs, _, onehot = data
    q = np.clip(probs / probs.sum(-1, keepdims=True), EPS, 1 - EPS)
    expected = -(onehot * np.log(q)).sum(-1).mean()
    np.testing.assert_allclose(losses.CategoricalCrossentropy()(onehot, probs), expected, rtol=1e-5)
    expected = -(onehot * log_softmax(logits)).sum(-1).mean()
    np.testing.assert_allclose(
        losses.CategoricalCrossentropy(from_logits=True)(onehot, logits), expected, rtol=1e-5
    )
    smooth = onehot * 0.9 + 0.1 / 4
    expected = -(smooth * log_softmax(logits)).sum(-1).mean()
    got = losses.CategoricalCrossentropy(from_logits=True, label_smoothing=0.1)(onehot, logits)
    np.testing.assert_allclose(got, expected, rtol=1e-5)


def test_sparse_categorical_crossentropy(data):
    logits, probs, labels, _ = data
    clipped = np.log(np.clip(probs, EPS, 1 - EPS))
    expected = -log_softmax(clipped)[np.arange(9), labels].mean()
    np.testing.assert_allclose(
        losses.SparseCategoricalCrossentropy()(labels, probs), expected, rtol=1e-5
    )
    expected = -log_softmax(logits)[np.arange(9), labels].mean()
    got = losses.SparseCategoricalCrossentropy(from_logits=True)(labels, logits)
    np.testing.assert_allclose(got, expected, rtol=1e-5)
    # Labels of shape (N, 1) and float labels are accepted, as in Keras.
    got = losses.get("sparse_categorical_crossentropy")(labels[:, None].astype(float), probs)
    np.testing.assert_allclose(
        got, losses.SparseCategoricalCrossentropy()(labels, probs), rtol=1e-6
    )


def test_binary_crossentropy(rng):
    t = (rng.random((8, 2)) < 0.5).astype(np.float32)
    z = rng.normal(size=(8, 2)) * 4
    p = 1 / (1 + np.exp(-z))
    p[0, 0] = 1.0
    # Keras clips in float32, where 1 - 1e-7 rounds to 1 - 2**-23.
    q = np.clip(p.astype(np.float32), np.float32(EPS), np.float32(1 - EPS))
    expected = (-(t * np.log(q) + (1 - t) * np.log(np.float32(1) - q))).mean()
    np.testing.assert_allclose(losses.BinaryCrossentropy()(t, p), expected, rtol=1e-5)
    expected = (np.maximum(z, 0) - z * t + np.log1p(np.exp(-np.abs(z)))).mean()
    np.testing.assert_allclose(
        losses.BinaryCrossentropy(from_logits=True)(t, z), expected, rtol=1e-5
    )


@pytest.mark.parametrize(
    "activation, loss",
    [("softmax", "sparse_categorical_crossentropy"), ("sigmoid", "binary_crossentropy")],
)
def test_probability_output_uses_logits_as_keras_does(activation, loss, rng):
    """A softmax/sigmoid output feeding a cross-entropy is scored from its logits
    (Keras's `_keras_logits`), so a saturated output gives the exact loss, not the
    clipped one."""
    units = 3 if activation == "softmax" else 1
    model = keras.Sequential([keras.Input(shape=(2,)), layers.Dense(units, activation)])
    model.compile(optimizer="sgd", loss=loss)
    w = np.array([[40.0, 0.0, -40.0][:units], [-40.0, 0.0, 40.0][:units]], np.float32)
    model.set_weights([w, np.zeros(units, np.float32)])
    x = np.array([[1.0, -1.0]], np.float32)
    y = np.array([2]) if units == 3 else np.array([[0.0]])
    z = (x @ w).astype(np.float64)
    if units == 3:
        expected = -log_softmax(z)[0, 2]
    else:
        expected = np.maximum(z, 0) - 0 + np.log1p(np.exp(-np.abs(z)))
    got = model.evaluate(x, y, verbose=0)
    np.testing.assert_allclose(got, float(np.squeeze(expected)), rtol=1e-5)
    assert got > -np.log(EPS)  # the clipped probability form would cap it here


def test_unknown_names_list_the_known_ones():
    with pytest.raises(ValueError, match="known losses: .*mean_squared_error"):
        losses.get("mean_squared_eror")
    with pytest.raises(ValueError, match="known metrics: .*precision"):
        metrics.get("precison")
    with pytest.raises(ValueError, match="known optimizers: .*adagrad, adam, .*rmsprop, .*sgd"):
        keras.optimizers.get("adagradd")
    with pytest.raises(ValueError, match="known activations: .*relu"):
        layers.Dense(3, activation="rleu")


@pytest.mark.parametrize(
    "y_true_shape, y_pred_shape, expected",
    [
        ((5,), (5, 3), metrics.SparseCategoricalAccuracy),
        ((5, 1), (5, 3), metrics.SparseCategoricalAccuracy),
        ((5, 3), (5, 3), metrics.CategoricalAccuracy),
        ((5, 1), (5, 1), metrics.BinaryAccuracy),
        ((5,), (5, 1), metrics.BinaryAccuracy),
    ],
)
def test_accuracy_resolves_from_shapes(y_true_shape, y_pred_shape, expected):
    from kcompile.ir import DType, TensorType

    t = TensorType(DType.f32, ("N", *y_true_shape[1:]))
    p = TensorType(DType.f32, ("N", *y_pred_shape[1:]))
    m = metrics.get("accuracy", t, p)
    assert type(m) is expected and m.name == "accuracy"
    assert metrics.get("acc", t, p).name == "acc"


def test_accuracy_values(rng):
    p = rng.random((20, 4)).astype(np.float32)
    y = rng.integers(0, 4, 20)
    m = metrics.SparseCategoricalAccuracy()
    m.update_state(y[:7], p[:7])
    m.update_state(y[7:], p[7:])
    assert m.result() == pytest.approx((p.argmax(1) == y).mean())
    m = metrics.CategoricalAccuracy()
    m.update_state(np.eye(4)[y], p)
    assert m.result() == pytest.approx((p.argmax(1) == y).mean())
    t = (rng.random((20, 1)) < 0.5).astype(np.float32)
    m = metrics.BinaryAccuracy()
    m.update_state(t, p[:, :1])
    assert m.result() == pytest.approx(((p[:, :1] > 0.5) == t).mean())


def test_precision_recall(rng):
    t = (rng.random((30, 3)) < 0.4).astype(np.float32)
    p = rng.random((30, 3)).astype(np.float32)
    pred = p > 0.5
    tp = (pred & (t == 1)).sum()
    fp = (pred & (t == 0)).sum()
    fn = (~pred & (t == 1)).sum()
    prec, rec = metrics.Precision(), metrics.Recall()
    for part in (slice(0, 11), slice(11, 30)):
        prec.update_state(t[part], p[part])
        rec.update_state(t[part], p[part])
    assert prec.result() == pytest.approx(tp / (tp + fp))
    assert rec.result() == pytest.approx(tp / (tp + fn))
    empty = metrics.Precision()
    empty.update_state(np.zeros((2, 1)), np.zeros((2, 1)))
    assert empty.result() == 0.0  # Keras's divide_no_nan
