"""``STFTSpectrogram`` and ``MelSpectrogram``: Keras's numbers, configs and output shapes
(eagerly, and compiled in a model against the reference interpreter), the STFT kernels
trained as Keras trains them, and a saved model loaded again. Fixture:
``tests/fixture_scripts/make_audio_layer_fixtures.py``."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

import kcompile as keras
from kcompile import layers

HERE = Path(__file__).parent
FIXTURE = np.load(HERE / "keras_fixtures" / "audio_layers.npz")
CONFIGS = json.loads(str(FIXTURE["configs"]))
OUTPUT_SHAPES = json.loads(str(FIXTURE["output_shapes"]))
_spec = importlib.util.spec_from_file_location(
    "make_audio_layer_fixtures", HERE / "fixture_scripts" / "make_audio_layer_fixtures.py"
)
cases = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(cases)

CASES = {
    **{k: ("STFTSpectrogram", *v) for k, v in cases.STFT_CASES.items()},
    **{k: ("MelSpectrogram", *v) for k, v in cases.MEL_CASES.items()},
}
BATCHED = [k for k, (_, _, shape) in CASES.items() if len(shape) > 1]
ATOL = 1e-4  # the DFT as a product against Keras's FFT, in float32


def _config(layer) -> dict:
    """``get_config`` as JSON gives it back, without the layer's name (numbered in the
    order layers were made)."""
    config = json.loads(json.dumps(layer.get_config()))
    config.pop("name")
    return config


def _keras_config(name: str) -> dict:
    return {k: v for k, v in CONFIGS[name].items() if k != "name"}


def _layer(name: str):
    cls, args, _ = CASES[name]
    return getattr(layers, cls)(**args)


def _difference(name: str, got: np.ndarray) -> np.ndarray:
    """|got - Keras's|; phases compared on the circle (π and -π are one angle: the
    Nyquist bin's imaginary part is a rounding error whose sign is arbitrary)."""
    diff = got - FIXTURE[f"{name}/y"]
    if name == "angle":
        diff = np.angle(np.exp(1j * diff.astype(np.float64)))
    return np.abs(diff)


def test_the_fixture_is_keras_3_15s():
    assert str(FIXTURE["keras_version"]) == "3.15.1"
    assert str(FIXTURE["script"]) == cases.SCRIPT


@pytest.mark.parametrize("name", sorted(CASES))
def test_eager_calls_give_keras_numbers_shapes_and_configs(name):
    layer = _layer(name)
    got = np.asarray(layer(FIXTURE[f"{name}/x"]))
    assert got.shape == FIXTURE[f"{name}/y"].shape
    assert _difference(name, got).max() < ATOL
    assert _config(layer) == _keras_config(name)
    shape = CASES[name][2]
    shapes = [shape, cases._unknown(shape, CASES[name][1])]
    assert [list(layer.compute_output_shape(s)) for s in shapes] == OUTPUT_SHAPES[name]


@pytest.mark.parametrize("name", sorted(cases.CONFIG_ONLY))
def test_default_configs_are_keras_and_rebuild_the_layer(name):
    cls, args = cases.CONFIG_ONLY[name]
    layer = getattr(layers, cls)(**args)
    assert _config(layer) == _keras_config(name)
    again = type(layer).from_config(layer.get_config())
    assert again.get_config() == layer.get_config()


def _all_cases_model(backend: str):
    """One model holding every batched case, each on its own input."""
    inputs = [keras.Input(CASES[k][2][1:], name=k) for k in BATCHED]
    outputs = [_layer(k)(x) for k, x in zip(BATCHED, inputs)]
    model = keras.Model(inputs, outputs)
    model.compile(loss="mse", backend=backend)
    return model


def test_compiled_model_gives_keras_numbers_and_the_reference_interpreters():
    x = [FIXTURE[f"{k}/x"] for k in BATCHED]
    native = _all_cases_model("llvm").predict(x, verbose=0)
    reference = _all_cases_model("reference").predict(x, verbose=0)
    for name, got, want in zip(BATCHED, native, reference):
        assert _difference(name, got).max() < ATOL, name
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=2e-5, err_msg=name)


