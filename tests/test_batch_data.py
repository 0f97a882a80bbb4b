"""fit, evaluate and predict on data in batches: keras.utils.PyDataset and generators
(with sample weights, named inputs, steps_per_epoch), as Keras's guides use them."""

from __future__ import annotations

import numpy as np
import pytest

import kcompile as keras


class Batches(keras.utils.PyDataset):
    """The Keras guide's PyDataset: batches of a pair of arrays, counting epochs."""

    def __init__(self, x, y, batch_size, weights=None, **kwargs):
        super().__init__(**kwargs)
        self.x, self.y, self.batch_size, self.weights = x, y, batch_size, weights
        self.epochs_ended = 0

    def __len__(self):
        return int(np.ceil(len(self.x) / self.batch_size))

    def __getitem__(self, index):
        part = slice(index * self.batch_size, (index + 1) * self.batch_size)
        if self.weights is None:
            return self.x[part], self.y[part]
        return self.x[part], self.y[part], self.weights[part]

    def on_epoch_end(self):
        self.epochs_ended += 1


def _model(name=None):
    keras.utils.set_random_seed(6)
    inputs = keras.Input((3,), name=name)
    model = keras.Model(inputs, keras.layers.Dense(1)(inputs))
    model.compile(keras.optimizers.SGD(0.05), "mse", metrics=["mae"])
    return model


def _data(rng, n=30):
    x = rng.normal(size=(n, 3)).astype("float32")
    return x, x @ np.array([[1.0], [-1.0], [2.0]], "float32")


def test_a_py_dataset_trains_like_the_same_batches_of_arrays(rng):
    x, y = _data(rng)
    batches = Batches(x, y, 8)
    from_dataset, from_arrays = _model(), _model()
    history = from_dataset.fit(batches, epochs=3, shuffle=False, verbose=0).history
    from_arrays.fit(x, y, batch_size=8, epochs=3, shuffle=False, verbose=0)
    for a, b in zip(from_dataset.get_weights(), from_arrays.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert batches.epochs_ended == 3 and len(history["loss"]) == 3
    logs = from_dataset.evaluate(Batches(x, y, 7), verbose=0, return_dict=True)
    assert logs["loss"] == pytest.approx(
        from_arrays.evaluate(x, y, verbose=0, return_dict=True)["loss"], rel=1e-5
    )
    np.testing.assert_allclose(
        from_dataset.predict(Batches(x, y, 4), verbose=0),
        from_arrays.predict(x, verbose=0),
        rtol=1e-6,
    )


def test_generators_with_weights_named_inputs_and_steps_per_epoch(rng):
    x, y = _data(rng, 40)

    def forever():
        while True:
            for i in range(0, 40, 10):
                yield {"features": x[i : i + 10]}, y[i : i + 10], np.full(10, 2.0, "float32")

    model = _model("features")
    history = model.fit(
        forever(),
        steps_per_epoch=4,
        epochs=2,
        verbose=0,
        validation_data=Batches(x, y, 20),
    ).history
    assert len(history["loss"]) == 2 and "val_loss" in history
    once = ((x[i : i + 10], y[i : i + 10]) for i in range(0, 40, 10))
    with pytest.warns(UserWarning, match="ran out of data"):
        history = _model().fit(once, epochs=3, verbose=0).history
    assert len(history["loss"]) == 1  # a generator read once trains one epoch, as Keras's


def test_batches_carry_their_labels():
    with pytest.raises(ValueError, match="batches carry the labels.*do not pass y"):
        _model().fit(iter([]), np.zeros(3), verbose=0)
