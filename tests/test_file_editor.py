"""``keras.saving.KerasFileEditor``: every method, the errors Keras raises, and parity with
Keras 3.15's editor on a file Keras wrote (``tests/keras_fixtures/file_editor*``, made by
``tests/fixture_scripts/make_file_editor_fixtures.py``): the same weights read, the same
mismatches found, the same file written after the same edits, which loads in kcompile and
in Keras with the edited weights. Needs h5py (the keras-files extra)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

import kcompile as keras
from kcompile.saving import KerasFileEditor
from kcompile.saving.file_editor import model_weight_spec
from tests.keras_oracle import run_in_keras

h5py = pytest.importorskip("h5py")

FIXTURES = Path(__file__).resolve().parent / "keras_fixtures"
KERAS_FILE = FIXTURES / "file_editor.keras"
RECORD = json.loads((FIXTURES / "file_editor.json").read_text())


@pytest.fixture(scope="module")
def arrays():
    with np.load(FIXTURES / "file_editor.npz") as data:
        return dict(data)


def build(units: int):
    """The fixture's models: Input (4,) -> Dense(6) -> BatchNormalization -> Dense(units)."""
    inputs = keras.Input((4,))
    x = keras.layers.Dense(6, activation="tanh")(inputs)
    x = keras.layers.BatchNormalization()(x)
    return keras.Model(inputs, keras.layers.Dense(units)(x))


def flatten(tree: dict, path: str = "") -> dict:
    out = {}
    for key, value in tree.items():
        inner = f"{path}/{key}" if path else key
        out.update(flatten(value, inner) if isinstance(value, dict) else {inner: value})
    return out


def datasets(path: Path) -> dict:
    """Every dataset of an HDF5 file by its path, read with h5py alone."""
    out = {}

    def keep(name: str, obj) -> None:
        if isinstance(obj, h5py.Dataset):
            out[name] = np.asarray(obj[()])

    with h5py.File(path, "r") as f:
        f.visititems(keep)
    return out


def replay_edits(editor: KerasFileEditor, arrays: dict) -> None:
    for method, args in RECORD["edits"]:
        args = [{k: arrays[v] for k, v in a.items()} if isinstance(a, dict) else a for a in args]
        getattr(editor, method)(*args)


def messages(printed: str) -> list[str]:
    """compare's messages (a ``...`` line and its indented ones), as the fixture has them."""
    lines = printed.splitlines()
    lines = lines[lines.index("Running comparison") + 1 : lines.index("─────────────────────")]
    out: list[str] = []
    for line in lines:
        if line.startswith("..."):
            out.append(line)
        else:
            out[-1] += "\n" + line
    return out


# --- parity with Keras's editor ------------------------------------------------------------


def test_the_class_has_kerass_public_names():
    assert set(RECORD["public_names"]) <= set(dir(KerasFileEditor))


def test_it_reads_what_kerass_editor_reads(arrays, capsys):
    editor = KerasFileEditor(KERAS_FILE)
    read = flatten(editor.weights_dict)
    assert list(read) == RECORD["read_order"]
    for path, value in read.items():
        want = arrays[f"read/{path}"]
        assert value.dtype == want.dtype and value.shape == want.shape, path
        np.testing.assert_array_equal(value, want, err_msg=path)
    assert editor.config["class_name"] == "Functional"
    assert editor.metadata["keras_version"] == RECORD["keras_version"]
    printed = capsys.readouterr().out.splitlines()
    assert printed[0] == f"Keras model file '{KERAS_FILE}'"
    assert printed[1].startswith(f"Saved with Keras {RECORD['keras_version']} - date: ")


@pytest.mark.parametrize("case", sorted(RECORD["compare"]))
def test_compare_finds_the_mismatches_keras_finds(case, arrays, capsys):
    keras_said = RECORD["compare"][case]
    editor = KerasFileEditor(KERAS_FILE)
    if case == "source_model":  # Keras's model, trained: kcompile's holds the same state
        model = keras.models.load_model(KERAS_FILE)
    else:
        model = build(3)
    if case == "edited_vs_target_model":
        replay_edits(editor, arrays)
    capsys.readouterr()
    result = editor.compare(model)
    found = messages(capsys.readouterr().out)
    assert sorted(found) == sorted(keras_said["messages"])
    assert result["status"] == keras_said["result"]["status"]
    # Keras's counts add its running totals back at each level (50 matches for the 22
    # weights of the trained model); kcompile's count each one once.
    assert result["error_count"] == len(found)
    want_matches = {"source_model": 22, "target_model": 6, "edited_vs_target_model": 8}
    assert result["match_count"] == want_matches[case]


