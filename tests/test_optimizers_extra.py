"""keras.optimizers.Muon and ScheduleFreeAdamW: the update rules compiled into a train
step, and on the reference interpreter, against Keras 3.15's weights after five steps
(``keras_fixtures/extras.npz``, made by ``fixture_scripts/make_extras_fixtures.py``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import kcompile as keras
from kcompile import optimizers
from tests.fixture_scripts.make_extras_fixtures import OPTIMIZERS, run_optimizer

FIXTURE = np.load(Path(__file__).parent / "keras_fixtures" / "extras.npz")


@pytest.mark.parametrize("backend", [pytest.param(None, marks=pytest.mark.slow), "reference"])
@pytest.mark.parametrize("key", list(OPTIMIZERS))
def test_update_rule_matches_keras(key, backend):
    got = run_optimizer(keras, key, backend)
    want = {k.split("/")[-1]: FIXTURE[k] for k in FIXTURE if k.startswith(f"optimizer/{key}/")}
    assert set(got) == set(want)
    assert got["iterations"] == want["iterations"]
    for name in sorted(want):
        np.testing.assert_allclose(got[name], want[name], rtol=1e-4, atol=1e-5, err_msg=name)


def test_muon_routes_variables_as_keras():
    opt = optimizers.Muon(exclude_layers=["head"])
    matrix = keras.Variable(np.zeros((4, 3), np.float32), name="kernel")
    matrix.path = "dense/kernel"
    table = keras.Variable(np.zeros((10, 4), np.float32), name="embeddings")
    table.path = "embedding/embeddings"
    head = keras.Variable(np.zeros((4, 3), np.float32), name="kernel")
    head.path = "head/kernel"
    bias = keras.Variable(np.zeros((3,), np.float32), name="bias")
    assert not opt.should_use_adamw(matrix)
    assert opt.should_use_adamw(table) and opt.should_use_adamw(head)
    assert opt.should_use_adamw(bias)
    assert opt.slot_shape(matrix, "velocity") == () and opt.slot_shape(head, "velocity") == (4, 3)


def test_schedule_free_momentum_starts_at_the_weights():
    opt = optimizers.ScheduleFreeAdamW()
    var = keras.Variable(np.arange(6, dtype=np.float32).reshape(2, 3), name="w")
    opt.build([var])
    np.testing.assert_array_equal(opt.slots[opt.slot_path(var, "momentum")], var.numpy())
    assert not opt.slots[opt.slot_path(var, "velocity")].any()


@pytest.mark.parametrize("name", ["Muon", "ScheduleFreeAdamW"])
def test_config_round_trip_and_get(name):
    cls = getattr(optimizers, name)
    opt = cls(learning_rate=0.01)
    rebuilt = optimizers.deserialize(optimizers.serialize(opt))
    assert type(rebuilt) is cls and rebuilt.get_config() == opt.get_config()
    assert isinstance(optimizers.get(name.lower()), cls)
