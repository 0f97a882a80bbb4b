"""``keras.Model(inputs, outputs)`` on intermediate tensors of another graph, as Keras's
``Functional`` takes them: each becomes a fresh Input (``<tensor name>CLONE``), the
layers between it and the outputs are shared, those before it are not in the model."""

from __future__ import annotations

import json

import numpy as np
import pytest

import kcompile as keras
from kcompile.layers.core.input_layer import InputLayer
from tests.keras_oracle import run_in_keras

RNG = np.random.default_rng(0)


def two_branch():
    """Inputs a, b -> d1, d2 -> concatenate -> h -> o, and the full model."""
    a = keras.Input((4,), name="a")
    b = keras.Input((3,), name="b")
    x = keras.layers.Dense(5, name="d1")(a)
    y = keras.layers.Dense(5, name="d2")(b)
    c = keras.layers.Concatenate(name="cat")([x, y])
    h = keras.layers.Dense(6, activation="relu", name="h")(c)
    o = keras.layers.Dense(1, name="o")(h)
    return {"a": a, "b": b, "x": x, "c": c, "h": h, "o": o}, keras.Model([a, b], o)


def reference_of(model) -> keras.Model:
    """The same model (the same layers) run by the reference interpreter."""
    twin = keras.Model(model.inputs, model.outputs)
    twin.compile("sgd", "mse", backend="reference")
    return twin


def test_a_model_on_an_intermediate_has_a_fresh_input_and_the_later_layers_only():
    t, full = two_branch()
    head = keras.Model(t["c"], t["o"])
    (given,) = head.inputs
    assert given is not t["c"]
    assert isinstance(given._input_layer, InputLayer)
    assert (given.name, given.shape, given.dtype) == (f"{t['c'].name}CLONE", (None, 10), "float32")
    assert [layer.name for layer in head.layers] == [given.name, "h", "o"]
    assert head.get_layer("h") is full.get_layer("h")
    assert [spec.shape for spec in head.input_spec] == [(None, 10)]
    assert head.count_params() == 10 * 6 + 6 + 6 + 1
    # The tensors of the first graph are left as they were.
    assert t["c"]._history[0].layer is full.get_layer("cat")
    assert t["o"]._history[0] in full._records


