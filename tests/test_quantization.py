"""``model.quantize("int8")`` against real Keras 3.15.1 (fixtures written by
``fixture_scripts/make_quantization_fixtures.py`` from ``quantization_programs``): the
same int8 kernels and scales from the same float weights, the same variables (names,
order, dtypes, trainable flags) and policy names, predictions within one int8 rounding
step, Keras's input gradient, one SGD step, ``.keras`` files both ways, and the modes and
layers kcompile refuses. Native code is checked against the reference interpreter."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest

import kcompile as keras
from kcompile import quantizers
from kcompile.models.quantize import leaf_layers
from tests import quantization_programs as programs
from tests.fixture_arrays import numbered
from tests.gradcheck import input_gradient
from tests.keras_oracle import run_in_keras

FIXTURES = Path(__file__).parent / "keras_fixtures"
FIX = np.load(FIXTURES / "quantization.npz")
NAMES = list(programs.PROGRAMS)
BF16_STEP = 2.0**-8


def quantized_model(name: str):
    """The program's model with Keras's float weights, quantized; and its input."""
    model, _ = programs.PROGRAMS[name](keras)
    model.set_weights(numbered(FIX, name, "w"))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model.quantize("int8")
    model._quantize_warnings = sorted({str(w.message) for w in caught})
    return model, FIX[f"{name}/x"]


def int8_step(model, x) -> np.ndarray:
    """The size of one int8 rounding step of each output, an upper bound: the output's
    magnitude over 127 (a row's abs-max quantization moves an input by at most half a
    step of its row; the difference one flipped rounding makes is one step)."""
    return np.abs(x).max() / 127.0


@pytest.mark.parametrize("name", NAMES)
def test_quantized_weights_match_keras(name):
    model, _ = quantized_model(name)
    want = numbered(FIX, name, "q")
    got = model.get_weights()
    assert len(got) == len(want)
    for path, g, w in zip(FIX[f"{name}/q_paths"], got, want):
        assert g.dtype == w.dtype, path
        np.testing.assert_array_equal(g, w, err_msg=str(path))
    names = [v.path.rsplit("/", 1)[-1] for v in model.weights]
    assert names == [str(p).rsplit("/", 1)[-1] for p in FIX[f"{name}/q_paths"]]
    assert [v.trainable for v in model.weights] == list(FIX[f"{name}/q_trainable"])


@pytest.mark.parametrize("name", NAMES)
def test_policies_and_warnings_match_keras(name):
    model, _ = quantized_model(name)
    layers = leaf_layers(model)
    keras_names = list(FIX[f"{name}/layer_names"])
    by_name = {x.name: x for x in layers}
    for layer_name, policy in zip(keras_names, FIX[f"{name}/policies"]):
        if layer_name in by_name:  # (InputLayers are named apart in each)
            assert by_name[layer_name].dtype_policy.name == policy, layer_name
    quantized = sorted(p for p in FIX[f"{name}/policies"] if p.startswith("int8"))
    assert sorted(x.dtype_policy.name for x in layers if x.quantization_mode) == quantized
    assert model._quantize_warnings == list(FIX[f"{name}/warnings"])


@pytest.mark.parametrize("name", NAMES)
def test_predictions_match_keras(name):
    model, x = quantized_model(name)
    want = FIX[f"{name}/y"]
    got = np.asarray(model.predict(x, verbose=0), np.float32)
    # float32 models: every product and division is Keras's, in Keras's order: no
    # rounding of the inputs falls differently, so the outputs agree to roundoff.
    # bfloat16: XLA keeps some of the chain in f32 where kcompile rounds each op (the
    # mixed-precision fixtures' tolerance): within one int8 step.
    # bfloat16: the same, rounded to bf16 per op as XLA's CPU rounds (bit for bit on
    # these inputs); allowed one bf16 step for the native engines' summation order.
    # Either is far inside the "one int8 rounding step" (``int8_step``).
    if name == "mixed_bfloat16":
        np.testing.assert_allclose(got, want, atol=BF16_STEP * np.abs(want).max(), rtol=0)
    else:
        np.testing.assert_allclose(got, want, rtol=2e-6, atol=1e-6)
    assert np.abs(got - want).max() < int8_step(model, want)


@pytest.mark.parametrize("name", [n for n in NAMES if f"{n}/dx" in FIX.files])
def test_input_gradient_is_keras_custom_gradient(name):
    """``grad(sum(model(x) * c), x)``: through each quantized layer, the gradient of
    the float product with the dequantized kernel, as Keras's custom gradient."""
    model, x = quantized_model(name)
    dx = input_gradient(model, x, FIX[f"{name}/c"])
    want = FIX[f"{name}/dx"]
    # (observed: within 2e-7 of the largest entry in float32, bit for bit in bf16)
    tol = BF16_STEP if name == "mixed_bfloat16" else 1e-6
    np.testing.assert_allclose(dx, want, atol=tol * np.abs(want).max(), rtol=0)


