"""``keras.utils.FeatureSpace`` against Keras 3.15.1's own (``keras_fixtures/feature_space.json``
and ``feature_space.keras``, made by ``fixture_scripts/make_feature_space_fixtures.py``
with TensorFlow 2.21, which Keras's FeatureSpace needs): the encodings of every feature
type and cross in both output modes, adapting on dicts and on kcompile's datasets, the
model made of ``get_inputs``/``get_encoded_features``, configs, ``.keras`` files both
ways, and the errors of bad input."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest

import kcompile as keras
from kcompile.utils import feature_space_layers as fs_layers
from kcompile.utils.dataset_utils import Dataset
from kcompile.utils.feature_space import FeatureSpace, load_feature_space
from tests import feature_space_cases as cases
from tests.keras_oracle import run_in_keras

FIXTURES = Path(__file__).resolve().parent / "keras_fixtures"
WANT = json.loads((FIXTURES / "feature_space.json").read_text())
TABLE = {
    k: np.asarray(v, dtype="float32" if k[0] == "f" else None) for k, v in WANT["table"].items()
}


def columns(space: FeatureSpace, table: dict = TABLE) -> dict:
    return {k: table[k] for k in space.features}


def adapted(name: str) -> FeatureSpace:
    space = cases.SPACES[name](keras)
    if name != "custom":  # its layers need no adapt, as in Keras
        space.adapt(columns(space))
    return space


def assert_same(got, want: dict, what: str) -> None:
    """An output (or dict of them) against Keras's values, shape and dtype."""
    if "values" not in want:
        assert sorted(got) == sorted(want), what
        for key in want:
            assert_same(got[key], want[key], f"{what}[{key}]")
        return
    assert isinstance(got, np.ndarray), what
    assert list(got.shape) == want["shape"] and str(got.dtype) == want["dtype"], what
    np.testing.assert_allclose(got, np.asarray(want["values"]), rtol=1e-5, atol=1e-6, err_msg=what)


@pytest.mark.parametrize("name", list(cases.SPACES))
def test_encodings_are_kerass_for_every_feature_type(name):
    space = adapted(name)
    want = WANT["spaces"][name]
    data = columns(space)
    assert_same(space(data), want["table"], f"{name} on the table")
    assert_same(space({k: v[0] for k, v in data.items()}), want["row"], f"{name} on one row")
    sizes = {k: v.num_tokens for k, v in space.one_hot_encoders.items()}
    assert sizes == want["one_hot_encoders"]
    assert {k: [type(v).__name__, v.name] for k, v in space.preprocessors.items()} == want[
        "preprocessors"
    ]
    assert {k: [type(v).__name__, v.name] for k, v in space.crossers.items()} == want["crossers"]


