"""Makes the ``keras.saving.KerasFileEditor`` fixtures with real Keras (3.15.1, JAX backend),
in ``tests/keras_fixtures/``:

- ``file_editor.keras``: a small Dense and BatchNormalization model, compiled with Adam
  and trained one step (so the file holds 14 optimizer variables, whose names HDF5 lists
  as ``0, 1, 10, ...``);
- ``file_editor.npz``: the inputs, the arrays the edits add, and what Keras's editor reads
  from that file (``weights_dict`` flattened: ``read/<path>``), and the target model's
  prediction after loading the edited weights;
- ``file_editor.json``: the class's public names, the edits (replayed by the test), the
  order of Keras's ``weights_dict`` paths, and Keras's ``compare`` results (the dict and
  the messages it printed) for three cases;
- ``file_editor_edited.weights.h5``: the file Keras's editor saved after the edits.

    KERAS_BACKEND=jax /work/kenv/bin/python tests/fixture_scripts/make_file_editor_fixtures.py
"""

from __future__ import annotations

import json
import os
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "jax")

import keras
import numpy as np
import rich.console

OUT = Path(__file__).resolve().parents[1] / "keras_fixtures"

# Each edit: (method, arguments); a string in a weights dict names an array of the npz.
# (Keras's editor finds a bare name only when no other object follows its holder, so the
# optimizer goes first; and it drops an RNN's weights, so the model has none.)
EDITS = [
    ["delete_object", ["optimizer"]],
    ["rename_object", ["dense", "dense_x"]],
    ["rename_object", ["layers/dense_x", "dense"]],
    ["delete_weight", ["dense_1", "0"]],
    ["delete_weight", ["layers/dense_1", "1"]],
    ["add_weights", ["dense_1", {"0": "new_kernel", "1": "new_bias"}]],
    ["add_object", ["layers/extra", {"0": "extra"}]],
    ["delete_object", ["extra"]],
]


def build(units: int):
    """Input (4,) -> Dense(6) -> BatchNormalization -> Dense(units)."""
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


def compare(editor, model) -> dict:
    """Keras's result, and the messages it printed (one string each, lines joined)."""
    editor.console = rich.console.Console(highlight=False, record=True, width=10_000)
    result = editor.compare(model)
    lines = editor.console.export_text().splitlines()
    lines = lines[lines.index("Running comparison") + 1 : lines.index("─────────────────────")]
    messages = []
    for line in lines:
        if line.startswith("..."):
            messages.append(line)
        else:
            messages[-1] += "\n" + line
    return {"result": result, "messages": messages}


def main() -> None:
    from keras.saving import KerasFileEditor

    rng = np.random.default_rng(11)
    keras.utils.set_random_seed(11)
    source = build(2)
    source.compile(optimizer="adam", loss="mse")
    x = rng.normal(size=(4, 4)).astype("float32")
    source.fit(x, rng.normal(size=(4, 2)).astype("float32"), epochs=1, verbose=0)
    source.save(OUT / "file_editor.keras")

    arrays = {
        "x": x,
        "new_kernel": rng.normal(size=(6, 3)).astype("float32"),
        "new_bias": rng.normal(size=(3,)).astype("float32"),
        "extra": rng.normal(size=(2, 2)).astype("float32"),
    }
    editor = KerasFileEditor(str(OUT / "file_editor.keras"))
    read = flatten(editor.weights_dict)
    arrays.update({f"read/{path}": np.asarray(value) for path, value in read.items()})
    target = build(3)
    comparisons = {"source_model": compare(editor, source), "target_model": compare(editor, target)}
    for method, args in EDITS:
        args = [{k: arrays[v] for k, v in a.items()} if isinstance(a, dict) else a for a in args]
        getattr(editor, method)(*args)
    comparisons["edited_vs_target_model"] = compare(editor, target)
    editor.save(str(OUT / "file_editor_edited.weights.h5"))
    target.load_weights(OUT / "file_editor_edited.weights.h5")
    arrays["edited_predict"] = np.asarray(target.predict(x, verbose=0))
    np.savez_compressed(OUT / "file_editor.npz", **arrays)
    record = {
        "keras_version": keras.__version__,
        "public_names": [n for n in dir(KerasFileEditor) if not n.startswith("_")],
        "edits": EDITS,
        "read_order": list(read),
        "compare": comparisons,
    }
    (OUT / "file_editor.json").write_text(json.dumps(record, indent=1) + "\n")


if __name__ == "__main__":
    main()
