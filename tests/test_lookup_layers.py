"""StringLookup, IntegerLookup and TextVectorization: numpy on the host, before the
compiled step. Their results against Keras 3's own (``keras_fixtures/lookup_layers.json``,
made by ``make_keras_fixtures.py lookup``: Keras 3.15.1 on TensorFlow 2.21, which Keras's
lookup layers need), and as the first stage of a compiled model."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import kcompile as keras
from kcompile import layers
from tests.keras_lookup_cases import cases

FIXTURE = Path(__file__).resolve().parent / "keras_fixtures" / "lookup_layers.json"


def test_the_layers_give_kerass_vocabularies_ids_and_encodings():
    want = json.loads(FIXTURE.read_text())
    versions = want.pop("versions")
    got = cases(keras)
    assert set(got) == set(want)
    for key, value in want.items():
        if np.asarray(value, dtype=object).ravel()[:1].tolist() and isinstance(
            np.asarray(value, dtype=object).ravel()[0], str
        ):
            assert got[key] == value, f"{key} ({versions})"
        else:
            np.testing.assert_allclose(got[key], value, rtol=1e-5, err_msg=f"{key} ({versions})")


def test_invert_maps_ids_back_to_tokens():
    lookup = layers.StringLookup(vocabulary=["x", "y", "z"], invert=True)
    out = lookup(np.array([[1, 2], [3, 0], [7, 1]]))
    assert out.tolist() == [["x", "y"], ["z", "[UNK]"], ["[UNK]", "x"]]
    ints = layers.IntegerLookup(vocabulary=[10, 20], mask_token=0, invert=True)
    assert ints(np.array([0, 1, 2, 3])).tolist() == [0, -1, 10, 20]


def test_a_standardize_callable_gets_a_numpy_array_of_strings():
    seen = []

    def strip_html(texts):
        seen.append(type(texts))
        return np.char.replace(np.char.lower(texts), "<br />", " ")

    tv = layers.TextVectorization(standardize=strip_html, output_sequence_length=3)
    tv.adapt(np.array(["A<br />b", "b c"]))
    assert tv.get_vocabulary() == ["", "[UNK]", "b", "c", "a"]
    assert seen and all(t is np.ndarray for t in seen)


def test_adapt_takes_batches_from_a_generator():
    def batches():
        yield np.array([["a", "b"], ["b", "c"]])
        yield np.array([["b", "d"], ["a", "b"]])

    lookup = layers.StringLookup()
    lookup.adapt(batches())
    assert lookup.get_vocabulary() == ["[UNK]", "b", "a", "d", "c"]


@pytest.mark.parametrize(
    "make,message",
    [
        (lambda: layers.StringLookup(vocabulary=["a", "a"]), "repeated"),
        (lambda: layers.StringLookup(max_tokens=1), "max_tokens"),
        (lambda: layers.StringLookup(output_mode="binary", invert=True), "invert"),
        (
            lambda: layers.TextVectorization(output_mode="count", output_sequence_length=3),
            "output_sequence_length",
        ),
    ],
)
def test_bad_settings_are_refused(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_out_of_vocabulary_tokens_without_oov_indices_are_an_error():
    lookup = layers.StringLookup(vocabulary=["a"], num_oov_indices=0)
    with pytest.raises(ValueError, match="num_oov_indices=0"):
        lookup(np.array(["a", "zz"]))
    with pytest.raises(NotImplementedError, match="farmhash"):
        layers.StringLookup(vocabulary=["a"], num_oov_indices=2)(np.array(["b"]))


def _texts():
    texts = np.array(
        ["good movie, great!", "bad film; awful", "great acting good plot", "awful boring bad"]
    )
    return texts, np.array([1, 0, 1, 0], np.float32)


def _text_model(tv, ids_input):
    keras.utils.set_random_seed(2)
    h = layers.Embedding(20, 4, mask_zero=True)(tv(ids_input) if tv else ids_input)
    out = layers.Dense(1, activation="sigmoid")(layers.GlobalAveragePooling1D()(h))
    model = keras.Model(ids_input, out)
    model.compile(keras.optimizers.Adam(0.05), "binary_crossentropy", metrics=["accuracy"])
    return model


def test_a_model_with_text_input_runs_its_vectorizer_on_the_host():
    texts, y = _texts()
    tv = layers.TextVectorization(max_tokens=20, output_sequence_length=5)
    tv.adapt(texts)
    on_text = _text_model(tv, keras.Input((1,), dtype="string"))
    on_ids = _text_model(None, keras.Input((5,), dtype="int32"))
    on_ids.set_weights(on_text.get_weights())
    ids = tv(texts)
    np.testing.assert_array_equal(
        on_text.predict(texts[:, None], verbose=0), on_ids.predict(ids, verbose=0)
    )
    np.testing.assert_array_equal(on_text(texts[:, None]), on_ids.predict(ids, verbose=0))
    a = on_text.fit(texts[:, None], y, epochs=2, batch_size=2, verbose=0, shuffle=False)
    b = on_ids.fit(ids, y, epochs=2, batch_size=2, verbose=0, shuffle=False)
    assert a.history["loss"] == b.history["loss"]
    assert on_text.evaluate(texts[:, None], y, verbose=0) == on_ids.evaluate(ids, y, verbose=0)


def test_integer_lookup_in_a_model():
    lookup = layers.IntegerLookup(vocabulary=[7, 3, 100])
    codes = keras.Input((2,), dtype="int32")
    model = keras.Model(codes, layers.Embedding(4, 2)(lookup(codes)))
    table = model.layers[-1].embeddings.numpy()
    codes_in = np.array([[100, 5]], np.int32)
    out = model.predict(codes_in, verbose=0)
    np.testing.assert_array_equal(out[0], table[[3, 0]])  # 100 -> 3, 5 is out of vocabulary
    # the fast path of int32 arrays (found by the fuzzer) runs the host stage too
    np.testing.assert_array_equal(model.predict_on_batch(codes_in), out)


def test_host_layers_must_take_an_input_and_save_in_either_format(tmp_path):
    texts, _ = _texts()
    tv = layers.TextVectorization(max_tokens=20, output_sequence_length=5)
    tv.adapt(texts)
    text = keras.Input((1,), dtype="string")
    model = _text_model(tv, text)
    with pytest.raises(NotImplementedError, match="on the host"):
        model.export(str(tmp_path / "m.kc"))
    for name in ("m.keras", "m.kcmodel"):  # (.keras: the vocabulary as Keras's asset)
        model.save(str(tmp_path / name))
        again = keras.models.load_model(str(tmp_path / name))
        np.testing.assert_array_equal(
            again.predict(texts[:, None], verbose=0), model.predict(texts[:, None], verbose=0)
        )
    with pytest.raises(NotImplementedError, match="must take a model Input"):
        tv(layers.Dense(2)(keras.Input((3,))))
    unsized = layers.TextVectorization()
    unsized.adapt(texts)
    with pytest.raises(NotImplementedError, match="output_sequence_length"):
        unsized(keras.Input((1,), dtype="string"))