def test_the_edits_write_the_file_kerass_editor_writes(arrays, tmp_path):
    editor = KerasFileEditor(KERAS_FILE)
    replay_edits(editor, arrays)
    editor.save(tmp_path / "edited.weights.h5")
    ours, theirs = (
        datasets(tmp_path / "edited.weights.h5"),
        datasets(FIXTURES / "file_editor_edited.weights.h5"),
    )
    assert sorted(ours) == sorted(theirs)
    for path, value in theirs.items():
        assert ours[path].dtype == value.dtype, path
        np.testing.assert_array_equal(ours[path], value, err_msg=path)


def test_the_edited_file_loads_in_kcompile_with_the_edited_weights(arrays, tmp_path):
    editor = KerasFileEditor(KERAS_FILE)
    replay_edits(editor, arrays)
    editor.save(tmp_path / "edited.weights.h5")
    model = build(3)
    model.load_weights(tmp_path / "edited.weights.h5")
    kernel, bias = model.layers[-1].get_weights()
    np.testing.assert_array_equal(kernel, arrays["new_kernel"])
    np.testing.assert_array_equal(bias, arrays["new_bias"])
    np.testing.assert_array_equal(model.layers[1].get_weights()[0], arrays["read/layers/dense/0"])
    got = model.predict(arrays["x"], verbose=0)
    np.testing.assert_allclose(got, arrays["edited_predict"], rtol=1e-5, atol=1e-6)


def test_a_file_kcompiles_editor_wrote_loads_in_keras(arrays, tmp_path):
    editor = KerasFileEditor(KERAS_FILE)
    replay_edits(editor, arrays)
    editor.rename_object("batch_normalization", "batch_normalization")  # a no-op rename
    editor.save(tmp_path / "edited.weights.h5")
    np.save(tmp_path / "x.npy", arrays["x"])
    script = (
        "import keras, numpy as np, sys; d = sys.argv[1]; "
        "i = keras.Input((4,)); h = keras.layers.Dense(6, activation='tanh')(i); "
        "h = keras.layers.BatchNormalization()(h); "
        "m = keras.Model(i, keras.layers.Dense(3)(h)); "
        "m.load_weights(d + '/edited.weights.h5'); "
        "np.save(d + '/y.npy', m.predict(np.load(d + '/x.npy'), verbose=0))"
    )
    result = run_in_keras(script, tmp_path, str(tmp_path))
    assert result.returncode == 0, result.stderr[-2000:]
    np.testing.assert_allclose(np.load(tmp_path / "y.npy"), arrays["edited_predict"], rtol=1e-6)


# --- each method ---------------------------------------------------------------------------


def source_model():
    inputs = keras.Input((2,))
    x = keras.layers.Dense(3, name="mydense")(inputs)
    return keras.Model(inputs, keras.layers.Dense(3, name="output_layer")(x))


def target_model():
    inputs = keras.Input((2,))
    x = keras.layers.Dense(3, name="mydense")(inputs)
    x = keras.layers.Dense(3, name="myotherdense")(x)
    return keras.Model(inputs, keras.layers.Dense(3, name="output_layer")(x))


def test_kerass_own_editing_session_runs_the_same(tmp_path):
    """Keras's ``file_editor_test.test_basics``, step by step, with its expected results."""
    rng = np.random.default_rng(0)
    model = source_model()
    model.save(tmp_path / "my_model.keras")
    editor = KerasFileEditor(tmp_path / "my_model.keras")
    target = target_model()
    assert editor.compare(model)["status"] == "success"
    editor.add_object("layers/dense_3", weights={"0": rng.random((3, 3))})
    out = editor.compare(target)
    assert (out["status"], out["error_count"]) == ("error", 2)
    editor.rename_object("dense_3", "dense_4")
    editor.rename_object("layers/dense_4", "dense_2")
    editor.add_weights("dense_2", weights={"1": rng.random((3,))})
    assert editor.compare(target)["status"] == "success"
    editor.add_object("layers/dense_3", weights={"0": rng.random((3, 3))})
    assert editor.compare(target)["error_count"] == 1
    editor.delete_object("layers/dense_3")
    assert editor.compare(target) == {"status": "success", "error_count": 0, "match_count": 6}
    editor.save(tmp_path / "resaved.weights.h5")
    target.load_weights(tmp_path / "resaved.weights.h5")
    added = editor.weights_dict["layers"]["dense_2"]  # the file's third Dense: output_layer
    for got, want in zip(target.layers[-1].get_weights(), (added["0"], added["1"])):
        np.testing.assert_array_equal(got, want.astype("float32"))

    editor = KerasFileEditor(tmp_path / "resaved.weights.h5")
    assert editor.metadata is None and editor.config is None
    assert editor.compare(target)["status"] == "success"
    editor.delete_weight("dense_2", "1")
    assert editor.compare(target)["error_count"] == 1
    editor.add_weights("dense_2", {"1": np.zeros((7,))})
    assert editor.compare(target)["error_count"] == 1
    editor.delete_weight("dense_2", "1")
    editor.add_weights("dense_2", {"1": np.zeros((3,))})
    assert editor.compare(target)["status"] == "success"