def _train_model(backend: str):
    inputs = keras.Input(cases.TRAIN_SHAPE[1:])
    hidden = layers.STFTSpectrogram(**cases.TRAIN_STFT)(inputs)
    model = keras.Model(inputs, layers.Dense(1)(layers.Flatten()(hidden)))
    model.set_weights([FIXTURE[f"train/w{i}"] for i in range(4)])
    model.compile(optimizer=keras.optimizers.SGD(0.01), loss="mse", backend=backend)
    return model


def test_stft_kernels_train_as_keras_trains_them():
    x, y = FIXTURE["train/x"], FIXTURE["train/y"]
    native, reference = _train_model("llvm"), _train_model("reference")
    assert [w.name for w in native.trainable_weights[:2]] == ["real_kernel", "imag_kernel"]
    loss = native.train_on_batch(x, y)
    assert loss == pytest.approx(float(FIXTURE["train/loss"]), rel=1e-4)
    assert reference.train_on_batch(x, y) == pytest.approx(loss, rel=1e-5)
    for i, (a, b) in enumerate(zip(native.get_weights(), reference.get_weights())):
        np.testing.assert_allclose(a, FIXTURE[f"train/after{i}"], rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    start = FIXTURE["train/w0"]
    assert np.abs(native.get_weights()[0] - start).max() > 1e-6  # the kernel moved


def test_a_frozen_stft_layer_has_no_trainable_weights():
    layer = layers.STFTSpectrogram(mode="real", frame_length=8, trainable=False)
    layer.build((None, 32, 1))
    assert [w.name for w in layer.non_trainable_weights] == ["real_kernel"]
    assert layer.trainable_weights == []


def test_a_saved_model_loads_with_its_layers_and_numbers(tmp_path):
    inputs = keras.Input((400,))
    mel = layers.MelSpectrogram(**cases.MEL_CASES["batched"][0])(inputs)
    stft = layers.STFTSpectrogram(mode="psd", frame_length=16)(layers.Reshape((400, 1))(inputs))
    model = keras.Model(inputs, [mel, stft])
    x = FIXTURE["batched/x"]
    before = model.predict(x, verbose=0)
    model.save(tmp_path / "audio.keras")
    loaded = keras.models.load_model(tmp_path / "audio.keras")
    kinds = {type(layer).__name__ for layer in loaded.layers}
    assert {"MelSpectrogram", "STFTSpectrogram"} <= kinds
    for a, b in zip(before, loaded.predict(x, verbose=0)):
        np.testing.assert_array_equal(a, b)
    assert _difference("batched", before[0]).max() < ATOL


def test_a_model_keras_saved_loads_and_predicts_keras_numbers():
    model = keras.models.load_model(HERE / "keras_fixtures" / "audio_layers.keras")
    kinds = [type(layer).__name__ for layer in model.layers]
    assert "MelSpectrogram" in kinds and "STFTSpectrogram" in kinds
    got = model.predict(FIXTURE["batched/x"], verbose=0)
    np.testing.assert_allclose(got, FIXTURE["saved/y"], rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize(
    "make, error, match",
    [
        (lambda: layers.STFTSpectrogram(mode="power"), ValueError, "Output mode is invalid"),
        (lambda: layers.STFTSpectrogram(frame_length=8, frame_step=9), ValueError, "frame_step"),
        (lambda: layers.STFTSpectrogram(frame_length=8, fft_length=4), ValueError, "fft_length"),
        (lambda: layers.STFTSpectrogram(scaling="energy"), ValueError, "Scaling is invalid"),
        (lambda: layers.STFTSpectrogram(padding="causal"), ValueError, "Padding is invalid"),
        (
            lambda: layers.MelSpectrogram(fft_length=32, sequence_length=64),
            ValueError,
            "fft_length",
        ),
    ],
)
def test_bad_arguments_are_refused_as_keras_refuses_them(make, error, match):
    with pytest.raises(error, match=match):
        make()


def test_stft_inputs_must_be_float_signals_of_rank_3():
    layer = layers.STFTSpectrogram(frame_length=8)
    with pytest.raises(TypeError, match="Expected `float16`, `float32` or `float64`"):
        layer(np.ones((1, 32, 1), np.int32))
    with pytest.raises(ValueError, match="ndim"):
        layer(np.ones((1, 32), np.float32))
