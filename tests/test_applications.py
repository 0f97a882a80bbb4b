"""``keras.applications``: every architecture built as Keras 3.15 builds it (parameter
counts, layer names, output shape and its weights in the order Keras 2 files hold them,
``keras_fixtures/applications.json.gz``); small ones predicting Keras's own numbers given
the same weights, loaded from a Keras 2 ``.h5`` file (``applications.npz``; both made by
``fixture_scripts/make_applications_fixtures.py``); ``weights="imagenet"`` reading Keras's
cache or refusing with the URL and the path to put the file at; ``preprocess_input`` and
``decode_predictions`` as Keras's."""

from __future__ import annotations

import gzip
import importlib
import json
import sys
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest

import kcompile as keras
from kcompile import applications
from kcompile.applications import imagenet_utils, mobilenet_v2, pretrained, resnet
from tests import applications_cases as cases

HERE = Path(__file__).parent / "keras_fixtures"
with gzip.open(HERE / "applications.json.gz", "rt") as _f:
    TABLE = json.load(_f)
ARRAYS = np.load(HERE / "applications.npz")

# Building these takes 3 s or more on 2 cores (their initializers, most of it: 40M
# parameters or more, or many layers).
HEAVY = {
    "ConvNeXtBase",
    "ConvNeXtLarge",
    "ConvNeXtXLarge",
    "DenseNet169",
    "DenseNet201",
    "EfficientNetB1",
    "EfficientNetB2",
    "EfficientNetB3",
    "EfficientNetB4",
    "EfficientNetB5",
    "EfficientNetB6",
    "EfficientNetB7",
    "EfficientNetV2B1",
    "EfficientNetV2B2",
    "EfficientNetV2B3",
    "EfficientNetV2S",
    "EfficientNetV2M",
    "EfficientNetV2L",
    "InceptionResNetV2",
    "InceptionResNetV2_notop",
    "InceptionV3",
    "NASNetMobile",
    "NASNetMobile_notop",
    "NASNetLarge",
    "ResNet101",
    "ResNet101V2",
    "ResNet101V2_notop_max",
    "ResNet152",
    "ResNet152V2",
    "VGG16",
    "VGG19",
    "VGG19_top_small",
}


def _build(arch: str, **kwargs):
    keras.backend.clear_session()
    return getattr(applications, arch)(**kwargs)


def _layer_names(model) -> list[str]:
    return [layer.name for layer in model.layers]


def _param(case: str):
    marks = [pytest.mark.slow] if case in HEAVY else []
    return pytest.param(case, marks=marks, id=case)


def test_keras_names_are_offered():
    names = [n for n in TABLE["names"] if n not in TABLE["modules"]]
    assert len(names) == 40
    for name in names:
        assert callable(getattr(keras.applications, name)), name
    for module, public in TABLE["modules"].items():
        mine = importlib.import_module(f"kcompile.applications.{module}")
        assert getattr(keras.applications, module) is mine
        for name in public:
            assert hasattr(mine, name), f"keras.applications.{module}.{name}"


@pytest.mark.parametrize("case", [_param(c) for c in cases.BUILDS])
def test_builds_as_keras(case):
    arch, kwargs = cases.BUILDS[case]
    want = TABLE["builds"][case]
    model = _build(arch, **kwargs)
    assert model.name == want["name"]
    assert _layer_names(model) == want["layers"]
    assert list(model.output.shape) == want["output_shape"]
    assert model.count_params() == want["params"]
    trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    assert trainable == want["trainable_params"]
    mine = [[name, [list(s) for _, s in ws]] for name, ws in cases.legacy_layers(model)]
    assert mine == want["weights"]


def test_model_layers_leave_out_ops_nodes_as_keras():
    model = _build("MobileNetV3Small", weights=None)
    assert [layer.name for layer in model.layers] == TABLE["builds"]["MobileNetV3Small"]["layers"]


def _with_fixture_weights(case: str, tmp_path):
    """PARITY's model ``case`` with ``weight_value``'s weights, read from a Keras 2 file."""
    pytest.importorskip("h5py")
    arch, kwargs, _ = cases.PARITY[case]
    path = str(tmp_path / f"{case}.h5")
    cases.write_legacy_h5(path, cases.legacy_layers(_build(arch, weights=None, **kwargs)))
    return _build(arch, weights=path, **kwargs)


def _assert_keras_numbers(got: np.ndarray, case: str) -> None:
    want = ARRAYS[f"parity/{case}"]
    scale = float(np.abs(want).max())
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * scale)


