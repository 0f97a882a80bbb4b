"""Keras's loss scaling: ``LossScaleOptimizer``'s dynamic scale (doubled after
``dynamic_growth_steps`` finite steps, halved and the step skipped on a non-finite
gradient), ``compile``'s wrapping under ``mixed_float16``, a fixed ``loss_scale_factor``,
and the scale's state in ``.keras`` files, against Keras 3's numbers on the same weights
and data (``keras_fixtures/loss_scaling.npz`` and ``loss_scaling.keras``, made by
``fixture_scripts/make_loss_scaling_fixtures.py``), natively and on the reference
interpreter."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pytest

import kcompile as keras
from tests.loss_scaling_programs import PROGRAMS

FIXTURES_DIR = Path(__file__).parent / "keras_fixtures"
FIXTURES = np.load(FIXTURES_DIR / "loss_scaling.npz")
# float16 layers: a float16 rounding step (2^-11) of the largest weight, a few of them
# where an f32 sum that differs in its last bits rounds the other way.
F16_STEP = 2**-11


@pytest.fixture(autouse=True)
def _float32_after():
    yield
    keras.mixed_precision.set_global_policy("float32")


def _want(name: str) -> dict[str, np.ndarray]:
    prefix = f"{name}/"
    return {k[len(prefix) :]: FIXTURES[k] for k in FIXTURES.files if k.startswith(prefix)}


@pytest.mark.parametrize("backend", ["llvm", "reference"])
@pytest.mark.parametrize("name", sorted(PROGRAMS))
def test_loss_scale_state_and_weights_match_keras(name, backend):
    _, got = PROGRAMS[name](keras, backend)
    want = _want(name)
    assert set(got) == set(want)
    # The scale's course is exact: which steps were skipped, the scale and its count.
    for key in ("class_name", "iterations", "step_counter", "dynamic_scale"):
        if key in want:
            assert got[key] == want[key], key
    np.testing.assert_array_equal(np.isfinite(got["losses"]), np.isfinite(want["losses"]))
    finite = np.isfinite(want["losses"])
    np.testing.assert_allclose(got["losses"][finite], want["losses"][finite], rtol=2e-3)
    for key in sorted(k for k in want if k.startswith("w")):
        scale = float(np.max(np.abs(want[key])))
        steps = 8 if name.startswith("mixed") else 0.05
        np.testing.assert_allclose(got[key], want[key], rtol=0, atol=steps * F16_STEP * scale)


def test_mixed_float16_compile_wraps_the_optimizer_once():
    keras.mixed_precision.set_global_policy("mixed_float16")
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    keras.mixed_precision.set_global_policy("float32")
    inner = keras.optimizers.Adam(0.01)
    model.compile(optimizer=inner, loss="mse")
    assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
    assert model.optimizer.inner_optimizer is inner
    assert model.get_compile_config()["optimizer"]["class_name"] == "Adam"  # as Keras's
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="mse", auto_scale_loss=False)
    assert type(model.optimizer).__name__ == "Adam"
    wrapped = keras.optimizers.LossScaleOptimizer(keras.optimizers.SGD())
    model.compile(optimizer=wrapped, loss="mse")
    assert model.optimizer is wrapped


def test_the_skipped_step_keeps_weights_slots_and_counts():
    """A step with an infinite loss moves nothing but the scale (halved, its count reset),
    on both backends, the same as a step never taken."""
    x = np.ones((4, 3), np.float32)
    y = np.ones((4, 2), np.float32)
    y[0, 0] = np.inf
    for backend in ("llvm", "reference"):
        model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
        opt = keras.optimizers.LossScaleOptimizer(keras.optimizers.Adam(0.1), initial_scale=64.0)
        model.compile(optimizer=opt, loss="mse", backend=backend)
        model.train_on_batch(x, np.ones((4, 2), np.float32))
        before = [w.copy() for w in model.get_weights()]
        slots = {k: v.copy() for k, v in opt.inner_optimizer.slots.items()}
        model.train_on_batch(x, y)
        for a, b in zip(model.get_weights(), before):
            np.testing.assert_array_equal(a, b)
        for k, v in opt.inner_optimizer.slots.items():
            np.testing.assert_array_equal(v, slots[k], err_msg=k)
        assert int(opt.iterations) == 1
        assert float(opt.dynamic_scale) == 32.0 and int(opt.step_counter) == 0


def test_keras_file_carries_the_scale_both_ways(tmp_path):
    """Keras's file, loaded under the mixed_float16 policy (a Sequential's config does
    not carry the model's policy, so Keras's compile_from_config wraps the optimizer only
    then), has its scale, count and inner state; kcompile writes the same groups, shapes
    and values back. Under float32 the optimizer is the bare SGD and its state is skipped
    with Keras's warning, as Keras 3.15 does."""
    with pytest.warns(UserWarning, match="Skipping variable loading for optimizer 'sgd'"):
        plain = keras.saving.load_model(FIXTURES_DIR / "loss_scaling.keras")
    assert type(plain.optimizer).__name__ == "SGD"
    keras.mixed_precision.set_global_policy("mixed_float16")
    model = keras.saving.load_model(FIXTURES_DIR / "loss_scaling.keras")
    want = _want("mixed_float16_sgd")
    opt = model.optimizer
    assert isinstance(opt, keras.optimizers.LossScaleOptimizer)
    assert float(opt.dynamic_scale) == want["dynamic_scale"]
    assert int(opt.step_counter) == want["step_counter"]
    assert int(opt.iterations) == want["iterations"]
    for got, w in zip(model.get_weights(), [want[f"w{k}"] for k in range(4)]):
        np.testing.assert_array_equal(got, w)
    path = tmp_path / "again.keras"
    model.save(path)
    ours, theirs = _optimizer_arrays(path), _optimizer_arrays(FIXTURES_DIR / "loss_scaling.keras")
    assert sorted(ours) == sorted(theirs)
    for key in theirs:
        assert (ours[key].shape, ours[key].dtype) == (theirs[key].shape, theirs[key].dtype), key
        np.testing.assert_array_equal(ours[key], theirs[key], err_msg=key)


