"""Keras's dtype policies: ``mixed_bfloat16`` globally, per layer, a float32 head, the
normalizations' float32 statistics, against Keras 3's numbers on the same weights and
inputs (``keras_fixtures/mixed_precision.npz``, made by
``fixture_scripts/make_mixed_precision_fixtures.py``), natively and on the reference
interpreter; the policy API (``keras.DTypePolicy``, ``keras.mixed_precision``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import kcompile as keras
from tests.fixture_arrays import numbered
from tests.mixed_precision_programs import PROGRAMS

FIXTURES = np.load(Path(__file__).parent / "keras_fixtures" / "mixed_precision.npz")
# One bf16 rounding step of the largest value (2^-8 relative), a few of them where an
# f32 sum that differs in its last bits rounds the other way and the difference travels.
BF16_STEP = 2**-8


@pytest.fixture(autouse=True)
def _float32_after():
    yield
    keras.mixed_precision.set_global_policy("float32")


def _arrays(name: str, kind: str) -> list[np.ndarray]:
    return numbered(FIXTURES, name, kind)


def _build(name: str):
    try:
        model, x, labels = PROGRAMS[name](keras)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    np.testing.assert_array_equal(x, FIXTURES[f"{name}/x"])
    model.set_weights(_arrays(name, "w"))
    return model, x, labels


def _close(got, want, steps: float, what: str, floor: float = 0.0) -> None:
    scale = max(float(np.max(np.abs(want))), floor)
    np.testing.assert_allclose(got, want, rtol=0, atol=steps * BF16_STEP * scale, err_msg=what)


@pytest.mark.parametrize("name", sorted(PROGRAMS))
def test_policies_and_predictions_match_keras(name):
    model, x, _ = _build(name)
    assert [layer.dtype_policy.name for layer in model.layers] == list(FIXTURES[f"{name}/policies"])
    for backend in ("llvm", "reference"):
        model.compile("sgd", "sparse_categorical_crossentropy", backend=backend)
        got = model.predict(x, verbose=0)
        assert str(got.dtype) == str(FIXTURES[f"{name}/y_dtype"])
        _close(got.astype(np.float32), FIXTURES[f"{name}/y"], 4, f"{name} {backend}")
        assert model.predict_on_batch(x).dtype == got.dtype


@pytest.mark.parametrize("name", sorted(PROGRAMS))
def test_two_sgd_steps_match_keras(name):
    model, x, labels = _build(name)
    model.compile(keras.optimizers.SGD(0.1), "sparse_categorical_crossentropy")
    losses = [float(model.train_on_batch(x, labels)) for _ in range(2)]
    np.testing.assert_allclose(losses, FIXTURES[f"{name}/losses"], rtol=2e-2)
    # (floor: a weight whose gradient is zero but for bf16 noise, as attention's key
    # bias, which softmax ignores, moves by rounding alone in both.) A layer of policy
    # "bfloat16" keeps float32 variables in kcompile, read rounded, where Keras keeps
    # bf16 variables and updates them in bf16: its second step moves further apart.
    steps = 16 if name == "per_layer_policies" else 8
    for k, (got, want) in enumerate(zip(model.get_weights(), _arrays(name, "trained"))):
        _close(got, want, steps, f"{name} weight {k}", floor=1e-2)


def test_policy_objects_and_names():
    policy = keras.DTypePolicy("mixed_bfloat16")
    assert (policy.compute_dtype, policy.variable_dtype) == ("bfloat16", "float32")
    assert repr(policy) == '<DTypePolicy "mixed_bfloat16">'
    assert policy == keras.dtype_policies.get("mixed_bfloat16")
    assert keras.dtype_policies.deserialize(keras.dtype_policies.serialize(policy)) == policy
    assert keras.mixed_precision.Policy is keras.DTypePolicy
    with pytest.raises(ValueError, match="Cannot convert 'int8x' to a mixed precision"):
        keras.DTypePolicy("int8x")
    keras.config.set_dtype_policy("mixed_float16")
    assert keras.mixed_precision.global_policy().name == "mixed_float16"
    layer = keras.layers.Dense(3)
    assert (layer.compute_dtype, layer.variable_dtype, layer.dtype) == (
        "float16",
        "float32",
        "float32",
    )
    keras.mixed_precision.set_global_policy("float32")
    assert keras.layers.Dense(3, dtype="bfloat16").compute_dtype == "bfloat16"
    assert keras.layers.Dense(3).dtype_policy == keras.DTypePolicy("float32")
    assert keras.mixed_precision.LossScaleOptimizer is keras.optimizers.LossScaleOptimizer


def test_keras_files_carry_the_policies(tmp_path):
    model, x, _ = _build("mlp_float32_head")
    path = tmp_path / "mixed.keras"
    model.save(path)
    again = keras.saving.load_model(path)
    # (An InputLayer's config holds its input's dtype, not a policy, as in Keras.)
    assert [layer.dtype_policy.name for layer in again.layers[1:]] == [
        "mixed_bfloat16",
        "mixed_bfloat16",
        "float32",
    ]
    np.testing.assert_array_equal(again.predict(x, verbose=0), model.predict(x, verbose=0))


@pytest.mark.parametrize("dtype", ["bfloat16", "float16", "float64"])
def test_data_in_other_float_dtypes_is_converted(dtype):
    """bf16 (ml_dtypes), f16 and f64 arrays are converted to the Input's dtype, never
    reinterpreted: the same numbers as the converted float32 arrays give."""
    import ml_dtypes

    numpy_dtype = ml_dtypes.bfloat16 if dtype == "bfloat16" else np.dtype(dtype)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    model.compile(keras.optimizers.SGD(0.1), "mse")
    rng = np.random.default_rng(5)
    x = rng.normal(size=(6, 4)).astype(numpy_dtype)
    y = rng.normal(size=(6, 3)).astype(numpy_dtype)
    wide_x, wide_y = x.astype(np.float32), y.astype(np.float32)
    np.testing.assert_array_equal(model.predict(x, verbose=0), model.predict(wide_x, verbose=0))
    start = model.get_weights()
    loss = model.train_on_batch(x, y)
    model.set_weights(start)
    assert loss == model.train_on_batch(wide_x, wide_y)


def test_a_bfloat16_input_rounds_float32_data():
    i = keras.Input((3,), dtype="bfloat16")
    model = keras.Model(i, keras.layers.Dense(2, dtype="float32")(i))
    model.compile("sgd", "mse")
    x = np.array([[1 + 2**-9, 2.0, -3.0]], np.float32)
    rounded = np.array([[1.0, 2.0, -3.0]], np.float32)
    np.testing.assert_array_equal(model.predict(x, verbose=0), model.predict(rounded, verbose=0))
