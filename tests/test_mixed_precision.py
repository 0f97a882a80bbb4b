"""Keras's dtype policies: ``mixed_bfloat16`` globally, per layer, a float32 head, the
normalizations' float32 statistics, against Keras 3's numbers on the same weights and
inputs (``keras_fixtures/mixed_precision.npz``, made by
``fixture_scripts/make_mixed_precision_fixtures.py``), natively and on the reference
interpreter; the policy API (``keras.DTypePolicy``, ``keras.mixed_precision``)."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import ml_dtypes
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
    # bias, which softmax ignores, moves by rounding alone in both.) The mixed layer's
    # biases under the bf16 one sum a batch of bf16-rounded gradients: ~10 steps apart.
    steps = 16 if name == "per_layer_policies" else 8
    for k, (got, want) in enumerate(zip(model.get_weights(), _arrays(name, "trained"))):
        _close(got.astype(np.float32), want, steps, f"{name} weight {k}", floor=1e-2)


@pytest.mark.parametrize("name", sorted(PROGRAMS))
def test_three_adam_steps_match_keras(name):
    """Adam's rule in each variable's dtype: a bf16 weight's rate, step count, betas and
    slots in bf16, every op rounded, as Keras's update_step casts them."""
    model, x, labels = _build(name)
    dtypes = [str(w.dtype) for w in model.get_weights()]
    assert dtypes == list(FIXTURES[f"{name}/weight_dtypes"])
    model.compile(keras.optimizers.Adam(0.01), "sparse_categorical_crossentropy")
    losses = [float(model.train_on_batch(x, labels)) for _ in range(3)]
    np.testing.assert_allclose(losses, FIXTURES[f"{name}/adam_losses"], rtol=2e-2)
    # Attention's key bias: softmax ignores it, its gradient is bf16 noise, and Adam moves
    # each element by ~lr a step on the noise's sign, in both: only Adam's bound holds.
    noise = {"multi_head_attention/key/bias"}
    trained = _arrays(name, "adam_trained")
    for k, (var, want) in enumerate(zip(model.weights, trained)):
        got = var.numpy()
        assert str(got.dtype) == dtypes[k]
        if var.path in noise:
            assert np.max(np.abs(got - want)) <= 2 * 3 * 0.01
            continue
        _close(got.astype(np.float32), want, 16, f"{name} weight {var.path}", floor=1e-2)
    opt = model.optimizer
    slots = [(v, s) for v in model.trainable_weights for s in ("momentum", "velocity")]
    for k, (var, slot) in enumerate(slots):
        got, want = opt.slots[opt.slot_path(var, slot)], FIXTURES[f"{name}/adam_slot{k}"]
        if str(FIXTURES[f"{name}/adam_slot_dtype{k}"]) == "bfloat16":  # held exactly
            np.testing.assert_array_equal(got, got.astype(ml_dtypes.bfloat16).astype(np.float32))
        if var.path in noise:
            continue
        if slot == "velocity":  # squares of gradients: compared on the gradients' scale
            got, want = np.sqrt(got), np.sqrt(want)
        _close(got, want, 16, f"{name} {slot} of {var.path}", floor=1e-6)


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


class _Head(keras.layers.Layer):
    """A user's layer with no ``get_config`` of its own."""

    def call(self, x):
        return keras.ops.softmax(x)


def test_a_layers_config_carries_its_policy_as_keras_writes_it():
    """The base ``get_config`` holds the policy as Keras 3.15 serializes it, so a user's
    float32 head under a mixed policy is made again float32 (``from_config``,
    ``clone_model``), not in the global policy."""
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        head = _Head(dtype="float32")
        config = head.get_config()
        assert config["dtype"] == {
            "module": "keras",
            "class_name": "DTypePolicy",
            "config": {"name": "float32"},
            "registered_name": None,
        }
        assert _Head.from_config(config).compute_dtype == "float32"
        assert _Head.from_config(_Head().get_config()).compute_dtype == "bfloat16"
        dense = keras.layers.Dense(3)
        assert keras.layers.Dense.from_config(dense.get_config()).compute_dtype == "bfloat16"
        model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3), head])
        clone = keras.models.clone_model(model)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert [layer.compute_dtype for layer in clone.layers] == ["bfloat16", "float32"]


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