# On the reference interpreter (numpy): a whole model in 10 to 25 s, where compiling one
# takes 30 s or more on 2 cores.
@pytest.mark.slow
@pytest.mark.parametrize("case", list(cases.PARITY))
def test_predicts_as_keras_with_the_same_weights(case, tmp_path):
    model = _with_fixture_weights(case, tmp_path)
    model.compile(backend="reference")
    _assert_keras_numbers(model.predict(cases.image_batch(cases.PARITY[case][2]), verbose=0), case)


@pytest.mark.slow
def test_compiled_application_predicts_as_keras(tmp_path, monkeypatch):
    # One whole application compiled (hard-swish, squeeze-and-excite, depthwise and
    # pointwise convolutions, 180 layers), with the guard zones off: they make this
    # compile four times longer, and every kernel here is also in tests that keep them.
    monkeypatch.setenv("KCOMPILE_CHECK", "0")
    model = _with_fixture_weights("MobileNetV3Small", tmp_path)
    x = cases.image_batch(cases.PARITY["MobileNetV3Small"][2])
    _assert_keras_numbers(model.predict(x, verbose=0), "MobileNetV3Small")


# --- weights="imagenet": Keras's files in Keras's cache --------------------------------


def _offline(monkeypatch):
    def refuse(*args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(urllib.request, "urlopen", refuse)


# MobileNetV2's files carry no hash in Keras: any file at the right path is read.
SMALL_V2 = {"alpha": 0.35, "include_top": False, "input_shape": (96, 96, 3)}
SMALL_V2_FILE = "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_0.35_96_no_top.h5"


def test_imagenet_weights_offline_name_the_url_and_the_path(tmp_path, monkeypatch):
    pytest.importorskip("h5py")
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    _offline(monkeypatch)
    with pytest.raises(OSError) as e:
        applications.MobileNetV2(**SMALL_V2)
    assert mobilenet_v2.BASE_WEIGHT_PATH + SMALL_V2_FILE in str(e.value)
    assert str(tmp_path / "models" / SMALL_V2_FILE) in str(e.value)
    name = "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5"
    with pytest.raises(OSError) as e:
        applications.ResNet50(include_top=False, input_shape=(32, 32, 3))
    assert resnet.BASE_WEIGHTS_PATH + name in str(e.value)
    assert str(tmp_path / "models" / name) in str(e.value)


def test_imagenet_weights_are_read_from_keras_cache(tmp_path, monkeypatch):
    pytest.importorskip("h5py")
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    _offline(monkeypatch)
    path = tmp_path / "models" / SMALL_V2_FILE
    path.parent.mkdir()
    built = _build("MobileNetV2", weights=None, **SMALL_V2)
    cases.write_legacy_h5(str(path), cases.legacy_layers(built))
    model = _build("MobileNetV2", **SMALL_V2)  # weights="imagenet", Keras's default
    for layer in ("Conv1", "block_16_project_BN"):
        want = [
            cases.weight_value(layer, i, w.name, tuple(w.shape))
            for i, w in enumerate(model.get_layer(layer).trainable_weights)
        ]
        got = model.get_layer(layer).get_weights()[: len(want)]
        for g, w in zip(got, want):
            np.testing.assert_array_equal(g, w)
    bn = model.get_layer("block_16_project_BN")
    np.testing.assert_array_equal(
        bn.moving_variance.numpy(),
        cases.weight_value("block_16_project_BN", 3, "moving_variance", (112,)),
    )


def test_hdf5_weights_without_h5py_name_the_extra(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    _offline(monkeypatch)
    monkeypatch.setitem(sys.modules, "h5py", None)
    with pytest.raises(ImportError, match=r"kcompile\[keras-files\]"):
        applications.MobileNetV2(include_top=False, input_shape=(96, 96, 3))
    with pytest.raises(ImportError, match=r"kcompile\[keras-files\]"):
        pretrained.load_weights(None, str(tmp_path / "w.h5"))


def test_weights_argument_checked_as_keras():
    with pytest.raises(ValueError, match="The `weights` argument should be either"):
        applications.ResNet50(weights="/no/such/file.h5")
    with pytest.raises(ValueError, match="`classes` should be 1000"):
        applications.ResNet50(weights="imagenet", classes=10)
    with pytest.raises(ValueError, match="Input size must be at least 32x32"):
        applications.ResNet50(weights=None, include_top=False, input_shape=(16, 16, 3))
    with pytest.raises(ValueError, match="Only `None` and `softmax` activations"):
        applications.MobileNet(weights="imagenet", alpha=0.25, classifier_activation="relu")


def test_legacy_file_with_other_layers_is_refused(tmp_path):
    pytest.importorskip("h5py")
    path = str(tmp_path / "w.h5")
    layers = cases.legacy_layers(_build("MobileNetV2", weights=None, **SMALL_V2))
    cases.write_legacy_h5(path, layers[:-1])
    with pytest.raises(ValueError, match="Layer count mismatch"):
        _build("MobileNetV2", weights=path, **SMALL_V2)
    layers[3] = (layers[3][0], layers[3][1][:2])
    cases.write_legacy_h5(path, layers)
    with pytest.raises(ValueError, match="Weight count mismatch"):
        _build("MobileNetV2", weights=path, **SMALL_V2)


def test_model_load_weights_reads_a_keras_2_file(tmp_path):
    pytest.importorskip("h5py")
    path = str(tmp_path / "w.h5")
    model = _build("MobileNetV2", weights=None, **SMALL_V2)
    cases.write_legacy_h5(path, cases.legacy_layers(model))
    model.load_weights(path)
    bn = model.get_layer("block_16_project_BN")
    np.testing.assert_array_equal(
        bn.moving_variance.numpy(),
        cases.weight_value("block_16_project_BN", 3, "moving_variance", (112,)),
    )


def test_input_tensor_is_used_as_the_input():
    inputs = keras.Input((32, 32, 3))
    x = keras.layers.Rescaling(1 / 255.0)(inputs)
    model = applications.MobileNetV2(
        input_tensor=x, include_top=False, weights=None, alpha=0.35, pooling="avg"
    )
    assert model.inputs[0] is inputs
    assert model.layers[1].name == "rescaling"
    assert tuple(model.output.shape) == (None, 1280)


# --- preprocess_input and decode_predictions -----------------------------------------


def _image():
    return cases.image_batch((2, 5, 4, 3), seed=1)


@pytest.mark.parametrize("module", cases.PREPROCESS_MODULES)
def test_preprocess_input_matches_keras(module):
    fn = getattr(keras.applications, module).preprocess_input
    np.testing.assert_allclose(fn(_image()), ARRAYS[f"preprocess/{module}"], rtol=1e-6, atol=1e-5)


@pytest.mark.parametrize("mode", ["caffe", "tf", "torch"])
def test_preprocess_modes_match_keras_on_arrays_and_tensors(mode):
    fn = imagenet_utils.preprocess_input
    want = ARRAYS[f"preprocess_mode/{mode}"]
    np.testing.assert_allclose(fn(_image(), mode=mode), want, rtol=1e-6, atol=1e-5)
    np.testing.assert_allclose(
        fn(_image()[0], mode=mode), ARRAYS[f"preprocess_mode3d/{mode}"], rtol=1e-6, atol=1e-5
    )
    inputs = keras.Input((5, 4, 3))
    model = keras.Model(inputs, fn(inputs, mode=mode))
    np.testing.assert_allclose(model.predict(_image(), verbose=0), want, rtol=1e-5, atol=1e-4)


def test_preprocess_input_refuses_unknown_mode_and_format():
    with pytest.raises(ValueError, match="Expected mode to be one of"):
        imagenet_utils.preprocess_input(_image(), mode="bgr")
    with pytest.raises(ValueError, match="Expected data_format to be one of"):
        imagenet_utils.preprocess_input(_image(), data_format="nhwc")


def test_decode_predictions_matches_keras(monkeypatch):
    monkeypatch.setattr(imagenet_utils, "CLASS_INDEX", cases.class_index())
    decoded = applications.resnet50.decode_predictions(ARRAYS["decode/preds"], top=4)
    assert [[d[0] for d in row] for row in decoded] == ARRAYS["decode/ids"].tolist()
    assert [[d[1] for d in row] for row in decoded] == ARRAYS["decode/names"].tolist()
    np.testing.assert_array_equal([[d[2] for d in row] for row in decoded], ARRAYS["decode/scores"])
    with pytest.raises(ValueError, match="expects a batch of predictions"):
        imagenet_utils.decode_predictions(np.zeros((2, 10)))


def test_decode_predictions_offline_names_the_url_and_the_path(tmp_path, monkeypatch):
    monkeypatch.setattr(imagenet_utils, "CLASS_INDEX", None)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    _offline(monkeypatch)
    with pytest.raises(OSError) as e:
        imagenet_utils.decode_predictions(np.zeros((1, 1000), np.float32))
    assert imagenet_utils.CLASS_INDEX_PATH in str(e.value)
    assert str(tmp_path / "models" / "imagenet_class_index.json") in str(e.value)
