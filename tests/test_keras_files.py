"""Keras 3's own files: .keras and .weights.h5 written by Keras 3.15 (tests/keras_fixtures,
made by ``make_keras_fixtures.py files``) load in kcompile and predict Keras's numbers;
kcompile's own .keras files round-trip (and load in Keras: checked when the fixtures
are made). Needs h5py (the keras-files extra)."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pytest

import kcompile as keras
from tests.keras_parity_programs import CUSTOM_FILES, FILE_MODELS, file_custom_objects

pytest.importorskip("h5py")
FIXTURES = Path(__file__).resolve().parent / "keras_fixtures"


@pytest.mark.parametrize("name", sorted(FILE_MODELS))
def test_a_keras_file_from_keras_predicts_kerass_numbers(name):
    with np.load(FIXTURES / f"{name}.npz") as data:
        x, y, want = data["x"], data["y"], data["predict"]
        iterations, after = int(data["iterations"]), data["next_predict"]
    objects = file_custom_objects(keras) if name in CUSTOM_FILES else None
    model = keras.models.load_model(FIXTURES / f"{name}.keras", custom_objects=objects)
    np.testing.assert_allclose(model.predict(x, verbose=0), want, rtol=1e-4, atol=1e-5)
    assert model.optimizer.iterations == iterations
    # a step from the restored optimizer state (slots in Keras's order) as Keras took it;
    # not for the CNN, whose Dropout draws differ from Keras's
    if name != "cnn":
        model.train_on_batch(x, y)
        np.testing.assert_allclose(model.predict(x, verbose=0), after, rtol=1e-4, atol=1e-5)
    # the same model with its weights from Keras's .weights.h5
    fresh = FILE_MODELS[name][0](keras)
    fresh.load_weights(FIXTURES / f"{name}.weights.h5")
    np.testing.assert_allclose(fresh.predict(x, verbose=0), want, rtol=1e-4, atol=1e-5)


def test_a_kcompile_keras_file_round_trips_with_its_optimizer(tmp_path, rng):
    build, data = FILE_MODELS["sequence_model"]
    model = build(keras)
    x, y = data(rng)
    model.fit(x, y, epochs=2, batch_size=8, verbose=0)
    model.save(tmp_path / "m.keras")
    with zipfile.ZipFile(tmp_path / "m.keras") as z:
        assert sorted(z.namelist()) == ["config.json", "metadata.json", "model.weights.h5"]
    loaded = keras.models.load_model(tmp_path / "m.keras")
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
    assert loaded.optimizer.iterations == model.optimizer.iterations
    # training continues from the restored Adam state exactly as the original does
    a = model.train_on_batch(x, y, return_dict=True)["loss"]
    b = loaded.train_on_batch(x, y, return_dict=True)["loss"]
    assert a == pytest.approx(b, rel=1e-6)


def test_a_users_layers_round_trip_and_need_their_classes(tmp_path, rng):
    build, data = FILE_MODELS["custom_layers"]
    model = build(keras)
    x, y = data(rng)
    model.fit(x, y, epochs=1, batch_size=8, verbose=0)
    model.save(tmp_path / "m.keras")
    with pytest.raises(ValueError, match="custom_objects"):
        keras.models.load_model(tmp_path / "m.keras")
    loaded = keras.models.load_model(
        tmp_path / "m.keras", custom_objects=file_custom_objects(keras)
    )
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))


def test_a_registered_layer_is_found_by_its_registered_name(tmp_path):
    @keras.saving.register_keras_serializable(package="MyLayers")
    class Twice(keras.layers.Layer):
        def call(self, x):
            return x * 2.0

    inputs = keras.Input((3,))
    model = keras.Model(inputs, keras.layers.Dense(1)(Twice()(inputs)))
    model.save(tmp_path / "t.keras")
    x = np.ones((2, 3), np.float32)
    loaded = keras.models.load_model(tmp_path / "t.keras")
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))


def test_model_checkpoint_writes_keras_files(tmp_path, rng):
    build, data = FILE_MODELS["cnn"]
    model = build(keras)
    x, y = data(rng)
    best = keras.callbacks.ModelCheckpoint(
        str(tmp_path / "best.keras"), monitor="loss", save_best_only=True
    )
    weights = keras.callbacks.ModelCheckpoint(
        str(tmp_path / "w.weights.h5"), save_weights_only=True
    )
    model.fit(x, y, epochs=2, verbose=0, callbacks=[best, weights])
    np.testing.assert_allclose(
        keras.models.load_model(tmp_path / "best.keras").predict(x, verbose=0),
        model.predict(x, verbose=0),
        rtol=1e-6,
    )


def test_damaged_or_unsupported_files_are_refused(tmp_path):
    (tmp_path / "bad.keras").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match=r"bad\.keras: not a readable \.keras file"):
        keras.models.load_model(tmp_path / "bad.keras")
    inputs = keras.Input((3,))
    model = keras.Model(inputs, keras.ops.relu(inputs) * 2)
    with pytest.raises(NotImplementedError, match="keras.ops calls on symbolic tensors"):
        model.save(tmp_path / "ops.keras")
    assert not (tmp_path / "ops.keras").exists()