def test_summary_draws_every_object_and_weight(capsys):
    editor = KerasFileEditor(KERAS_FILE)
    capsys.readouterr()
    editor.summary()
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "Weights structure"
    assert lines[1] == "  > layers"
    leaves = flatten(editor.weights_dict)
    objects = {"layers", "optimizer", *(p.rsplit("/", 1)[0] for p in leaves)}
    assert len(lines) == 1 + len(leaves) + len(objects)
    for path, value in leaves.items():
        line = f"{path.rsplit('/', 1)[1]}: shape={value.shape}, dtype={value.dtype}"
        assert any(text.endswith(line) for text in lines), path
    # each layer's group carries the name Keras saved with it
    assert any(text.endswith("─ dense_1 ('dense_1')") for text in lines)
    editor.weights_summary()
    assert capsys.readouterr().out.splitlines() == lines


def test_a_name_is_edited_where_it_is_however_deep(tmp_path):
    # Keras's editor reads an LSTM's group as empty (its `vars` group is); this one keeps
    # the cell's weights, and a bare name reaches them.
    inputs = keras.Input((3, 2))
    model = keras.Model(inputs, keras.layers.Dense(1)(keras.layers.LSTM(4)(inputs)))
    model.save(tmp_path / "rnn.keras")
    editor = KerasFileEditor(tmp_path / "rnn.keras")
    cell = editor.weights_dict["layers"]["lstm"]["cell"]
    assert [cell[k].shape for k in ("0", "1", "2")] == [
        w.shape for w in model.layers[1].get_weights()
    ]
    assert editor.compare(model)["status"] == "success"
    # a layer's own tree, as Keras's walk of the layer finds it, is the file's subtree
    spec = model_weight_spec(model.layers[1])
    assert {k: v.shape for k, v in spec["cell"].items()} == {k: v.shape for k, v in cell.items()}
    editor.rename_object("cell", "cell_x")
    assert list(editor.weights_dict["layers"]["lstm"]) == ["cell_x"]
    assert editor.compare(model)["error_count"] == 2  # cell missing, cell_x extra
    editor.rename_object("layers/lstm/cell_x", "cell")
    new_bias = np.arange(16, dtype="float32")
    editor.delete_weight("layers/lstm/cell", "2")
    editor.add_weights("cell", {"2": new_bias})
    editor.resave_weights(tmp_path / "rnn.weights.h5")
    model.load_weights(tmp_path / "rnn.weights.h5")
    np.testing.assert_array_equal(model.layers[1].get_weights()[2], new_bias)


def test_bfloat16_weights_keep_their_dtype(tmp_path):
    editor = KerasFileEditor(FIXTURES / "bfloat16_variables.keras")
    leaves = flatten(editor.weights_dict)
    bf16 = [p for p, v in leaves.items() if v.dtype.name == "bfloat16"]
    assert bf16, "the fixture holds bfloat16 weights"
    editor.save(tmp_path / "bf16.weights.h5")
    again = flatten(KerasFileEditor(tmp_path / "bf16.weights.h5").weights_dict)
    assert list(again) == list(leaves)
    for path, value in leaves.items():
        assert again[path].dtype == value.dtype
        np.testing.assert_array_equal(again[path], value)
    with h5py.File(tmp_path / "bf16.weights.h5", "r") as f:
        path, leaf = bf16[0].rsplit("/", 1)
        assert f[f"{path}/vars/{leaf}"].attrs["dtype"] == "bfloat16"  # as Keras marks them


# --- errors, as Keras raises them ----------------------------------------------------------


