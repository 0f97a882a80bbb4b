"""sample_weight and class_weight in fit, evaluate and the on-batch calls, and weighted
metrics. Keras's own numbers for them are in test_keras_parity (``sample_weight``,
``class_weight``)."""

from __future__ import annotations

import numpy as np
import pytest

import kcompile as keras


def _model(lr=0.1, backend="llvm"):
    keras.utils.set_random_seed(4)
    inputs = keras.Input((3,))
    model = keras.Model(inputs, keras.layers.Dense(2, activation="softmax")(inputs))
    model.compile(
        keras.optimizers.SGD(lr),
        "sparse_categorical_crossentropy",
        metrics=["accuracy"],
        weighted_metrics=["accuracy"],
        backend=backend,
    )
    return model


def _data(rng, n=40):
    x = rng.normal(size=(n, 3)).astype("float32")
    return x, (x[:, 0] > 0).astype("int32")


def test_doubled_weights_train_like_a_doubled_learning_rate(rng):
    x, y = _data(rng)
    weighted, faster = _model(0.1), _model(0.2)
    weighted.fit(
        x, y, batch_size=8, epochs=2, shuffle=False, verbose=0, sample_weight=np.full(40, 2.0)
    )
    faster.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0)
    for a, b in zip(weighted.get_weights(), faster.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_class_weights_are_sample_weights_of_each_label(rng):
    x, y = _data(rng)
    by_class, by_sample = _model(), _model()
    by_class.fit(
        x, y, batch_size=8, epochs=1, shuffle=False, verbose=0, class_weight={0: 0.5, 1: 3.0}
    )
    by_sample.fit(
        x,
        y,
        batch_size=8,
        epochs=1,
        shuffle=False,
        verbose=0,
        sample_weight=np.where(y == 0, 0.5, 3.0),
    )
    for a, b in zip(by_class.get_weights(), by_sample.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-6)


def test_weighted_evaluate_and_metrics_match_their_formulas(rng):
    x, y = _data(rng)
    model = _model()
    w = rng.uniform(0, 2, 40).astype("float32")
    p = model.predict(x, verbose=0)
    logs = model.evaluate(x, y, sample_weight=w, batch_size=40, verbose=0, return_dict=True)
    per_sample = -np.log(np.clip(p[np.arange(40), y], 1e-7, 1))
    hit = (p.argmax(1) == y).astype(float)
    assert logs["loss"] == pytest.approx((per_sample * w).sum() / 40, rel=1e-5)
    assert logs["accuracy"] == pytest.approx(hit.mean(), rel=1e-6)
    assert logs["weighted_accuracy"] == pytest.approx((hit * w).sum() / w.sum(), rel=1e-5)


@pytest.mark.parametrize("backend", ["llvm", "reference"])
def test_fit_with_weighted_validation_data(backend, rng):
    x, y = _data(rng)
    model = _model(backend=backend)
    w = rng.uniform(0, 2, 40).astype("float32")
    history = model.fit(
        x[:30],
        y[:30],
        sample_weight=w[:30],
        validation_data=(x[30:], y[30:], w[30:]),
        batch_size=8,
        epochs=2,
        verbose=0,
    ).history
    assert set(history) >= {"loss", "val_loss", "weighted_accuracy", "val_weighted_accuracy"}


def test_bad_weights_are_refused(rng):
    x, y = _data(rng)
    model = _model()
    with pytest.raises(ValueError, match="sample_weight or class_weight, not both"):
        model.fit(x, y, sample_weight=np.ones(40), class_weight={0: 1.0}, verbose=0)
    with pytest.raises(
        ValueError, match=r"sample_weight has shape \(39,\).*one weight per sample \(40\)"
    ):
        model.fit(x, y, sample_weight=np.ones(39), verbose=0)