def test_the_tail_of_a_model_predicts_as_the_whole_model_and_matches_the_reference():
    t, full = two_branch()
    features = keras.Model(full.inputs, t["c"])
    tail = keras.Model(full.get_layer("cat").output, full.output)
    a, b = RNG.normal(size=(7, 4)), RNG.normal(size=(7, 3))
    middle = features.predict([a, b], verbose=0)
    got = tail.predict(middle, verbose=0)
    np.testing.assert_allclose(got, full.predict([a, b], verbose=0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(
        got, reference_of(tail).predict(middle, verbose=0), rtol=1e-5, atol=1e-6
    )


def test_inputs_may_mix_an_input_and_an_intermediate_in_keras_order():
    t, full = two_branch()
    mixed = keras.Model([t["h"], t["a"]], [t["o"], t["x"]])
    assert [x.name for x in mixed.inputs] == ["hCLONE", "a"]
    assert mixed.inputs[1] is t["a"]  # a keras.Input stays itself, as in Keras
    # Keras's order (its map_graph): the Inputs, then o and d1 at depth 1.
    assert [layer.name for layer in mixed.layers] == ["hCLONE", "a", "o", "d1"]
    h, a = RNG.normal(size=(5, 6)), RNG.normal(size=(5, 4))
    o, x = mixed.predict([h, a], verbose=0)
    want_o, want_x = reference_of(mixed).predict([h, a], verbose=0)
    np.testing.assert_allclose(o, want_o, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(x, want_x, rtol=1e-5, atol=1e-6)
    kernel, bias = full.get_layer("o").get_weights()
    np.testing.assert_allclose(o, h @ kernel + bias, rtol=1e-5, atol=1e-6)


def test_training_the_head_trains_the_full_models_layers():
    t, full = two_branch()
    head = keras.Model(t["c"], t["o"])
    head.compile(keras.optimizers.SGD(0.05), "mse")
    before = full.get_layer("h").get_weights()[0].copy()
    first = full.get_layer("d1").get_weights()[0].copy()
    c = RNG.normal(size=(32, 10)).astype("float32")
    y = c[:, :1] - c[:, 5:6]
    history = head.fit(c, y, epochs=5, batch_size=8, verbose=0).history["loss"]
    assert history[-1] < history[0]
    assert not np.allclose(full.get_layer("h").get_weights()[0], before)
    # d1 comes before the head's input: not in the head, not trained by it
    np.testing.assert_array_equal(full.get_layer("d1").get_weights()[0], first)
    assert len(head.trainable_weights) == 4


def feature_space():
    space = keras.utils.FeatureSpace(
        features={
            "size": keras.utils.FeatureSpace.float_normalized(),
            "kind": keras.utils.FeatureSpace.integer_categorical(num_oov_indices=0),
        },
        output_mode="concat",
    )
    table = {
        "size": RNG.normal(3.0, 2.0, 64).astype("float32"),
        "kind": RNG.integers(0, 3, 64),
    }
    space.adapt(table)
    return space, table


def test_the_feature_space_example_trains_on_encoded_features_and_predicts_raw_rows():
    space, table = feature_space()
    label = ((table["size"] > 3.0) ^ (table["kind"] == 1)).astype("float32")[:, None]
    encoded_features = space.get_encoded_features()
    hidden = keras.layers.Dense(16, activation="relu", name="hidden")(encoded_features)
    predictions = keras.layers.Dense(1, activation="sigmoid", name="out")(hidden)
    training_model = keras.Model(inputs=encoded_features, outputs=predictions)
    assert training_model.inputs[0].name == f"{encoded_features.name}CLONE"
    assert [layer.name for layer in training_model.layers][1:] == ["hidden", "out"]
    training_model.compile(keras.optimizers.Adam(0.05), "binary_crossentropy")
    encoded = np.asarray(space(table))
    loss = training_model.fit(encoded, label, epochs=10, batch_size=16, verbose=0)
    assert loss.history["loss"][-1] < 0.8 * loss.history["loss"][0]
    inference_model = keras.Model(inputs=space.get_inputs(), outputs=predictions)
    assert training_model.trainable_weights == inference_model.trainable_weights
    raw = inference_model.predict({k: v[:, None] for k, v in table.items()}, verbose=0)
    np.testing.assert_allclose(
        raw, training_model.predict(encoded, verbose=0), rtol=1e-5, atol=1e-6
    )
    np.testing.assert_allclose(
        raw, reference_of(training_model).predict(encoded, verbose=0), rtol=1e-5, atol=1e-6
    )


@pytest.mark.parametrize(
    ("outputs", "path"), [("x", ""), (["o", "x"], "1"), ({"p": "x", "q": "o"}, "p")]
)
def test_an_output_not_computed_from_the_inputs_is_refused_as_keras_refuses_it(outputs, path):
    t, _ = two_branch()
    if isinstance(outputs, dict):
        given = {k: t[v] for k, v in outputs.items()}
    elif isinstance(outputs, list):
        given = [t[v] for v in outputs]
    else:
        given = t[outputs]
    with pytest.raises(ValueError, match=f"Output with path `{path}` is not connected"):
        keras.Model(t["c"], given)


def test_an_input_that_is_no_tensor_is_refused_naming_it():
    t, _ = two_branch()
    with pytest.raises(ValueError, match="All `inputs` values must be KerasTensors"):
        keras.Model([t["c"], np.zeros((1, 3))], t["o"])


def test_summary_shows_the_fresh_input_and_the_models_own_calls():
    t, full = two_branch()
    head = keras.Model(t["c"], t["o"])
    lines = []
    head.summary(print_fn=lines.append)
    text = lines[0]
    assert "catCLONE (InputLayer)" in text and "catCLONE[0][0]" in text
    assert "d1 (Dense)" not in text and "Total params: 73" in text
    full.summary(print_fn=lines.append)
    h_row = next(line for line in lines[1].splitlines() if line.startswith("│ h (Dense)"))
    assert "cat[0][0]" in h_row  # the full model's own call of h, not the head's


PROGRAM = """
a = keras.Input((4,), name="a")
b = keras.Input((3,), name="b")
x = keras.layers.Dense(5, name="d1")(a)
y = keras.layers.Dense(5, name="d2")(b)
c = keras.layers.Concatenate(name="cat")([x, y])
h = keras.layers.Dense(6, activation="relu", name="h")(c)
o = keras.layers.Dense(1, name="o")(h)
full = keras.Model([a, b], o)
head = keras.Model(c, o)
configs = [shape_of_config(m.get_config()) for m in (full, head)]
mixed = keras.Model([h, a], [o, x])
configs.append(shape_of_config(mixed.get_config()))
"""

SHAPE_OF_CONFIG = """
def shape_of_config(config):
    names = {}
    for entry in config["layers"]:
        if entry["class_name"] == "InputLayer":
            name = entry["name"]
            names[name] = "CLONE" if name.endswith("CLONE") else name
    def ref(r):
        return [names.get(r[0], r[0]), r[1], r[2]]
    def refs(r):
        return [ref(x) for x in ([r] if r and isinstance(r[0], str) else r)]
    layers = []
    for entry in config["layers"]:
        history = [
            [ref(a["config"]["keras_history"]) for a in _leaves(node["args"])]
            for node in entry["inbound_nodes"]
        ]
        layers.append([entry["class_name"], names.get(entry["name"], entry["name"]), history])
    return {"layers": layers, "inputs": refs(config["input_layers"]),
            "outputs": refs(config["output_layers"])}

def _leaves(x):
    if isinstance(x, dict) and x.get("class_name") == "__keras_tensor__":
        return [x]
    if isinstance(x, (list, tuple)):
        return [y for z in x for y in _leaves(z)]
    return []
"""


def test_configs_have_the_structure_keras_writes_for_the_same_program(tmp_path):
    # The full model's config is taken before ``mixed`` is made: Keras then gives its
    # Input ``a`` a second node, after which Keras cannot write the full model's config.
    script = "import json, keras\n" + SHAPE_OF_CONFIG + PROGRAM + "print(json.dumps(configs))"
    done = run_in_keras(script, tmp_path)
    assert done.returncode == 0, done.stderr
    want = json.loads(done.stdout.strip().splitlines()[-1])
    scope: dict = {"keras": keras}
    exec(SHAPE_OF_CONFIG + PROGRAM, scope)
    assert scope["configs"] == want


def test_from_config_and_files_rebuild_the_model_and_the_full_model_still_round_trips(tmp_path):
    t, full = two_branch()
    mixed = keras.Model([t["h"], t["a"]], [t["o"], t["x"]])
    h, a = RNG.normal(size=(3, 6)), RNG.normal(size=(3, 4))
    want = mixed.predict([h, a], verbose=0)
    again = keras.Model.from_config(mixed.get_config())
    assert [x.name for x in again.inputs] == ["hCLONE", "a"]
    again.set_weights(mixed.get_weights())
    for got, w in zip(again.predict([h, a], verbose=0), want):
        np.testing.assert_allclose(got, w, rtol=1e-6)
    for suffix in (".keras", ".kcmodel"):
        path = tmp_path / f"mixed{suffix}"
        mixed.save(path)
        loaded = keras.models.load_model(path)
        for got, w in zip(loaded.predict([h, a], verbose=0), want):
            np.testing.assert_allclose(got, w, rtol=1e-6)
    # The full model writes only its own calls of the layers it shares with the others.
    rebuilt = keras.Model.from_config(full.get_config())
    rebuilt.set_weights(full.get_weights())
    data = [RNG.normal(size=(3, 4)), RNG.normal(size=(3, 3))]
    np.testing.assert_allclose(
        rebuilt.predict(data, verbose=0), full.predict(data, verbose=0), rtol=1e-6
    )