@pytest.mark.parametrize("name", NAMES)
def test_one_sgd_step_matches_keras(name):
    """Fine-tuning after quantize: the int8 kernels and scales stay as they are; the
    other weights take Keras's step (gradients through the quantized layers)."""
    model, x = quantized_model(name)
    before = model.get_weights()
    model.compile(keras.optimizers.SGD(0.1), "mse")
    loss = float(model.train_on_batch(x, FIX[f"{name}/target"]))
    tol = 2e-2 if name == "mixed_bfloat16" else 1e-5
    np.testing.assert_allclose(loss, FIX[f"{name}/loss"], rtol=tol)
    moved = 0
    for v, b, a, w in zip(model.weights, before, model.get_weights(), numbered(FIX, name, "t")):
        if _quantized_variable(v):
            np.testing.assert_array_equal(a, b, err_msg=v.path)  # frozen, as in Keras
        elif v.trainable:
            moved += not np.array_equal(a, b)
        np.testing.assert_allclose(a, w, atol=tol * max(1.0, np.abs(w).max()), err_msg=v.path)
    assert moved == sum(v.trainable for v in model.weights) > 0


def _quantized_variable(v) -> bool:
    return v.dtype == "int8" or v.path.endswith("_scale")


def test_fit_after_quantize_trains_the_float_layers_only():
    model, x = quantized_model("functional")
    frozen = {v.path: v.numpy() for v in model.weights if v.dtype == "int8"}
    assert frozen
    trainable = {v.path: v.numpy() for v in model.trainable_weights}
    model.compile(keras.optimizers.Adam(0.01), "mse")
    y = np.ones((len(x), 3), np.float32)
    history = model.fit(x, y, epochs=3, batch_size=4, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]
    for v in model.weights:
        if v.path in frozen:
            np.testing.assert_array_equal(v.numpy(), frozen[v.path])
    assert all(not np.array_equal(v.numpy(), trainable[v.path]) for v in model.trainable_weights)


@pytest.mark.parametrize("name", NAMES)
def test_native_matches_reference_interpreter(name):
    """The compiled predict step against the reference interpreter's, bit for bit in
    the int8 products (integers) and to roundoff in the float epilogues."""
    model, x = quantized_model(name)
    results = {}
    for backend in ("llvm", "reference"):
        model.compile("sgd", "mse", backend=backend)
        results[backend] = np.asarray(model.predict(x, verbose=0), np.float32)
    np.testing.assert_allclose(results["llvm"], results["reference"], rtol=1e-5, atol=1e-6)


def test_keras_file_loads_with_the_same_predictions():
    model = keras.saving.load_model(FIXTURES / "quantization_functional.keras")
    d1 = model.get_layer("d1")
    assert d1.dtype_policy.name == "int8_from_float32" and d1.quantization_mode == "int8"
    assert d1.kernel.dtype == "int8"
    want = FIX["functional/y"]
    got = model.predict(FIX["functional/x"], verbose=0)
    np.testing.assert_allclose(got, want, rtol=2e-6, atol=1e-6)
    np.testing.assert_array_equal(d1.kernel.numpy(), numbered(FIX, "functional", "q")[1])


