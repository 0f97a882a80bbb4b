"""Keras's loss reductions, every one, with and without sample weights. The expected
numbers were printed by real Keras 3.15.1 (JAX) for the same program:
``keras.losses.MeanSquaredError(reduction=r)(y, p[, sample_weight=w])``."""

from __future__ import annotations

import numpy as np
import pytest

import kcompile as keras

Y = np.array([[0.0, 1.0], [1.0, 1.0], [0.0, 0.0]], "float32")
P = np.array([[0.2, 0.7], [0.9, 0.4], [0.1, 0.3]], "float32")
W = np.array([1.0, 0.0, 3.0], "float32")
KERAS = {
    None: ([0.065, 0.185, 0.05], [0.065, 0.0, 0.15]),
    "none": ([0.065, 0.185, 0.05], [0.065, 0.0, 0.15]),
    "mean": (0.1, 0.071667),
    "mean_with_sample_weight": (0.1, 0.05375),
    "sum": (0.3, 0.215),
    "sum_over_batch_size": (0.1, 0.071667),
}


@pytest.mark.parametrize("reduction", list(KERAS), ids=str)
def test_each_reduction_gives_keras_numbers(reduction):
    loss = keras.losses.MeanSquaredError(reduction=reduction)
    plain, weighted = KERAS[reduction]
    np.testing.assert_allclose(loss(Y, P), plain, rtol=1e-5)
    np.testing.assert_allclose(loss(Y, P, sample_weight=W), weighted, rtol=1e-5)
    assert loss.get_config()["reduction"] == reduction


def test_zero_weights_give_zero_not_nan():
    loss = keras.losses.MeanSquaredError(reduction="mean_with_sample_weight")
    assert float(loss(Y, P, sample_weight=np.zeros(3, "float32"))) == 0.0


def test_an_unknown_reduction_is_refused_as_keras_does():
    with pytest.raises(ValueError, match="Invalid value for argument `reduction`"):
        keras.losses.MeanSquaredError(reduction="average")
