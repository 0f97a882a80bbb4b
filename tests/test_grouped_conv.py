"""Grouped convolutions (``groups=``): Keras's numbers, and the compiled training step
against the reference interpreter. Fixture: ``tests/fixture_scripts/make_grouped_conv_fixtures.py``."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

import kcompile as keras
from kcompile import layers

HERE = Path(__file__).parent
FIXTURE = np.load(HERE / "keras_fixtures" / "grouped_conv.npz")
_spec = importlib.util.spec_from_file_location(
    "make_grouped_conv_fixtures", HERE / "fixture_scripts" / "make_grouped_conv_fixtures.py"
)
cases = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(cases)


def _model(name: str, backend: str = "llvm"):
    cls, args, shape = cases.CASES[name]
    inputs = keras.Input(shape[1:])
    model = keras.Model(inputs, getattr(layers, cls)(**args)(inputs))
    model.set_weights([FIXTURE[f"{name}/w0"], FIXTURE[f"{name}/w1"]])
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse", backend=backend)
    return model


@pytest.mark.parametrize("name", sorted(cases.CASES))
def test_grouped_convolutions_give_keras_numbers_and_train_as_the_reference(name):
    x, want = FIXTURE[f"{name}/x"], FIXTURE[f"{name}/y"]
    native, reference = _model(name), _model(name, "reference")
    np.testing.assert_allclose(native.predict(x, verbose=0), want, rtol=1e-4, atol=1e-5)
    y = np.zeros_like(want)
    got = native.train_on_batch(x, y, return_dict=True)["loss"]
    expected = reference.train_on_batch(x, y, return_dict=True)["loss"]
    assert got == pytest.approx(expected, rel=1e-5)
    for a, b in zip(native.get_weights(), reference.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


def test_groups_that_do_not_divide_are_refused_as_keras_does():
    with pytest.raises(ValueError, match="filters must be evenly divisible"):
        layers.Conv2D(5, 3, groups=2)
    with pytest.raises(ValueError, match="input channels must be evenly divisible"):
        layers.Conv2D(4, 3, groups=2)(keras.Input((5, 5, 3)))
    assert layers.Conv2D(4, 3, groups=2).get_config()["groups"] == 2