@pytest.fixture
def editor(tmp_path):
    source_model().save(tmp_path / "m.keras")
    return KerasFileEditor(tmp_path / "m.keras")


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda e: e.rename_object("dense", "layers/x"), "should be a leaf name"),
        (lambda e: e.rename_object("layers/nope", "x"), "Path 'layers/nope' not found in model."),
        (lambda e: e.delete_object("nope/dense"), "Path 'nope/dense' not found in model."),
        (lambda e: e.delete_object("nope"), "Source name 'nope' does not appear in the model."),
        (lambda e: e.delete_object("0"), "Name '0' occurs more than once in the model"),
        (lambda e: e.delete_weight("dense", "5"), r"Weight 5 not found in object dense. Weights found: \['0', '1'\]"),
        (lambda e: e.add_object("layers/x", [1.0]), "Argument `weights` should be a dict"),
        (lambda e: e.add_object("a/b/c", {}), "Path 'a/b' not found in model."),
        (lambda e: e.add_weights("dense", (1.0,)), "Argument `weights` should be a dict"),
        (lambda e: e.add_weights("layers/dense/0", {"2": 1.0}), "'layers/dense/0' is a weight, not an object"),
        (lambda e: e.delete_weight("layers/dense/1", "0"), "'layers/dense/1' is a weight, not an object"),
        (lambda e: e.save("out.h5"), "expected a `.weights.h5` extension. Received: filepath=out.h5"),
    ],
)  # fmt: skip
def test_bad_edits_raise_kerass_errors(editor, call, message):
    before = flatten(editor.weights_dict)
    with pytest.raises(ValueError, match=message):
        call(editor)
    assert flatten(editor.weights_dict).keys() == before.keys()


def test_a_file_of_another_kind_is_refused(tmp_path):
    with pytest.raises(ValueError, match=r"expected a `.keras` `.weights.h5` extension"):
        KerasFileEditor(tmp_path / "model.h5")
    (tmp_path / "broken.keras").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="not a readable .keras file"):
        KerasFileEditor(tmp_path / "broken.keras")


def test_compare_needs_a_model_and_counts_an_unbuilt_one_as_empty(editor, capsys):
    with pytest.raises(ValueError, match="Expected object to be an instance of `KerasSaveable`"):
        editor.compare("model")
    capsys.readouterr()
    unbuilt = keras.Sequential([keras.layers.Dense(3)])
    assert editor.compare(unbuilt) == {"status": "error", "error_count": 1, "match_count": 0}
    assert "...Object /layers present in saved file, missing from reference model" in (
        capsys.readouterr().out
    )


def test_a_missing_file_is_file_not_found(tmp_path):
    for name in ("nope.keras", "nope.weights.h5"):
        with pytest.raises(FileNotFoundError):
            KerasFileEditor(tmp_path / name)


def test_a_failed_save_leaves_the_old_file(editor, tmp_path):
    out = tmp_path / "out.weights.h5"
    editor.save(out)
    before = out.read_bytes()
    editor.add_object("layers/bad", {"0": np.array([object()])})
    with pytest.raises(TypeError):
        editor.save(out)
    assert out.read_bytes() == before
    assert [p for p in os.listdir(tmp_path) if p.startswith(".tmp-")] == []


def test_links_out_of_the_file_are_refused(tmp_path):
    victim = tmp_path / "victim.weights.h5"
    keras.Sequential([keras.Input((3,)), keras.layers.Dense(5)]).save_weights(victim)
    with h5py.File(tmp_path / "external.weights.h5", "w") as f:
        f["layers"] = h5py.ExternalLink(str(victim), "/layers")
    with pytest.raises(ValueError, match="Not allowed: H5 file with ExternalLink"):
        KerasFileEditor(tmp_path / "external.weights.h5")
    with h5py.File(tmp_path / "soft.weights.h5", "w") as f:
        f.create_group("real").create_dataset("inner", data=np.zeros(1))
        f["layers"] = h5py.SoftLink("/real")
    with pytest.raises(ValueError, match="Not allowed: H5 file with SoftLink"):
        KerasFileEditor(tmp_path / "soft.weights.h5")
    with h5py.File(tmp_path / "other.weights.h5", "w") as f:
        f.create_dataset("s", data=np.arange(5, dtype="float32"))
    with h5py.File(tmp_path / "virtual.weights.h5", "w") as f:
        layout = h5py.VirtualLayout(shape=(5,), dtype="float32")
        layout[:] = h5py.VirtualSource(str(tmp_path / "other.weights.h5"), "s", shape=(5,))
        f.create_group("layers/dense/vars").create_virtual_dataset("0", layout)
    with pytest.raises(ValueError, match="Not allowed: H5 file with virtual Dataset"):
        KerasFileEditor(tmp_path / "virtual.weights.h5")
