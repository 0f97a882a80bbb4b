"""Inputs with unknown non-batch dimensions (``Input((None,))``, ``Input((None, 10))``):
shape inference marks what follows them unknown, and the steps are compiled for the
shapes of the data, once per shape (as XLA specializes), natively as on the reference."""

from __future__ import annotations

import numpy as np
import pytest

import kcompile as keras
from kcompile import layers, ops


def _token_classifier(backend: str = "llvm"):
    keras.utils.set_random_seed(7)
    inputs = keras.Input(shape=(None,), dtype="int32")
    x = layers.Embedding(50, 8)(inputs)
    x = layers.Conv1D(8, 3, padding="same", activation="relu")(x)
    x = layers.GlobalAveragePooling1D()(x)
    model = keras.Model(inputs, layers.Dense(2, activation="softmax")(x))
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"], backend=backend)
    return model


def _tokens(rng, n: int, length: int):
    x = rng.integers(0, 50, (n, length)).astype("int32")
    return x, (x[:, 0] > 25).astype("int32")


def test_unknown_dimensions_propagate_through_shape_inference():
    inputs = keras.Input(shape=(None, 6))
    conv = layers.Conv1D(4, 3)(inputs)
    pooled = layers.MaxPooling1D(2)(conv)
    summed = layers.LSTM(5, return_sequences=True)(pooled)
    last = layers.LSTM(3)(summed)
    assert inputs.shape == (None, None, 6)
    assert conv.shape == (None, None, 4)
    assert pooled.shape == (None, None, 4)
    assert summed.shape == (None, None, 5)
    assert last.shape == (None, 3)
    assert layers.GlobalMaxPooling1D()(conv).shape == (None, 4)


def test_a_layer_that_needs_the_unknown_dimension_says_so():
    inputs = keras.Input(shape=(None, 6))
    flat = layers.Flatten()(inputs)
    assert flat.shape == (None, None)
    with pytest.raises(ValueError, match="Dense 'head'.*last dimension.*known"):
        layers.Dense(3, name="head")(flat)


def test_steps_specialize_on_the_data_and_compile_again_for_new_shapes(rng):
    model = _token_classifier()
    x, y = _tokens(rng, 128, 20)
    model.fit(x, y, epochs=2, batch_size=32, verbose=0)
    longer, _ = _tokens(rng, 5, 33)
    assert model.predict(longer, verbose=0).shape == (5, 2)
    assert model.predict(x[:3], verbose=0).shape == (3, 2)
    shapes = sorted((kind, shapes) for kind, _, shapes, _ in model.compiled_steps.executables)
    assert shapes == [("predict", ((20,),)), ("predict", ((33,),)), ("train", ((20,),))]


def test_native_and_reference_agree_at_two_lengths(rng):
    results = []
    data = [_tokens(np.random.default_rng(1), 64, n) for n in (12, 17)]
    for backend in ("llvm", "reference"):
        model = _token_classifier(backend)
        out = []
        for x, y in data:
            model.fit(x, y, epochs=1, batch_size=16, shuffle=False, verbose=0)
            out.append(model.predict(x, verbose=0))
        out.append(model.evaluate(*data[0], verbose=0))
        results.append((out, model.get_weights()))
    for a, b in zip(results[0][0], results[1][0]):
        np.testing.assert_allclose(a, b, rtol=2e-4, atol=2e-5)
    for a, b in zip(results[0][1], results[1][1]):
        np.testing.assert_allclose(a, b, rtol=2e-4, atol=2e-5)


def test_a_recurrent_model_over_sequences_of_any_length(rng):
    keras.utils.set_random_seed(3)
    inputs = keras.Input(batch_shape=(None, None, 4))
    h = layers.LSTM(8)(inputs)
    model = keras.Model(inputs, layers.Dense(1)(h))
    model.compile(keras.optimizers.Adam(0.02), "mse")
    x = rng.normal(size=(96, 9, 4)).astype("float32")
    y = x[:, :, 0].sum(1, keepdims=True)
    history = model.fit(x, y, epochs=15, batch_size=32, verbose=0).history["loss"]
    assert history[-1] < 0.5 * history[0]
    short = rng.normal(size=(4, 3, 4)).astype("float32")
    reference = keras.Model(inputs, model.outputs)
    reference.compile("sgd", "mse", backend="reference")
    np.testing.assert_allclose(
        model.predict(short, verbose=0), reference.predict(short, verbose=0), rtol=1e-4, atol=1e-5
    )


class LengthNormalized(keras.layers.Layer):
    """Reads the sequence length inside ``call``: known there, as the data decides it."""

    def call(self, inputs):
        return ops.sum(inputs, axis=1) / ops.cast(ops.shape(inputs)[1], "float32")


