"""Keras's ``.keras`` files of models with adapted preprocessing layers, both ways: the
fixture (``fixture_scripts/make_preprocessing_file_fixtures.py``, Keras 3.15.1 on
TensorFlow 2.21) loads here with its vocabularies (assets) and predicts Keras's numbers;
kcompile's file of the same model loads in Keras (``KERAS_ORACLE_PYTHON``: an interpreter
with Keras and TensorFlow, which its lookups need; skipped without one)."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest

import kcompile as keras
from kcompile.saving.saving_lib import layer_from_keras
from tests import preprocessing_file_cases as cases
from tests.keras_oracle import run_in_keras

FIXTURES = Path(__file__).parent / "keras_fixtures"
KERAS_FILE = FIXTURES / "preprocessing_model.keras"
RECORD = json.loads((FIXTURES / "preprocessing_model.json").read_text())


def _vocabularies(model) -> dict:
    return {
        name: [str(t) for t in model.get_layer(name).get_vocabulary()]
        for name in ("city", "code", "text")
    }


def test_keras_file_loads_with_its_vocabularies_and_predicts_keras_numbers():
    model = keras.saving.load_model(KERAS_FILE)
    assert _vocabularies(model) == RECORD["vocabularies"]
    assert model.get_layer("amount").bin_boundaries == RECORD["bin_boundaries"]
    norm = model.get_layer("norm")
    np.testing.assert_allclose(norm.mean.numpy(), np.ravel(RECORD["normalization"]["mean"]))
    assert norm.count.numpy() == RECORD["normalization"]["count"]
    predictions = model.predict(cases.model_inputs(cases.rows()), verbose=0)
    np.testing.assert_allclose(predictions, RECORD["predictions"], rtol=1e-5, atol=1e-6)


def test_adapting_here_gives_keras_saved_values():
    model = cases.build(keras, cases.rows())
    assert _vocabularies(model) == RECORD["vocabularies"]
    np.testing.assert_allclose(model.get_layer("amount").bin_boundaries, RECORD["bin_boundaries"])
    norm = model.get_layer("norm")
    saved = RECORD["normalization"]
    np.testing.assert_allclose(norm.mean.numpy(), np.ravel(saved["mean"]), rtol=1e-6)
    np.testing.assert_allclose(norm.variance.numpy(), np.ravel(saved["variance"]), rtol=1e-5)
    assert norm.count.numpy() == saved["count"] == 0  # Keras 3's adapt leaves it at 0


def test_kcompile_file_has_keras_layout_and_round_trips(tmp_path):
    keras.utils.set_random_seed(0)
    model = cases.build(keras, cases.rows())
    path = tmp_path / "m.keras"
    model.save(path)
    with zipfile.ZipFile(path) as z:
        names = set(z.namelist())
        config = json.loads(z.read("config.json"))
        city = z.read("assets/layers/string_lookup/vocabulary.txt").decode()
    with zipfile.ZipFile(KERAS_FILE) as z:
        assert {n for n in z.namelist() if n.startswith("assets/")} <= names
    assert city.split("\n") == RECORD["vocabularies"]["city"]
    entries = {e["name"]: e["config"] for e in config["config"]["layers"]}
    assert entries["city"]["vocabulary"] is None and entries["city"]["vocabulary_size"] == 5
    inputs = cases.model_inputs(cases.rows())
    again = keras.saving.load_model(path)
    np.testing.assert_array_equal(
        again.predict(inputs, verbose=0), model.predict(inputs, verbose=0)
    )


KERAS_READS = """
import json, os, sys
os.environ["KERAS_BACKEND"] = "tensorflow"
try:
    import tensorflow as tf
except ImportError:
    print("NO-TENSORFLOW"); sys.exit(0)
