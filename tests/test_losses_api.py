"""keras.losses names added for issue 26 (Dice, Tversky, CategoricalGeneralizedCrossEntropy,
their functions, serialize / deserialize) and Keras's calling conventions (a Loss called
with ``sample_weight=``, the functions on Python lists, ``get`` of a config dict), against
Keras 3.15's numbers (``keras_fixtures/api_parity.npz``, made by
``make_api_parity_fixtures.py``); losses in compiled train steps on both backends."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import kcompile as keras
from kcompile import losses
from tests import api_parity_cases as C

FIXTURE = np.load(Path(__file__).parent / "keras_fixtures" / "api_parity.npz")


@pytest.mark.parametrize("key", list(C.LOSS_CALLS))
def test_eager_loss_matches_keras(key):
    got = np.asarray(C.LOSS_CALLS[key](keras), np.float32)
    np.testing.assert_allclose(got, FIXTURE[f"loss/{key}"], rtol=2e-5, atol=2e-6)


@pytest.mark.parametrize("backend", [None, "reference"])
@pytest.mark.parametrize("key", list(C.TRAINED_LOSSES))
def test_loss_in_compiled_train_step_matches_keras(key, backend):
    got = C.run_trained_loss(keras, key, backend)
    for i, w in enumerate(got):
        np.testing.assert_allclose(
            w, FIXTURE[f"trained_loss/{key}/{i}"], rtol=1e-4, atol=1e-5, err_msg=f"weight {i}"
        )


def test_loss_call_with_sample_weight_inside_a_custom_loss():
    inner = losses.MeanSquaredError(reduction="sum")

    def weighted(y_true, y_pred):
        return inner(y_true, y_pred, sample_weight=keras.ops.ones_like(y_true[:, 0]) * 2.0)

    model = keras.Sequential([keras.Input(shape=(2,)), keras.layers.Dense(1)])
    model.compile("sgd", weighted)
    x, y = np.ones((4, 2), np.float32), np.zeros((4, 1), np.float32)
    model.set_weights([np.ones((2, 1), np.float32), np.zeros(1, np.float32)])
    # every prediction is 2: (2 - 0)^2 = 4 a sample, times 2, summed over 4 samples
    assert model.evaluate(x, y, verbose=0) == pytest.approx(32.0)


@pytest.mark.parametrize(
    "loss",
    [
        losses.MeanSquaredError(),
        losses.BinaryCrossentropy(from_logits=True, label_smoothing=0.1),
        losses.SparseCategoricalCrossentropy(from_logits=True),
        losses.Huber(delta=2.0),
        losses.Dice(axis=-1),
        losses.Tversky(alpha=0.1, beta=0.9),
        losses.CategoricalGeneralizedCrossEntropy(q=0.25),
    ],
    ids=lambda loss: type(loss).__name__,
)
def test_serialize_deserialize_get_round_trip(loss):
    config = losses.serialize(loss)
    assert config["module"] == "keras.losses"
    assert config["class_name"] == type(loss).__name__
    for rebuilt in (losses.deserialize(config), losses.get(config)):
        assert type(rebuilt) is type(loss)
        assert rebuilt.get_config() == loss.get_config()


def test_get_takes_a_keras_config_dict():
    huber = losses.get({"class_name": "Huber", "config": {"delta": 2.0}})
    assert isinstance(huber, losses.Huber) and huber.get_config()["delta"] == 2.0
    assert losses.serialize(losses.mean_squared_error) == "mean_squared_error"
    assert isinstance(losses.deserialize("mean_squared_error"), losses.MeanSquaredError)
    with pytest.raises(ValueError, match="unknown loss class"):
        losses.get({"class_name": "NoSuchLoss", "config": {}})


def test_generalized_cross_entropy_checks_q():
    with pytest.raises(ValueError, match="q must be in the interval"):
        losses.CategoricalGeneralizedCrossEntropy(q=1.5)


def test_a_name_keras_lacks_is_an_attribute_error():
    assert not hasattr(losses, "NoSuchLoss")