def test_a_custom_layer_sees_the_length_of_the_data(rng):
    inputs = keras.Input((None, 3))
    model = keras.Model(inputs, LengthNormalized()(inputs))
    assert model.output_shape == (None, 3)
    model.compile("sgd", "mse")
    for length in (4, 11):
        x = rng.normal(size=(2, length, 3)).astype("float32")
        np.testing.assert_allclose(model.predict(x, verbose=0), x.mean(1), rtol=1e-5, atol=1e-6)


def test_data_of_the_wrong_fixed_dimension_is_refused(rng):
    model = _token_classifier()
    inputs = keras.Input((None, 6))
    other = keras.Model(inputs, layers.Dense(2)(inputs))
    other.compile("sgd", "mse")
    with pytest.raises(ValueError, match=r"expects arrays of shape \(None, None, 6\)"):
        other.predict(np.zeros((2, 5, 7), "float32"), verbose=0)
    assert model.predict(np.zeros((2, 1), "int32"), verbose=0).shape == (2, 2)


def test_the_ir_of_a_dynamic_model_needs_shapes():
    model = _token_classifier()
    with pytest.raises(ValueError, match="unknown dimension 1.*input_shapes=.*--input-shape"):
        model.step_graph("predict")
    graph = model.step_graph("train", input_shapes=((14,),))
    assert graph.input("input_layer").type.shape[1:] == (14,)


def test_export_of_a_dynamic_model_compiles_for_its_probe(tmp_path, rng):
    model = _token_classifier()
    with pytest.raises(ValueError, match="pass probe= data"):
        model.export(str(tmp_path / "m.kc"))
    x, _ = _tokens(rng, 8, 6)
    manifest = model.export(str(tmp_path / "m.kc"), probe=x)
    loaded = keras.load(str(tmp_path / "m.kc"))
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
    assert manifest["steps"]["predict"]["inputs"][0]["type"].endswith("N,6]")


def test_bidirectional_lstm_on_reviews_as_the_keras_example_writes_it():
    """keras-io's "Bidirectional LSTM on IMDB", in its own words (sizes shrunk), on
    reviews it makes: the label says whether "good" (id 1) outnumbers "bad" (id 2)."""
    max_features, maxlen = 40, 24
    rng = np.random.default_rng(0)
    reviews = rng.integers(3, max_features, (640, maxlen))
    marks = rng.random((640, maxlen))
    reviews[marks < 0.15] = 1
    reviews[(marks >= 0.15) & (marks < 0.3)] = 2
    labels = ((reviews == 1).sum(1) > (reviews == 2).sum(1)).astype("int32")
    x_train, y_train = reviews[:512], labels[:512]
    x_val, y_val = reviews[512:], labels[512:]

    keras.utils.set_random_seed(0)
    inputs = keras.Input(shape=(None,), dtype="int32")
    x = layers.Embedding(max_features, 16)(inputs)
    x = layers.Bidirectional(layers.LSTM(16, return_sequences=True))(x)
    x = layers.Bidirectional(layers.LSTM(16))(x)
    outputs = layers.Dense(1, activation="sigmoid")(x)
    model = keras.Model(inputs, outputs)
    model.compile(
        optimizer=keras.optimizers.Adam(0.01), loss="binary_crossentropy", metrics=["accuracy"]
    )
    model.fit(x_train, y_train, batch_size=32, epochs=6, validation_data=(x_val, y_val), verbose=0)
    assert model.evaluate(x_val, y_val, verbose=0)[1] > 0.8
    # Reviews of another length need no padding to the training length.
    short = x_val[:, -12:]
    agree = (model.predict(short, verbose=0)[:, 0] > 0.5) == (
        (short == 1).sum(1) > (short == 2).sum(1)
    )
    assert agree.mean() > 0.7


# A model file whose Input leaves its length unknown (the CLI needs --input-shape).
UNKNOWN_LENGTH_MODEL = (
    "import kcompile as keras\n"
    "from kcompile import layers\n"
    "def build_model():\n"
    "    i = keras.Input((None,), dtype='int32')\n"
    "    x = layers.GlobalAveragePooling1D()(layers.Embedding(10, 4)(i))\n"
    "    m = keras.Model(i, layers.Dense(2, activation='softmax')(x))\n"
    "    m.compile('adam', 'sparse_categorical_crossentropy')\n"
    "    return m\n"
)


def test_kcompile_ir_takes_the_shapes_of_unknown_dimensions(tmp_path, capsys):
    from kcompile.tools.cli import main

    source = tmp_path / "model.py"
    source.write_text(UNKNOWN_LENGTH_MODEL)
    with pytest.raises(SystemExit, match="--input-shape"):
        main(["ir", str(source), "--step", "predict"])
    assert main(["ir", str(source), "--step", "predict", "--input-shape", "7"]) == 0
    assert "i32[N,7]" in capsys.readouterr().out