def test_bfloat16_variables_in_keras_files(tmp_path):
    """A Keras-written .keras file of bf16 weights and slots (2-byte values marked
    "bfloat16") loads with the weights, slots and step count Keras trained, and kcompile
    writes such a file in the same layout."""
    pytest.importorskip("h5py")
    import h5py

    name = "bfloat16_variables"
    model = keras.saving.load_model(Path(__file__).parent / "keras_fixtures" / f"{name}.keras")
    assert [str(w.dtype) for w in model.get_weights()] == list(FIXTURES[f"{name}/weight_dtypes"])
    for k, (got, want) in enumerate(zip(model.get_weights(), _arrays(name, "adam_trained"))):
        np.testing.assert_array_equal(got.astype(np.float32), want, err_msg=f"weight {k}")
    opt = model.optimizer
    assert opt.iterations == 3
    slots = [opt.slot_path(v, s) for v in model.trainable_weights for s in ("momentum", "velocity")]
    for k, path in enumerate(slots):
        np.testing.assert_array_equal(opt.slots[path], FIXTURES[f"{name}/adam_slot{k}"])

    path = tmp_path / "again.keras"
    model.save(path)
    with zipfile.ZipFile(path) as z, h5py.File(io.BytesIO(z.read("model.weights.h5"))) as f:
        kernel, slot = f["layers/dense/vars/0"], f["optimizer/vars/2"]
        assert (kernel.dtype.itemsize, kernel.attrs["dtype"]) == (2, "bfloat16")
        assert (slot.dtype.itemsize, slot.attrs["dtype"]) == (2, "bfloat16")
        assert f["layers/dense_2/vars/0"].dtype == np.float32
    again = keras.saving.load_model(path)
    for got, want in zip(again.get_weights(), model.get_weights()):
        np.testing.assert_array_equal(got, want)


def test_narrow_variables_round_and_refuse_what_they_should():
    v = keras.Variable(np.array([1.0, 1.00390625, 3.14159], np.float32), dtype="bfloat16")
    assert v.dtype == "bfloat16" and v.numpy().dtype == ml_dtypes.bfloat16
    np.testing.assert_array_equal(v.numpy().astype(np.float32), [1.0, 1.0, 3.140625])
    v.assign(np.array([2.0078125, 0.1, -5.0], np.float32))  # a tie rounds to even
    np.testing.assert_array_equal(v.numpy().astype(np.float32), [2.0, 0.10009765625, -5.0])
    layer = keras.layers.Dense(2)
    layer.build((None, 3))
    half = layer.add_weight((2,), initializer="ones", dtype="float16", name="h")
    assert (half.dtype, layer.kernel.dtype) == ("float16", "float32")
    with pytest.raises(NotImplementedError, match="layer 'dense.*'int32'"):
        layer.add_weight((2,), dtype="int32", name="i")


def test_a_custom_train_step_differentiates_bfloat16_variables():
    """GradientTape with respect to bf16 weights (each read once per value, so the
    gradient reaches every use) matches the built-in step."""

    class Own(keras.Model):
        def train_step(self, data):
            x, y = data
            with keras.GradientTape() as tape:
                loss = self.compute_loss(x=x, y=y, y_pred=self(x, training=True))
            grads = tape.gradient(loss, self.trainable_variables)
            self.optimizer.apply(grads, self.trainable_variables)
            return {"loss": loss}

    def make(cls):
        keras.utils.set_random_seed(3)
        keras.mixed_precision.set_global_policy("bfloat16")
        try:
            i = keras.Input((4,))
            model = cls(i, keras.layers.Dense(2)(keras.layers.Dense(5, activation="tanh")(i)))
        finally:
            keras.mixed_precision.set_global_policy("float32")
        model.compile(keras.optimizers.Adam(0.05), "mse")
        return model

    rng = np.random.RandomState(0)
    x, y = rng.randn(6, 4).astype("float32"), rng.randn(6, 2).astype("float32")
    builtin, own = make(keras.Model), make(Own)
    own.set_weights(builtin.get_weights())
    for _ in range(2):
        builtin.train_on_batch(x, y)
        own.train_on_batch(x, y)
    for a, b in zip(own.get_weights(), builtin.get_weights()):
        assert a.dtype == ml_dtypes.bfloat16
        np.testing.assert_array_equal(a, b)


def test_arctan2_on_bfloat16_values():
    """arctan2 on a bf16 layer's values (its constants in the operands' dtype): native
    code equals the reference, and both the bf16 of arctan2 of the bf16 inputs (each op
    rounded, so within a few bf16 steps), through every quadrant and the axes."""

    def predictions(backend: str, data: np.ndarray) -> np.ndarray:
        keras.mixed_precision.set_global_policy("mixed_bfloat16")
        try:
            inp = keras.Input((8,))
            out = keras.layers.Lambda(lambda t: keras.ops.arctan2(t[:, :4], t[:, 4:]))(inp)
            model = keras.Model(inp, out)
        finally:
            keras.mixed_precision.set_global_policy("float32")
        model.compile(loss="mse", backend=backend)
        return model.predict(data, verbose=0)

    y = np.array([[1, -1, 1, -1], [0, 0, 2, -3], [0.5, 0, -0.25, 7]], np.float32)
    x = np.array([[1, 1, -1, -1], [1, -1, 0, 0], [3, 0, -5, 0.125]], np.float32)
    data = np.concatenate([y, x], axis=1)
    native, reference = predictions("llvm", data), predictions("reference", data)
    assert native.dtype == ml_dtypes.bfloat16
    np.testing.assert_array_equal(native.astype(np.float32), reference.astype(np.float32))
    exact = np.arctan2(y, x)
    np.testing.assert_allclose(native.astype(np.float32), exact, rtol=0.03, atol=0.01)