def _optimizer_arrays(path: Path) -> dict[str, np.ndarray]:
    import io

    h5py = pytest.importorskip("h5py")
    with zipfile.ZipFile(path) as archive:
        data = archive.read("model.weights.h5")
    arrays = {}
    with h5py.File(io.BytesIO(data), "r") as f:
        f["optimizer"].visititems(
            lambda name, obj: (
                arrays.__setitem__(name, np.asarray(obj)) if isinstance(obj, h5py.Dataset) else None
            )
        )
    return arrays


def test_a_users_train_step_scales_the_loss_as_the_built_in_one():
    """Keras's default train_step written with the gradient API (``scale_loss`` inside the
    tape, traced as a user's step is) against the built-in step under mixed_float16:
    the same skipped steps, scale and weights."""

    class OwnSteps(keras.Model):
        def predict_step(self, data):  # overriding one step traces the others as a user's
            return super().predict_step(data)

    x, y = np.random.default_rng(0).normal(size=(2, 8, 4)).astype(np.float32)
    y = y[:, :2]
    runs = []
    for kind in (keras.Model, OwnSteps):
        keras.mixed_precision.set_global_policy("mixed_float16")
        keras.utils.set_random_seed(3)
        inputs = keras.Input((4,))
        hidden = keras.layers.Dense(5, activation="relu")(inputs)
        outputs = keras.layers.Dense(2, dtype="float32")(hidden)
        model = kind(inputs, outputs)  # a mixed_float16 model: compile wraps its optimizer
        keras.mixed_precision.set_global_policy("float32")
        model.compile(optimizer=keras.optimizers.SGD(0.05), loss="mse")
        losses = [float(model.train_on_batch(x, y * 40.0)) for _ in range(4)]
        runs.append((model, losses))
    (built_in, want), (own, got) = runs
    assert type(own.optimizer).__name__ == "LossScaleOptimizer"
    np.testing.assert_allclose(got, want, rtol=1e-3)
    assert float(own.optimizer.dynamic_scale) == float(built_in.optimizer.dynamic_scale)
    assert int(own.optimizer.iterations) == int(built_in.optimizer.iterations)
    assert int(own.optimizer.iterations) < 4  # the large labels made some steps overflow
    for a, b in zip(own.get_weights(), built_in.get_weights()):
        np.testing.assert_allclose(a, b, rtol=0, atol=8 * F16_STEP * float(np.max(np.abs(b))))