def test_kcompile_file_has_keras_layout_and_config(tmp_path):
    import io
    import zipfile

    import h5py

    model, x = quantized_model("functional")
    path = tmp_path / "q.keras"
    model.save(path)
    with zipfile.ZipFile(path) as z:
        config = json.loads(z.read("config.json"))
        weights = h5py.File(io.BytesIO(z.read("model.weights.h5")))
        dense = weights["layers/dense/vars"]
        assert [dense[str(i)].dtype for i in range(3)] == [np.int8, np.float32, np.float32]
        assert dense["0"].shape == (6, 5) and dense["2"].shape == (5,)
    d1 = next(e for e in config["config"]["layers"] if e["config"]["name"] == "d1")
    keras_d1 = json.loads(str(FIX["configs"]))["d1"]
    for key in ("dtype", "quantization_config"):
        assert d1["config"][key] == keras_d1[key]
    again = keras.saving.load_model(path)
    np.testing.assert_array_equal(again.predict(x, verbose=0), model.predict(x, verbose=0))


def test_kcompile_file_loads_in_keras(tmp_path):
    """Needs Keras itself (its venv): the file kcompile wrote, loaded by Keras 3."""
    model, x = quantized_model("functional")
    path = tmp_path / "q.keras"
    model.save(path)
    np.save(tmp_path / "x.npy", x)
    script = (
        "import numpy as np, keras, sys;"
        f"m = keras.saving.load_model(r'{path}');"
        "d = m.get_layer('d1');"
        "print(d.dtype_policy.name, d.kernel.dtype);"
        f"np.save(r'{tmp_path / 'y.npy'}', m.predict(np.load(r'{tmp_path / 'x.npy'}'), verbose=0))"
    )
    result = run_in_keras(script, tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "int8_from_float32 int8" in result.stdout
    np.testing.assert_allclose(
        np.load(tmp_path / "y.npy"), model.predict(x, verbose=0), rtol=2e-6, atol=1e-6
    )


def test_a_quantized_group_query_attention_weights_file_is_kerass(tmp_path):
    """The weights of a quantized GroupQueryAttention in Keras's layout: under Keras's
    class name (``grouped_query_attention``), each projection under its private attribute
    (``_query_dense``...), its variables in Keras's order (int8 kernel, bias, scale); a
    quantized model loads them, kcompile's and Keras's alike, and predicts the same. (A
    weights file, as neither reloads a quantized attention from a ``.keras`` file: its
    config does not say its projections are quantized.)"""
    import h5py

    model, x = quantized_model("grouped_query_attention")
    path = tmp_path / "q.weights.h5"
    model.save_weights(path)
    with h5py.File(path) as weights:
        gqa = weights["layers/grouped_query_attention"]
        projections = ["_query_dense", "_key_dense", "_value_dense", "_output_dense"]
        assert sorted(gqa) == sorted(["vars", *projections, "_softmax", "_dropout_layer"])
        query = gqa["_query_dense/vars"]
        assert query.attrs["name"] == "query"
        assert [query[str(i)].dtype for i in range(3)] == [np.int8, np.float32, np.float32]
        assert [query[str(i)].shape for i in range(3)] == [(8, 4, 4), (4, 4), (1, 1, 4, 4)]
        assert gqa["_output_dense/vars/2"].shape == (1, 1, 8)
    want = model.predict(x, verbose=0)
    again, _ = programs.grouped_query_attention(keras)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # (the Softmax's and the others', as above)
        again.quantize("int8")
    again.load_weights(path)
    np.testing.assert_array_equal(again.predict(x, verbose=0), want)
    np.save(tmp_path / "x.npy", x)
    script = (
        "import sys, numpy as np, keras;"
        f"sys.path.insert(0, r'{Path(__file__).parent}');"
        "from quantization_programs import grouped_query_attention;"
        "m, _ = grouped_query_attention(keras);"
        "m.quantize('int8');"
        f"m.load_weights(r'{path}');"
        "d = m.get_layer('gqa')._query_dense;"
        "print(d.dtype_policy.name, d.kernel.dtype);"
        f"np.save(r'{tmp_path / 'y.npy'}', m.predict(np.load(r'{tmp_path / 'x.npy'}'), verbose=0))"
    )
    result = run_in_keras(script, tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "int8_from_float32 int8" in result.stdout
    np.testing.assert_allclose(np.load(tmp_path / "y.npy"), want, rtol=2e-6, atol=1e-6)


def test_summary_counts_int8_bytes_as_keras():
    model, _ = quantized_model("functional")
    text = _summary(model)
    footer = [line for line in text if "params:" in line]
    assert footer == list(FIX["functional/summary_footer"])
    by_name = {x.name: x for x in leaf_layers(model)}
    for name, count in zip(FIX["functional/layer_names"][1:], FIX["functional/count_params"][1:]):
        assert by_name[str(name)].count_params() == count


def _summary(model) -> list[str]:
    lines: list[str] = []
    model.summary(print_fn=lambda line, **_: lines.extend(line.splitlines()))
    return lines


@pytest.mark.parametrize(
    "mode, error, words",
    [
        ("float8", NotImplementedError, ["'float8'", "amax"]),
        ("gptq", NotImplementedError, ["'gptq'", "calibration"]),
        ("awq", NotImplementedError, ["'awq'", "calibration"]),
        ("int2", ValueError, ["Invalid quantization mode", "mode=int2"]),
        (None, ValueError, ["You must provide either `mode` or `config`"]),
    ],
)
def test_modes_kcompile_does_not_compile_are_refused(mode, error, words):
    model, _ = programs.functional(keras)
    before = [v.numpy() for v in model.weights]
    for target in (model, model.get_layer("d1")):
        with pytest.raises(error) as info:
            target.quantize(mode)
        assert all(w in str(info.value) for w in words), str(info.value)
    assert all(v.dtype == "float32" for v in model.weights)  # nothing half quantized
    for v, b in zip(model.weights, before):
        np.testing.assert_array_equal(v.numpy(), b)


def test_keras_errors_for_unbuilt_twice_and_float16():
    with pytest.raises(ValueError, match="Cannot quantize a layer that isn't yet built"):
        keras.layers.Dense(3, name="lonely").quantize("int8")
    layer = keras.layers.Dense(3)
    layer.build((None, 4))
    layer.quantize("int8")
    with pytest.raises(ValueError, match="is already quantized with dtype_policy='int8_from"):
        layer.quantize("int8")
    half = keras.layers.Dense(3, dtype="float16")
    half.build((None, 4))
    with pytest.raises(ValueError, match="doesn't work well with compute_dtype='float16'"):
        half.quantize("int8")


def test_layers_keras_does_not_quantize_stay_float_with_its_warning():
    class MyDense(keras.layers.Dense):
        pass

    inp = keras.Input((4,))
    out = keras.layers.Dense(2, name="plain")(MyDense(3, name="mine")(inp))
    model = keras.Model(inp, out)
    with pytest.warns(UserWarning, match="Layer MyDense does not have a `quantize` method"):
        model.quantize("int8")
    assert model.get_layer("mine").quantization_mode is None
    assert model.get_layer("mine").kernel.dtype == "float32"
    assert model.get_layer("plain").quantization_mode == "int8"


def test_filters_pick_the_layers():
    model, x = programs.functional(keras)
    model.quantize("int8", filters="d2")
    assert model.get_layer("d1").quantization_mode is None
    assert model.get_layer("d2").dtype_policy.name == "int8_from_float32"
    model.predict(x, verbose=0)


def test_reversible_embedding_is_refused_not_left_float():
    inp = keras.Input((3,), dtype="int32")
    out = keras.layers.ReversibleEmbedding(10, 4, name="rev")(inp)
    model = keras.Model(inp, out)
    with pytest.raises(NotImplementedError, match="ReversibleEmbedding 'rev'"):
        model.quantize("int8")


def test_setting_a_quantized_policy_quantizes_a_built_layer():
    layer = keras.layers.Embedding(5, 3)
    layer.build(None)
    table = layer.embeddings.numpy()
    layer.dtype_policy = "int8_from_float32"
    assert layer.quantization_mode == "int8" and layer.embeddings.dtype == "int8"
    values, scale = quantizers.abs_max_quantize(table, axis=-1)
    np.testing.assert_array_equal(layer.embeddings.numpy(), values)
    np.testing.assert_array_equal(layer.embeddings_scale.numpy(), scale[:, 0])


@pytest.mark.parametrize(
    "name, cls, config",
    [
        ("int8_from_float32", "QuantizedDTypePolicy", {"mode": "int8", "source_name": "float32"}),
        (
            "int8_from_mixed_bfloat16",
            "QuantizedDTypePolicy",
            {"mode": "int8", "source_name": "mixed_bfloat16"},
        ),
        ("int4/-1_from_float32", "Int4DTypePolicy", {"mode": "int4/-1", "source_name": "float32"}),
        (
            "float8_from_float32",
            "QuantizedFloat8DTypePolicy",
            {"mode": "float8", "source_name": "float32", "amax_history_length": 1024},
        ),
    ],
)
def test_quantized_policies_by_name_and_serialized(name, cls, config):
    policy = keras.dtype_policies.get(name)
    assert type(policy).__name__ == cls and policy.name == name
    serialized = keras.dtype_policies.serialize(policy)
    assert serialized == {
        "module": "keras.dtype_policies",
        "class_name": cls,
        "config": config,
        "registered_name": None,
    }
    assert keras.dtype_policies.deserialize(serialized) == policy
    assert keras.dtype_policies.get(serialized) == policy
    assert policy.quantization_mode == name.split("/")[0].split("_")[0]


def test_gptq_policy_names_are_refused():
    with pytest.raises(NotImplementedError, match="gptq quantization is not supported"):
        keras.dtype_policies.get("gptq/4/128_from_float32")


def test_quantized_layer_from_its_config():
    model, x = quantized_model("sequential_3d")
    again = keras.Sequential.from_config(model.get_config())
    again.set_weights(model.get_weights())
    assert [v.dtype for v in again.weights] == [v.dtype for v in model.weights]
    np.testing.assert_array_equal(again.predict(x, verbose=0), model.predict(x, verbose=0))


def test_quantized_model_exports_as_an_artifact(tmp_path):
    """``kcompile build``'s path: the int8 weights travel in the artifact as bytes and
    the loaded artifact predicts what the model does."""
    model, x = quantized_model("embedding")
    model.compile("sgd", "mse")
    want = model.predict(x, verbose=0)
    model.export(tmp_path / "q.kc", probe=x)
    loaded = keras.load(tmp_path / "q.kc")
    np.testing.assert_array_equal(np.asarray(loaded.predict(x)), want)


def test_pooling_layers_hold_no_layers_quantize_would_visit():
    """1-D and 3-D pooling run on a 2-D pooling they hold privately: leaf layers, as in
    Keras (model.quantize had visited the inner one, never built, and raised; found by
    the fuzzer, seed 6)."""
    inputs = keras.Input((8, 3))
    x = keras.layers.MaxPooling1D()(inputs)
    x = keras.layers.Dense(4)(keras.layers.Flatten()(x))
    volume = keras.Input((4, 4, 4, 2))
    y = keras.layers.Flatten()(keras.layers.AveragePooling3D()(volume))
    model = keras.Model([inputs, volume], [x, y])
    names = [type(layer).__name__ for layer in leaf_layers(model)]
    assert names.count("MaxPooling2D") == names.count("AveragePooling2D") == 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.quantize("int8")
    (dense,) = [layer for layer in model.layers if isinstance(layer, keras.layers.Dense)]
    assert dense.dtype_policy.name == "int8_from_float32"


def test_a_custom_int8_config_is_refused_through_the_model():
    """Quantizers of one's own are refused by model.quantize (not turned into Keras's
    'does not have a quantize method' warning, which would leave the Dense float)."""
    inputs = keras.Input((6,))
    model = keras.Model(inputs, keras.layers.Dense(3)(inputs))
    config = quantizers.Int8QuantizationConfig(weight_quantizer=quantizers.AbsMaxQuantizer(0))
    with pytest.raises(NotImplementedError, match="quantizers of its own"):
        model.quantize("int8", config=config)
    assert model.layers[-1].dtype_policy.name == "float32"
