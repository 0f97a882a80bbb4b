"""``model.quantize("int4")`` against real Keras 3.15.1 (fixtures written by
``fixture_scripts/make_int4_fixtures.py`` from ``quantization_int4_programs``): the same
packed bytes, scales, zero points and group indices from the same float weights, the
same variables (names, order, dtypes, trainable flags), policy names and configs,
predictions, Keras's input gradient, one SGD step, ``.keras`` files both ways, the
summary; the nibble arithmetic on every byte, native code against the reference
interpreter, and what kcompile refuses."""

from __future__ import annotations

import io
import json
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest

import kcompile as keras
from kcompile import quantizers
from kcompile.models.quantize import leaf_layers
from tests import quantization_int4_programs as programs
from tests.fixture_arrays import numbered
from tests.gradcheck import input_gradient
from tests.keras_oracle import run_in_keras

FIXTURES = Path(__file__).parent / "keras_fixtures"
FIX = np.load(FIXTURES / "quantization_int4.npz")
CONFIGS = json.loads(str(FIX["configs"]))
NAMES = list(programs.CASES)


def quantized_model(name: str):
    """The case's model with Keras's float weights, quantized as the case asks; and its
    input."""
    program, block_size = programs.CASES[name]
    model, _ = program(keras)
    model.set_weights(numbered(FIX, name, "w"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # (InputLayer, Reshape: Keras's warnings)
        programs.quantize(keras, model, block_size)
    return model, FIX[f"{name}/x"]


def _quantized_layers(model) -> list:
    return [x for x in leaf_layers(model) if x.quantization_mode]


@pytest.mark.parametrize("name", NAMES)
def test_int4_weights_match_keras(name):
    """Packed bytes, scales, zero points and g_idx bit for bit; names, order, dtypes and
    trainable flags as Keras lists them."""
    model, _ = quantized_model(name)
    want = numbered(FIX, name, "q")
    got = model.get_weights()
    assert len(got) == len(want)
    for path, g, w in zip(FIX[f"{name}/q_paths"], got, want):
        assert g.dtype == w.dtype and g.shape == w.shape, path
        np.testing.assert_array_equal(g, w, err_msg=str(path))
    names = [v.path.rsplit("/", 1)[-1] for v in model.weights]
    assert names == [str(p).rsplit("/", 1)[-1] for p in FIX[f"{name}/q_paths"]]
    assert [v.trainable for v in model.weights] == list(FIX[f"{name}/q_trainable"])


@pytest.mark.parametrize("name", NAMES)
def test_policies_and_configs_match_keras(name):
    model, _ = quantized_model(name)
    by_name = {x.name: x for x in leaf_layers(model)}
    for layer_name, policy in zip(FIX[f"{name}/layer_names"], FIX[f"{name}/policies"]):
        if str(layer_name) in by_name:  # (InputLayers are named apart in each)
            assert by_name[str(layer_name)].dtype_policy.name == policy, layer_name
    quantized = _quantized_layers(model)
    assert sorted(x.name for x in quantized) == sorted(CONFIGS[name])
    for layer in quantized:
        config = keras.saving.serialize_keras_object(layer)["config"]
        for key in ("dtype", "quantization_config"):
            assert config[key] == CONFIGS[name][layer.name][key], (layer.name, key)


def _relative_error(got: np.ndarray, want: np.ndarray) -> float:
    return float(np.abs(got - want).max() / np.abs(want).max())


@pytest.mark.parametrize("name", NAMES)
def test_predictions_match_keras(name):
    """The same dequantized kernels (exact: small integers times float32 scales, in
    Keras's order), then a float32 product: the outputs differ by the products'
    summation order only (observed at most 5.6e-7 of the largest output, on
    mlp_per_channel; 1.7e-7 or less on the others)."""
    model, x = quantized_model(name)
    got = np.asarray(model.predict(x, verbose=0), np.float32)
    assert _relative_error(got, FIX[f"{name}/y"]) < 1e-6


@pytest.mark.parametrize("name", NAMES)
def test_input_gradient_is_keras_custom_gradient(name):
    """``grad(sum(model(x) * c), x)`` through each int4 layer: Keras's custom gradient,
    the product's with the dequantized float kernel (observed within 2.1e-7 of the
    largest entry)."""
    model, x = quantized_model(name)
    dx = input_gradient(model, x, FIX[f"{name}/c"])
    assert _relative_error(dx, FIX[f"{name}/dx"]) < 1e-6


@pytest.mark.parametrize("name", NAMES)
def test_one_sgd_step_matches_keras(name):
    """Fine-tuning after quantize: the packed kernels, scales, zero points and g_idx stay
    as they are; the biases take Keras's step (gradients through the int4 layers)."""
    model, x = quantized_model(name)
    before = model.get_weights()
    model.compile(keras.optimizers.SGD(0.1), "mse")
    loss = float(model.train_on_batch(x, FIX[f"{name}/target"]))
    np.testing.assert_allclose(loss, FIX[f"{name}/loss"], rtol=1e-5)
    moved = 0
    for k, (v, b, a) in enumerate(zip(model.weights, before, model.get_weights())):
        if not v.trainable:
            np.testing.assert_array_equal(a, b, err_msg=v.path)  # frozen, as in Keras
            continue
        moved += not np.array_equal(a, b)
        want = FIX[f"{name}/t{k}"]
        np.testing.assert_allclose(a, want, atol=1e-5 * max(1.0, np.abs(want).max()))
    assert moved == sum(v.trainable for v in model.weights) > 0


def test_fit_after_quantize_leaves_the_int4_kernels_unchanged():
    model, x = quantized_model("mlp_default")
    frozen = {v.path: v.numpy() for v in model.non_trainable_weights}
    assert any(v.dtype == "int8" for v in model.non_trainable_weights)
    trainable = {v.path: v.numpy() for v in model.trainable_weights}
    model.compile(keras.optimizers.Adam(0.01), "mse")
    history = model.fit(x, np.ones((len(x), 5), np.float32), epochs=3, batch_size=2, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]
    for v in model.non_trainable_weights:
        np.testing.assert_array_equal(v.numpy(), frozen[v.path], err_msg=v.path)
    assert all(not np.array_equal(v.numpy(), trainable[v.path]) for v in model.trainable_weights)


@pytest.mark.parametrize("name", NAMES)
def test_native_matches_reference_interpreter(name):
    """The compiled predict step against the reference interpreter's: the unpacking is
    exact in both, the float products agree to roundoff."""
    model, x = quantized_model(name)
    results = {}
    for backend in ("llvm", "reference"):
        model.compile("sgd", "mse", backend=backend)
        results[backend] = np.asarray(model.predict(x, verbose=0), np.float32)
    np.testing.assert_allclose(results["llvm"], results["reference"], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("form", ["op", "primitives"])
@pytest.mark.parametrize("backend", ["llvm", "reference"])
def test_every_byte_unpacks_as_keras(backend, form):
    """``dequantize_int4`` (the op, and its form in primitive ops that a training step's
    backward is compiled from) on all 256 bytes (an odd column count: the padding nibble
    dropped), compiled and on the reference interpreter, against the numpy
    ``unpack_int4`` and against ``pack_int4``'s inverse."""
    from kcompile.ir import DType, Graph, TensorType, interpret
    from kcompile.ir.ops import int4 as int4_ops
    from kcompile.runtime import make_executable

    packed = np.arange(-128, 128, dtype=np.int8).reshape(32, 8)
    graph = Graph("unpack")
    inp = graph.add_input("packed", TensorType(DType.i8, packed.shape), "data")
    unpack = quantizers.dequantize_int4_in_graph if form == "op" else int4_ops.expanded
    graph.set_outputs([("values", unpack(inp, 15))])
    feeds = {"packed": packed}
    got = (
        interpret(graph, feeds) if backend == "reference" else make_executable(graph, "llvm")(feeds)
    )["values"]
    want = quantizers.unpack_int4(packed, 15, axis=-1)
    np.testing.assert_array_equal(got, want.astype(np.float32))
    repacked, shape, length = quantizers.pack_int4(want, axis=-1)
    assert shape == (32, 8) and length == 15
    np.testing.assert_array_equal(repacked[:, :-1], packed[:, :-1])
    assert set(np.unique(want)) == set(range(-8, 8))


def test_kernel_property_is_the_unpacked_values():
    """Keras's ``kernel`` of an int4 layer: the int8 values unpacked, in the float
    kernel's shape; ``_kernel`` the packed variable."""
    model, _ = quantized_model("einsum_block_4")
    proj = model.get_layer("proj")
    assert proj._kernel.shape == (6, 3) and proj.kernel.shape == (6, 2, 3)
    flat = quantizers.unpack_int4(proj._kernel.numpy(), 6, axis=-1)
    np.testing.assert_array_equal(proj.kernel, flat.reshape(6, 2, 3))
    model, _ = quantized_model("mlp_per_channel")
    d1 = model.get_layer("d1")
    assert d1._kernel.shape == (130, 4) and d1.kernel.shape == (130, 7)
    assert d1.kernel.dtype == np.int8 and np.abs(d1.kernel).max() <= 8


def test_keras_file_loads_with_the_same_predictions():
    model = keras.saving.load_model(FIXTURES / "quantization_int4.keras")
    d1 = model.get_layer("d1")
    assert d1.dtype_policy.name == "int4/128_from_float32" and d1.quantization_mode == "int4"
    want = numbered(FIX, "mlp_default", "q")
    for g, w in zip(model.get_weights(), want):
        np.testing.assert_array_equal(g, w)
    got = np.asarray(model.predict(FIX["mlp_default/x"], verbose=0))
    assert _relative_error(got, FIX["mlp_default/y"]) < 1e-6


@pytest.mark.parametrize("name", ["mlp_default", "einsum_per_channel"])
def test_kcompile_file_has_keras_layout_and_loads_back(name, tmp_path):
    import h5py

    model, x = quantized_model(name)
    path = tmp_path / "q.keras"
    model.save(path)
    layer = _quantized_layers(model)[0]
    with zipfile.ZipFile(path) as z:
        stored = h5py.File(io.BytesIO(z.read("model.weights.h5")))
        group = next(g for k, g in stored["layers"].items() if k.startswith(("dense", "einsum")))
        arrays = [group["vars"][str(i)][()] for i in range(len(group["vars"]))]
    # Keras's variable_serialization_spec: kernel, bias, kernel_scale, kernel_zero, g_idx
    order = [layer._kernel, layer.bias, layer.kernel_scale]
    order += [getattr(layer, "kernel_zero", None), getattr(layer, "g_idx", None)]
    order = [v for v in order if v is not None]
    assert len(arrays) == len(order)
    for a, v in zip(arrays, order):
        assert a.dtype == v.numpy().dtype, v.path
        np.testing.assert_array_equal(a, v.numpy(), err_msg=v.path)
    again = keras.saving.load_model(path)
    np.testing.assert_array_equal(again.predict(x, verbose=0), model.predict(x, verbose=0))


@pytest.mark.parametrize("name", ["mlp_default", "einsum_per_channel", "dense_3d_block_4"])
def test_kcompile_file_loads_in_keras(name, tmp_path):
    """Needs Keras itself (its venv): the file kcompile wrote, loaded by Keras 3, gives
    Keras's policy, weights and predictions."""
    model, x = quantized_model(name)
    path = tmp_path / "q.keras"
    model.save(path)
    np.save(tmp_path / "x.npy", x)
    script = (
        "import numpy as np, keras;"
        f"m = keras.saving.load_model(r'{path}');"
        "print(sorted({x.dtype_policy.name for x in m.layers if x.quantization_mode}));"
        f"np.savez(r'{tmp_path / 'out.npz'}', *m.get_weights(),"
        f" y=m.predict(np.load(r'{tmp_path / 'x.npy'}'), verbose=0))"
    )
    result = run_in_keras(script, tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    policies = sorted({x.dtype_policy.name for x in _quantized_layers(model)})
    assert str(policies) in result.stdout
    out = np.load(tmp_path / "out.npz")
    for k, w in enumerate(model.get_weights()):
        np.testing.assert_array_equal(out[f"arr_{k}"], w)
    assert _relative_error(out["y"], FIX[f"{name}/y"]) < 1e-6


def test_summary_counts_int4_bytes_as_keras():
    model, _ = quantized_model("mlp_default")
    lines: list[str] = []
    model.summary(print_fn=lambda line, **_: lines.extend(line.splitlines()))
    assert [line for line in lines if "params:" in line] == list(FIX["mlp_default/summary_footer"])
    by_name = {x.name: x for x in leaf_layers(model)}
    names, counts = FIX["mlp_default/layer_names"], FIX["mlp_default/count_params"]
    for name, count in zip(names[1:], counts[1:]):
        assert by_name[str(name)].count_params() == count


def test_quantized_layer_from_its_config():
    model, x = quantized_model("dense_3d_block_4")
    again = keras.Sequential.from_config(model.get_config())
    again.set_weights(model.get_weights())
    assert [v.shape for v in again.weights] == [v.shape for v in model.weights]
    np.testing.assert_array_equal(again.predict(x, verbose=0), model.predict(x, verbose=0))


def test_layer_quantize_takes_keras_default_block_size():
    layer = keras.layers.Dense(3, name="lone")
    layer.build((None, 300))
    layer.quantize("int4")
    assert layer.dtype_policy.name == "int4/128_from_float32"
    assert layer.quantization_config.block_size == 128
    assert layer.kernel_scale.shape == (3, 3) and layer._kernel.shape == (300, 2)
    with pytest.raises(ValueError, match="is already quantized with dtype_policy='int4/128"):
        layer.quantize("int4")


def test_embedding_int4_is_refused_not_left_float():
    inp = keras.Input((3,), dtype="int32")
    h = keras.layers.Embedding(10, 4, name="emb")(inp)
    out = keras.layers.Dense(2, name="head")(h)
    model = keras.Model(inp, out)
    with pytest.raises(NotImplementedError, match="Embedding 'emb'.*Dense and EinsumDense only"):
        model.quantize("int4")
    assert all(x.quantization_mode is None for x in leaf_layers(model))


def test_int4_configs_kcompile_does_not_compute_are_refused():
    layer = keras.layers.Dense(3, name="custom")
    layer.build((None, 4))
    quantizer = keras.quantizers.AbsMaxQuantizer(value_range=(-8, 7))
    config = keras.quantizers.Int4QuantizationConfig(weight_quantizer=quantizer, block_size=-1)
    with pytest.raises(NotImplementedError, match="Dense 'custom'.*quantizers of its own"):
        layer.quantize(config=config)
    assert layer.quantization_mode is None and layer.kernel.dtype == "float32"


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"block_size": 0}, "block_size must be None, -1, or a positive integer"),
        (
            {"block_size": 64, "activation_quantizer": quantizers.AbsMaxQuantizer()},
            "sub-channel quantization .block_size > 0. does not support custom quantizers",
        ),
        (
            {"block_size": -1, "weight_quantizer": quantizers.AbsMaxQuantizer()},
            r"requires a weight_quantizer with value_range=\(-8, 7\)",
        ),
    ],
)
def test_int4_config_errors_are_keras(kwargs, message):
    with pytest.raises(ValueError, match=message):
        keras.quantizers.Int4QuantizationConfig(**kwargs)


def test_float8_gptq_awq_stay_refused():
    model, _ = programs.dense_mlp(keras)
    for mode, word in (("float8", "amax"), ("gptq", "calibration"), ("awq", "calibration")):
        with pytest.raises(NotImplementedError, match=word):
            model.quantize(mode)
    assert all(x.quantization_mode is None for x in leaf_layers(model))
