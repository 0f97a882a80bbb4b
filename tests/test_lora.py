"""LoRA on Dense, EinsumDense and Embedding, float and quantized (int8, int4), against
Keras 3's numbers: ``keras_fixtures/lora.npz`` and ``lora_int8.keras``, written by
``fixture_scripts/make_lora_fixtures.py`` (Keras 3.15.1, JAX backend) from the programs of
``lora_programs``."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

import kcompile as keras
from tests.lora_programs import PROGRAMS, prepared

FIXTURES = Path(__file__).resolve().parent / "keras_fixtures"
FIX = np.load(FIXTURES / "lora.npz")
CASES = [(name, mode) for name, program in PROGRAMS.items() for mode in program(keras)[3]]


def _fixture_model(name: str, mode: str | None):
    key = f"{name}/{mode or 'float'}"
    prefix = f"{key}/float/"
    float_weights = {k[len(prefix) :]: FIX[k] for k in FIX.files if k.startswith(prefix)}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # (layers that do not quantize, as in Keras)
        model, x, names = prepared(keras, PROGRAMS[name], mode, float_weights)
    return key, model, x, names


@pytest.mark.parametrize("name,mode", CASES)
def test_lora_weights_predictions_and_training_are_kerass(name, mode):
    """The same variables (paths, trainable flags: the kernel frozen, ``a`` and ``b``
    trainable) and values as Keras after quantize + enable_lora; the same predictions
    (the quantized layers add the low-rank product to their integer one's result); one
    SGD step gives Keras's loss and weights (the frozen kernels unchanged)."""
    key, model, x, _ = _fixture_model(name, mode)
    paths = list(FIX[f"{key}/paths"])
    assert sorted(v.path for v in model.weights) == sorted(paths)
    trainable = dict(zip(paths, FIX[f"{key}/trainable"]))
    for v in model.weights:
        assert v.trainable == trainable[v.path], v.path
        np.testing.assert_allclose(v.numpy(), FIX[f"{key}/start/{v.path}"], atol=1e-6)
    np.testing.assert_allclose(model.predict(x, verbose=0), FIX[f"{key}/y"], atol=2e-6)
    model.compile(keras.optimizers.SGD(0.1), "mse")
    loss = model.train_on_batch(x, FIX[f"{key}/target"])
    np.testing.assert_allclose(loss, FIX[f"{key}/loss"], rtol=1e-6)
    for v in model.weights:
        after = FIX[f"{key}/after/{v.path}"]
        np.testing.assert_allclose(v.numpy(), after, atol=2e-6, err_msg=v.path)
        if not v.trainable:
            np.testing.assert_array_equal(v.numpy(), FIX[f"{key}/start/{v.path}"])


@pytest.mark.parametrize("name,mode", CASES)
def test_saving_merges_the_delta_into_the_kernel_as_keras_does(name, mode, tmp_path):
    """``save_own_variables`` writes what Keras's writes: the kernel with the delta added
    (quantized: dequantized, merged, requantized with new scales), no LoRA weights; a
    ``.keras`` file loads with ``a`` and ``b`` at zero and predicts as Keras's reloaded
    model does."""
    key, model, x, names = _fixture_model(name, mode)
    for layer_name in names:
        layer = model.get_layer(layer_name)
        store: dict = {}
        layer.save_own_variables(store)
        expected = sorted(k for k in FIX.files if k.startswith(f"{key}/saved/{layer_name}/"))
        assert len(store) == len(expected)
        for i, value in store.items():
            reference = FIX[f"{key}/saved/{layer_name}/{i}"]
            assert np.asarray(value).dtype == reference.dtype, (layer_name, i)
            # (a requantized scale is ~100: float32's ulp there is 1e-5)
            np.testing.assert_allclose(value, reference, rtol=1e-6, atol=1e-7)
    model.save(tmp_path / "m.keras")
    again = keras.saving.load_model(tmp_path / "m.keras")
    for layer_name in names:
        layer = again.get_layer(layer_name)
        assert layer.lora_enabled and layer.lora_rank == 2 and layer.lora_alpha == 3.0
        assert all(not np.any(v.numpy()) for v in layer.weights if "lora_" in v.path)
    np.testing.assert_allclose(again.predict(x, verbose=0), FIX[f"{key}/y_reloaded"], atol=2e-6)
    # Loading a weights file into the LoRA model keeps it LoRA, its delta zeroed.
    model.save_weights(tmp_path / "m.weights.h5")
    model.load_weights(tmp_path / "m.weights.h5")
    np.testing.assert_allclose(model.predict(x, verbose=0), FIX[f"{key}/y_reloaded"], atol=2e-6)


def test_a_keras_written_lora_file_loads_and_predicts_kerass_numbers():
    model = keras.saving.load_model(FIXTURES / "lora_int8.keras")
    d1 = model.get_layer("d1")
    assert d1.quantization_mode == "int8" and d1.lora_enabled
    assert (d1.lora_rank, d1.lora_alpha) == (2, 3.0)
    assert not d1._kernel.trainable and d1.lora_kernel_a.trainable
    x = FIX["dense_mlp/int8/x"]
    np.testing.assert_allclose(
        model.predict(x, verbose=0), FIX["dense_mlp/int8/y_reloaded"], atol=2e-6
    )


def test_lora_config_kernel_property_and_serialization_spec():
    layer = keras.layers.Dense(3, lora_rank=2)
    assert layer.get_config()["lora_rank"] == 2 and layer.get_config()["lora_alpha"] == 2
    assert "lora_rank" not in keras.layers.Dense(3).get_config()  # (as Keras: only when set)
    layer.build((None, 4))
    assert layer.lora_enabled and [v.name for v in layer.trainable_weights] == [
        "bias",
        "lora_kernel_a",
        "lora_kernel_b",
    ]
    a = np.arange(8, dtype=np.float32).reshape(4, 2) / 10
    b = np.arange(6, dtype=np.float32).reshape(2, 3) / 10
    layer.lora_kernel_a.assign(a)
    layer.lora_kernel_b.assign(b)
    np.testing.assert_allclose(layer.kernel, layer._kernel.numpy() + a @ b, rtol=1e-6)
    assert layer.variable_serialization_spec["int8"] == ["kernel", "bias", "kernel_scale"]
    emb = keras.layers.Embedding(5, 3, lora_rank=1, lora_alpha=4)
    emb.build((None, 2))
    emb.lora_embeddings_b.assign(np.ones((1, 3), np.float32))
    expected = emb._embeddings.numpy() + 4 * emb.lora_embeddings_a.numpy() @ np.ones((1, 3))
    np.testing.assert_allclose(emb.embeddings, expected, rtol=1e-6)


def test_lora_refusals_name_the_problem_as_keras_does():
    with pytest.raises(ValueError, match="isn't yet built"):
        keras.layers.Dense(3).enable_lora(2)
    layer = keras.layers.Dense(3, kernel_constraint="non_neg")
    layer.build((None, 4))
    with pytest.raises(ValueError, match="kernel_constraint"):
        layer.enable_lora(2)
    layer = keras.layers.Dense(3)
    layer.build((None, 4))
    with pytest.raises(ValueError, match="positive integer"):
        layer.enable_lora(0)
    layer.enable_lora(2)
    with pytest.raises(ValueError, match="lora is already enabled"):
        layer.enable_lora(2)


@pytest.mark.parametrize("name,mode", [("dense_mlp", "int4"), ("embedding", "int8")])
def test_lora_training_natively_equals_the_reference_interpreter(name, mode):
    """Two Adam steps of a quantized LoRA model, compiled and on the reference
    interpreter: the same predictions and weights."""
    results = []
    for backend in ("llvm", "reference"):
        key, model, x, _ = _fixture_model(name, mode)
        model.compile(keras.optimizers.Adam(0.01), "mse", backend=backend)
        model.fit(x, FIX[f"{key}/target"], epochs=2, batch_size=len(x), verbose=0)
        results.append((model.predict(x, verbose=0), model.get_weights()))
    np.testing.assert_allclose(results[0][0], results[1][0], rtol=1e-5, atol=1e-6)
    for a, b in zip(results[0][1], results[1][1]):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