def batches_of(table: dict, size: int, labels: np.ndarray | None = None) -> Dataset:
    """kcompile's Dataset of dict batches (with their labels when given)."""
    count = -(-len(next(iter(table.values()))) // size)

    def batch(b: int):
        x = {k: v[b * size : (b + 1) * size] for k, v in table.items()}
        return x if labels is None else (x, labels[b * size : (b + 1) * size])

    return Dataset(count, batch)


def test_adapting_on_a_batched_dataset_reads_its_batches_as_keras_does():
    space = cases.concat_space(keras)
    space.adapt(batches_of(columns(space), 8))
    assert_same(space(columns(space)), WANT["batched_by_8"], "adapted on batches of 8")
    # the bins of a Discretization depend on the batches: a dict is adapted by 32 rows
    assert not np.allclose(
        WANT["batched_by_8"]["values"], WANT["spaces"]["concat"]["table"]["values"]
    )


def test_single_rows_generators_and_map_over_kcompiles_dataset():
    space = cases.dict_space(keras)
    data = columns(space)
    rows = Dataset(cases.ROWS, lambda i: {k: v[i] for k, v in data.items()})
    space.adapt(rows)  # single rows are batched by 32, as a dict is
    assert_same(space(data), WANT["spaces"]["dict"]["table"], "adapted on single rows")
    space.adapt(iter([data]))  # adapting again, from a generator, as Keras allows
    assert_same(space(data), WANT["spaces"]["dict"]["table"], "adapted again")
    mapped = rows.map(space)
    for i in (0, cases.ROWS - 1):
        row = mapped[i]
        for key, want in WANT["spaces"]["dict"]["table"].items():
            np.testing.assert_allclose(row[key], np.asarray(want["values"])[i], rtol=1e-5)
    labels = np.arange(cases.ROWS)
    labeled = batches_of(data, 16, labels).map(lambda x, y: (space(x), y))
    x, y = labeled[1]
    assert_same(x["sc"], _rows(WANT["spaces"]["dict"]["table"]["sc"], 16, 32), "mapped batch")
    np.testing.assert_array_equal(y, labels[16:32])


def _rows(want: dict, start: int, stop: int) -> dict:
    values = np.asarray(want["values"])[start:stop]
    return {"values": values.tolist(), "shape": list(values.shape), "dtype": want["dtype"]}


@pytest.mark.parametrize("name", ["concat", "dict"])
def test_a_model_of_its_inputs_and_encoded_features_computes_the_same(name):
    space = adapted(name)
    model = keras.Model(space.get_inputs(), space.get_encoded_features())
    got = model.predict(columns(space), batch_size=16, verbose=0)
    assert_same(got, WANT["spaces"][name]["table"], f"model of the {name} space")
    assert isinstance(model.get_layer(f"{space.crosses[0].name}_lookup"), fs_layers.CrossLookup)


def heart_table(rows: int, seed: int) -> tuple[dict, np.ndarray]:
    """A table like the example's heart-disease CSV, with a label the features decide."""
    rng = np.random.default_rng(seed)
    table = {
        "age": rng.integers(30, 78, rows).astype("float32"),
        "sex": rng.integers(0, 2, rows),
        "cp": rng.integers(0, 5, rows),
        "trestbps": rng.normal(130, 15, rows).astype("float32"),
        "chol": rng.normal(240, 40, rows).astype("float32"),
        "thal": rng.choice(["fixed", "normal", "reversible"], rows),
    }
    label = ((table["age"] > 55) & (table["sex"] == 1)) | (table["thal"] == "reversible")
    return table, label[:, None].astype("float32")


def test_the_structured_data_example_trains_on_encoded_data_and_predicts_raw_rows():
    table, label = heart_table(192, seed=3)
    train = {k: v[:160] for k, v in table.items()}
    train_ds = batches_of(train, 32, label[:160])
    val_ds = batches_of({k: v[160:] for k, v in table.items()}, 32, label[160:])
    FS = keras.utils.FeatureSpace
    feature_space = FS(
        features={
            "sex": FS.integer_categorical(num_oov_indices=0),
            "cp": FS.integer_categorical(num_oov_indices=0),
            "thal": FS.string_categorical(num_oov_indices=0),
            "age": FS.float_discretized(num_bins=10),
            "trestbps": FS.float_normalized(),
            "chol": FS.float_normalized(),
        },
        crosses=[
            FS.cross(feature_names=("sex", "age"), crossing_dim=64),
            FS.cross(feature_names=("thal", "cp"), crossing_dim=16),
        ],
        output_mode="concat",
    )
    feature_space.adapt(train_ds.map(lambda x, _: x))
    preprocessed_train_ds = train_ds.map(lambda x, y: (feature_space(x), y)).prefetch(None)
    preprocessed_val_ds = val_ds.map(lambda x, y: (feature_space(x), y))

    dict_inputs = feature_space.get_inputs()
    encoded_features = feature_space.get_encoded_features()
    hidden = keras.layers.Dense(32, activation="relu")
    dropout = keras.layers.Dropout(0.5)
    output = keras.layers.Dense(1, activation="sigmoid")
    predictions = output(dropout(hidden(encoded_features)))
    # Keras builds the training model on encoded_features itself; kcompile's models start
    # from keras.Input, so it takes an Input of the encoded width and shares the layers.
    encoded_input = keras.Input(shape=encoded_features.shape[1:])
    training_model = keras.Model(encoded_input, output(dropout(hidden(encoded_input))))
    training_model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
    inference_model = keras.Model(inputs=dict_inputs, outputs=predictions)

    history = training_model.fit(
        preprocessed_train_ds, epochs=25, validation_data=preprocessed_val_ds, verbose=0
    )
    assert history.history["accuracy"][-1] > 0.8
    sample = {"age": 60, "sex": 1, "cp": 1, "trestbps": 145, "chol": 233, "thal": "fixed"}
    input_dict = {name: np.asarray([value]) for name, value in sample.items()}
    raw = inference_model.predict(input_dict, verbose=0)
    encoded = training_model.predict(feature_space(input_dict), verbose=0)
    np.testing.assert_allclose(raw, encoded, rtol=1e-5, atol=1e-6)
    both = inference_model.predict(train, verbose=0)
    np.testing.assert_allclose(
        both, training_model.predict(feature_space(train), verbose=0), rtol=1e-5, atol=1e-6
    )


def _shape_of_config(config: dict) -> dict:
    """A FeatureSpace config with each preprocessor as its class, module and name (the
    layers' own configs are checked by their tests)."""
    features = {}
    for name, entry in config["features"].items():
        inner = dict(entry["config"])
        p = inner.pop("preprocessor")
        inner["preprocessor"] = [p["module"], p["class_name"], p["config"]["name"]]
        features[name] = {**entry, "config": inner}
    return {**config, "features": features}


@pytest.mark.parametrize("name", list(cases.SPACES))
def test_get_config_is_kerass_and_from_config_makes_an_unadapted_copy(name):
    space = adapted(name)
    data = columns(space)
    space(data)  # built, as Keras's was when its config was taken
    config = json.loads(json.dumps(space.get_config()))
    assert _shape_of_config(config) == _shape_of_config(WANT["spaces"][name]["config"])
    copy = FeatureSpace.from_config(config)
    if name != "custom":
        with pytest.raises(ValueError, match="You need to call `.adapt"):
            copy(data)
        copy.adapt(data)
    assert_same(copy(data), WANT["spaces"][name]["table"], f"{name} made from its config")
    assert json.loads(json.dumps(copy.get_config())) == config


def test_a_file_keras_saved_loads_with_its_vocabularies_and_statistics():
    space = load_feature_space(FIXTURES / "feature_space.keras")
    assert_same(space(columns(space)), WANT["spaces"]["concat"]["table"], "Keras's file")
    model = keras.Model(space.get_inputs(), space.get_encoded_features())
    got = model.predict({k: v[:1] for k, v in columns(space).items()}, verbose=0)
    assert_same(got[0], WANT["spaces"]["concat"]["row"], "a model of Keras's file")


def _layout(path) -> dict:
    """The groups, their names and datasets' shapes of a .keras file, and its members."""
    import h5py

    with zipfile.ZipFile(path) as z:
        members = sorted(n for n in z.namelist() if n != "metadata.json")
        assets = {n: z.read(n).decode() for n in members if n.startswith("assets/")}
        groups = {}

        def visit(name, item):
            groups[name] = list(item.shape) if hasattr(item, "shape") else dict(item.attrs)

        with h5py.File(io.BytesIO(z.read("model.weights.h5"))) as f:
            f.visititems(visit)
    return {"members": members, "assets": assets, "groups": groups}


@pytest.mark.parametrize("name", ["concat", "dict", "custom"])
def test_save_writes_kerass_layout_and_loads_back(tmp_path, name):
    space = adapted(name)
    path = tmp_path / "fs.keras"
    space.save(path)
    if name == "concat":
        assert _layout(path) == _layout(FIXTURES / "feature_space.keras")
    loaded = load_feature_space(path)
    assert_same(loaded(columns(loaded)), WANT["spaces"][name]["table"], f"{name} reloaded")
    with pytest.raises(ValueError, match=r"`\.keras` extension"):
        space.save(tmp_path / "fs.h5")


KERAS_READS = """
import json, sys
try:
    import tensorflow  # noqa: F401  (Keras's FeatureSpace runs on it)
except ImportError:
    sys.exit(77)
import keras
import numpy as np
space = keras.models.load_model(sys.argv[1])
table = json.load(open(sys.argv[2]))["table"]
out = space({k: np.asarray(table[k]) for k in space.features})
print(json.dumps({k: np.asarray(v).tolist() for k, v in out.items()}))
"""


def test_keras_reads_the_file_kcompile_writes(tmp_path):
    space = adapted("dict")
    space.save(tmp_path / "fs.keras")
    done = run_in_keras(KERAS_READS, tmp_path, "fs.keras", str(FIXTURES / "feature_space.json"))
    if done.returncode == 77:
        pytest.skip("the Keras there has no TensorFlow, which its FeatureSpace needs")
    assert done.returncode == 0, done.stderr[-2000:]
    got = json.loads(done.stdout.strip().splitlines()[-1])
    for key, want in WANT["spaces"]["dict"]["table"].items():
        np.testing.assert_allclose(got[key], want["values"], rtol=1e-5, atol=1e-6, err_msg=key)


def test_a_cross_too_large_to_tabulate_fails_the_model_not_the_data_path(monkeypatch):
    monkeypatch.setattr(fs_layers, "MAX_CROSS_TABLE", 16)
    space = adapted("concat")  # its crosses have 7 x 4, 4 x 8 and 6 x 3 codes
    assert_same(space(columns(space)), WANT["spaces"]["concat"]["table"], "on data")
    model = keras.Model(space.get_inputs(), space.get_encoded_features())
    with pytest.raises(NotImplementedError, match=r"dataset\.map\(feature_space\)"):
        model.predict(columns(space), verbose=0)


def _same_message(name: str, got: str, want: str) -> bool:
    """Keras's message, or where kcompile's must differ, what both say."""
    if name in ("missing_column", "extra_column"):  # Keras's KeyError is the bare name
        return want in got.partition(";")[0]
    if name == "adapt_a_list":  # Keras names tf.data.Dataset, which kcompile does not have
        return got.startswith("`adapt()` can only be called on a") and got.endswith(
            want.partition("Received instead:")[2]
        )
    if name == "three_way_cross":  # Keras wraps HashedCrossing's message in its call's
        return got in want
    if name == "concat_of_ints":  # kcompile's integer codes are int32, Keras's int64
        return got == want.replace("int64", "int32")
    return got == want


@pytest.mark.parametrize("name", list(cases.ERRORS))
def test_bad_input_raises_kerass_errors(name):
    got = cases.error_of(keras, name, dict(TABLE))
    want = WANT["errors"][name]
    assert got["type"] == want["type"], (got, want)
    assert _same_message(name, got["message"], want["message"]), (got, want)


def test_adapt_refuses_labeled_datasets_and_ragged_columns():
    space = cases.pair(keras)
    data = {"f1": np.arange(5), "f2": np.arange(5)}
    with pytest.raises(ValueError, match=r"without labels .*`lambda x, y: x`"):
        space.adapt(batches_of(data, 2, np.zeros(5)))  # Keras's adapt takes no labels
    with pytest.raises(ValueError, match="different lengths"):
        space.adapt({"f1": np.arange(5), "f2": np.arange(4)})
    with pytest.raises(TypeError, match="get_encoded_features"):
        space.adapt(data)
        space(space.get_inputs())