import keras, numpy as np
sys.path.insert(0, sys.argv[2])
import preprocessing_file_cases as cases
model = keras.saving.load_model(sys.argv[1])
out = model([tf.constant(a) for a in cases.model_inputs(cases.rows())])
vocab = {n: [str(t) for t in model.get_layer(n).get_vocabulary()] for n in ("city", "code", "text")}
print(json.dumps({"predictions": np.asarray(out).tolist(), "vocabularies": vocab}))
"""


def test_kcompile_file_loads_in_keras_to_the_same_predictions(tmp_path):
    keras.utils.set_random_seed(0)
    model = cases.build(keras, cases.rows())
    model.save(tmp_path / "m.keras")
    done = run_in_keras(KERAS_READS, tmp_path, "m.keras", str(Path(__file__).parent))
    assert done.returncode == 0, done.stderr[-3000:]
    if "NO-TENSORFLOW" in done.stdout:
        pytest.skip("the Keras there has no TensorFlow, which its lookup layers need")
    got = json.loads(done.stdout.strip().splitlines()[-1])
    assert got["vocabularies"] == RECORD["vocabularies"]
    expected = model.predict(cases.model_inputs(cases.rows()), verbose=0)
    np.testing.assert_allclose(got["predictions"], expected, rtol=1e-5, atol=1e-6)


def test_feature_space_through_load_model():
    from kcompile.utils.feature_space import FeatureSpace, load_feature_space

    space = keras.saving.load_model(FIXTURES / "feature_space.keras")
    assert isinstance(space, FeatureSpace)
    reference = load_feature_space(FIXTURES / "feature_space.keras")
    assert space.get_config() == reference.get_config()
    for name, layer in space.preprocessors.items():
        if hasattr(layer, "get_vocabulary"):
            assert layer.get_vocabulary() == reference.preprocessors[name].get_vocabulary()
            assert len(layer.get_vocabulary()) > 1  # (read from the file's assets)


def _without(source: Path, target: Path, dropped: str, replaced: dict | None = None) -> None:
    with zipfile.ZipFile(source) as z, zipfile.ZipFile(target, "w") as out:
        for name in z.namelist():
            if name != dropped:
                out.writestr(name, (replaced or {}).get(name, z.read(name)))


def test_missing_vocabulary_file_is_named(tmp_path):
    missing = "assets/layers/string_lookup/vocabulary.txt"
    _without(KERAS_FILE, tmp_path / "m.keras", missing)
    with pytest.raises(ValueError, match=f"{missing}.*'city'.*StringLookup"):
        keras.saving.load_model(tmp_path / "m.keras")


def test_vocabulary_file_of_another_size_than_the_config_is_refused(tmp_path):
    name = "assets/layers/integer_lookup/vocabulary.txt"
    _without(KERAS_FILE, tmp_path / "m.keras", "", {name: b"-1\n3\n9"})
    with pytest.raises(ValueError, match="code.*3 tokens.*vocabulary_size=5"):
        keras.saving.load_model(tmp_path / "m.keras")


def test_keras_config_keys_of_preprocessing_layers():
    def entry(class_name, **config):
        return {"module": "keras.layers", "class_name": class_name, "config": config}

    policy = {"module": "keras", "class_name": "DTypePolicy", "config": {"name": "int64"}}
    hashing = layer_from_keras(entry("Hashing", name="h", num_bins=4, salt=None, dtype=policy))
    assert hashing(np.array(["a", "b"])).dtype == np.int64
    bins = layer_from_keras(
        entry("Discretization", name="d", bin_boundaries=[0.0, 1.0], num_bins=3, epsilon=0.01)
    )
    assert bins.bin_boundaries == [0.0, 1.0]
    lookup = layer_from_keras(
        entry("StringLookup", name="s", vocabulary_size=3, oov_method="floormod", salt=None)
    )
    assert lookup.output_spec((None, 1))[0] == (None, 1)
    with pytest.raises(NotImplementedError, match="farmhash.*num_oov_indices=2"):
        layer_from_keras(entry("StringLookup", name="s", num_oov_indices=2, oov_method="farmhash"))
