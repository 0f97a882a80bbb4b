"""keras.optimizers names added for issue 26 (Adafactor, Lamb, LossScaleOptimizer,
serialize / deserialize): each update rule compiled into a train step, and on the
reference interpreter, against Keras 3.15's weights after five steps
(``keras_fixtures/api_parity.npz``, made by ``make_api_parity_fixtures.py``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import kcompile as keras
from kcompile import optimizers
from tests import api_parity_cases as C

FIXTURE = np.load(Path(__file__).parent / "keras_fixtures" / "api_parity.npz")


@pytest.mark.parametrize("backend", [None, "reference"])
@pytest.mark.parametrize("key", list(C.OPTIMIZERS))
def test_update_rule_matches_keras(key, backend):
    got = C.run_optimizer(keras, key, backend)
    want = {k.split("/")[-1]: FIXTURE[k] for k in FIXTURE if k.startswith(f"optimizer/{key}/")}
    assert set(got) == set(want)
    assert got["iterations"] == want["iterations"]
    for name in sorted(want):
        np.testing.assert_allclose(got[name], want[name], rtol=2e-5, atol=2e-6, err_msg=name)


def test_loss_scale_optimizer_skips_the_non_finite_step():
    """Keras skipped the step whose gradients are not finite and kept finite weights;
    test_update_rule_matches_keras[loss_scale_sgd_nonfinite-*] runs the same program on
    kcompile and requires exactly these numbers (so kcompile counts 4 steps too, and its
    weights are finite: assert_allclose fails a NaN or an infinity against a finite one)."""
    want = {
        k.split("/")[-1]: FIXTURE[k]
        for k in FIXTURE
        if k.startswith("optimizer/loss_scale_sgd_nonfinite/")
    }
    assert want["iterations"] == 4  # Keras's count: 5 steps, 1 skipped
    weights = [w for k, w in want.items() if k.startswith("w")]
    assert weights and all(np.isfinite(w).all() for w in weights)


def test_adafactor_factors_the_last_two_axes():
    opt = optimizers.Adafactor()
    kernel = keras.Variable(np.zeros((2, 4, 3), np.float32), name="k")
    bias = keras.Variable(np.zeros((3,), np.float32), name="b")
    opt.build([kernel, bias])
    assert [opt.slot_shape(kernel, s) for s in ("r", "c", "velocity")] == [
        (2, 4),
        (2, 3),
        (2, 4, 3),
    ]
    assert [opt.slot_shape(bias, s) for s in ("r", "c", "velocity")] == [(), (), (3,)]
    assert len(opt.slots) == 6


@pytest.mark.parametrize(
    "optimizer",
    [
        optimizers.Adafactor(learning_rate=0.01, clip_threshold=2.0),
        optimizers.Lamb(beta_1=0.8),
        optimizers.Adam(amsgrad=True),
        optimizers.LossScaleOptimizer(optimizers.SGD(0.1, momentum=0.5), initial_scale=8.0),
    ],
    ids=lambda o: type(o).__name__,
)
def test_serialize_deserialize_get_round_trip(optimizer):
    config = optimizers.serialize(optimizer)
    assert config["module"] == "keras.optimizers"
    assert config["class_name"] == type(optimizer).__name__
    for rebuilt in (optimizers.deserialize(config), optimizers.get(config)):
        assert type(rebuilt) is type(optimizer)
        assert rebuilt.get_config() == optimizer.get_config()


def test_loss_scale_optimizer_shares_its_inner_optimizers_state():
    inner = optimizers.Adam(0.01)
    wrapper = optimizers.LossScaleOptimizer(inner)
    wrapper.learning_rate = 0.5
    assert inner.learning_rate == 0.5
    assert wrapper.inner_optimizer is inner and wrapper.beta_1 == 0.9
    with pytest.raises(ValueError, match="does not support `clipnorm`"):
        optimizers.LossScaleOptimizer(inner, clipnorm=1.0)
    with pytest.raises(ValueError, match="dynamic=False"):
        optimizers.LossScaleOptimizer(inner, dynamic=False)


def test_build_takes_variables_as_keras_does():
    opt = optimizers.Lamb()
    var = keras.Variable(np.ones((2, 2), np.float32), name="v")
    opt.build([var])
    assert opt.built and len(opt.variables) == 4  # iterations, learning rate, m, v


def test_iterations_count_updates_under_gradient_accumulation(tmp_path):
    """Keras's ``iterations`` with ``gradient_accumulation_steps`` N is steps // N (the
    updates applied); the steps themselves are what files keep and schedules read."""
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(8, 3)).astype("float32"), rng.normal(size=(8, 1)).astype("float32")
    schedule = keras.optimizers.schedules.ExponentialDecay(0.1, decay_steps=1, decay_rate=0.5)
    opt = keras.optimizers.SGD(schedule, gradient_accumulation_steps=2)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    model.compile(opt, "mse")
    for _ in range(5):
        model.train_on_batch(x, y)
    assert (opt.iterations, opt.step_count) == (2, 5)
    assert opt.learning_rate == pytest.approx(0.1 * 0.5**5)  # the schedule counts steps
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    assert (loaded.optimizer.iterations, loaded.optimizer.step_count) == (2, 5)
