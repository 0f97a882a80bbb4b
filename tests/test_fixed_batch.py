"""A model whose Inputs fix the batch size (``keras.Input(shape, batch_size=8)``, as
stateful recurrent models are written): ``fit``, ``evaluate``, ``train_on_batch`` and a
PyDataset train it as the same model of any batch size trains, step for step."""

from __future__ import annotations

import numpy as np
import pytest

import kcompile as keras


def _model(batch_size):
    keras.utils.set_random_seed(3)
    inputs = keras.Input((4,), batch_size=batch_size)
    h = keras.layers.Dense(6, activation="tanh")(inputs)
    model = keras.Model(inputs, keras.layers.Dense(2)(h))
    model.compile(keras.optimizers.SGD(0.1), "mse", metrics=["mae"])
    return model


def _data():
    rng = np.random.default_rng(0)
    return rng.normal(size=(32, 4)).astype("float32"), rng.normal(size=(32, 2)).astype("float32")


def test_fit_and_evaluate_on_arrays_train_as_the_model_of_any_batch_size():
    x, y = _data()
    fixed, free = _model(8), _model(None)
    assert fixed.inputs[0].shape == (8, 4)
    runs = [m.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0) for m in (fixed, free)]
    np.testing.assert_allclose(runs[0].history["loss"], runs[1].history["loss"], rtol=1e-5)
    for a, b in zip(fixed.get_weights(), free.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    scores = [m.evaluate(x, y, batch_size=8, verbose=0) for m in (fixed, free)]
    np.testing.assert_allclose(scores[0], scores[1], rtol=1e-5)
    np.testing.assert_allclose(
        fixed.predict(x, batch_size=8, verbose=0), free.predict(x, verbose=0), rtol=1e-5, atol=1e-6
    )


def test_batches_one_at_a_time_and_from_a_dataset():
    x, y = _data()

    class Batches(keras.utils.PyDataset):
        def __len__(self):
            return 4

        def __getitem__(self, i):
            return x[i * 8 : (i + 1) * 8], y[i * 8 : (i + 1) * 8]

    fixed, free = _model(8), _model(None)
    for model in (fixed, free):
        model.train_on_batch(x[:8], y[:8])
        model.fit(Batches(), epochs=1, shuffle=False, verbose=0)
    for a, b in zip(fixed.get_weights(), free.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(
        fixed.test_on_batch(x[:8], y[:8]), free.test_on_batch(x[:8], y[:8]), rtol=1e-5
    )


def test_another_batch_size_is_refused_naming_the_fixed_one():
    x, y = _data()
    model = _model(8)
    with pytest.raises(ValueError, match="fix the batch size to 8.*batch_size=16"):
        model.fit(x, y, batch_size=16, verbose=0)
    with pytest.raises(ValueError, match="fix the batch size to 8.*30 samples"):
        model.evaluate(x[:30], y[:30], batch_size=8, verbose=0)
