"""Issue 26's preprocessing layers: ``Hashing`` and ``HashedCrossing`` give Keras's bins
bit for bit (the hashes against TensorFlow's own, ``keras_fixtures/hashing.json`` made by
``make_misc_layer_fixtures.py --hashing``), on data and as a model's host stage;
``CategoryEncoding`` and ``Discretization`` in compiled models; ``Pipeline``'s training
default; Keras's errors and configs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import kcompile as keras
from kcompile import layers
from kcompile.layers.preprocessing.string_hashing import fingerprint64, siphash24

HASHING = json.loads((Path(__file__).parent / "keras_fixtures" / "hashing.json").read_text())
BIG = 2**63 - 1


def test_fingerprint64_and_siphash_are_tensorflows():
    strings = [bytes.fromhex(h) for h in HASHING["strings_hex"]]
    assert len({len(s) for s in strings}) > 100  # every length branch of farmhash
    assert [fingerprint64(s) % BIG for s in strings] == HASHING["fingerprint_mod"]
    key = tuple(HASHING["siphash_key"])
    assert [siphash24(key, s) % BIG for s in strings] == HASHING["siphash_mod"]


@pytest.mark.parametrize("name", list(HASHING["hashing"]))
def test_hashing_gives_kerass_bins(name):
    case = HASHING["hashing"][name]
    data = case["input"]
    if name.startswith("floats"):
        data = np.array(data, "float32")
    elif name == "bools":
        data = np.array(data, bool)
    elif name.startswith("ints"):
        data = np.array(data, "int64")
    layer = layers.Hashing(**case["args"])
    out = layer(data)
    want = np.array(case["output"])
    assert out.shape == want.shape
    np.testing.assert_array_equal(out, want)
    assert out.dtype == (np.int64 if layer.output_mode == "int" else np.float32)
    again = layers.Hashing.from_config(layer.get_config())
    np.testing.assert_array_equal(again(data), want)


@pytest.mark.parametrize("name", list(HASHING["crossing"]))
def test_hashed_crossing_gives_kerass_bins(name):
    case = HASHING["crossing"][name]
    layer = layers.HashedCrossing(**case["args"])
    inputs = [np.array(x) for x in case["inputs"]]
    out = layer(inputs)
    np.testing.assert_array_equal(out, np.array(case["output"]))
    assert layers.HashedCrossing.from_config(layer.get_config()).get_config() == layer.get_config()


@pytest.mark.slow
def test_hashing_is_a_models_host_stage():
    words = np.array([["cat"], ["dog"], ["hello world"], ["a"]])
    case = HASHING["hashing"]["words_10"]
    want = dict(zip(case["input"], (v for v in case["output"])))
    inputs = keras.Input((1,), dtype="string")
    ids = layers.Hashing(10)(inputs)
    assert ids.shape == (None, 1)
    embedded = layers.Flatten()(layers.Embedding(10, 1, embeddings_initializer="ones")(ids))
    model = keras.Model(inputs, embedded)
    model.layers[2].set_weights([np.arange(10, dtype="float32")[:, None]])
    got = model.predict(words, verbose=0)[:, 0]
    np.testing.assert_array_equal(got, [want[w] for w in words[:, 0]])


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: layers.Hashing(0), "The `num_bins` for `Hashing` cannot be `None`"),
        (lambda: layers.Hashing(3, output_mode="bins"), "Invalid value for argument `output_mode`"),
        (lambda: layers.Hashing(3, sparse=True), "`sparse` may only be true if"),
        (lambda: layers.Hashing(3, salt="x"), "The `salt` argument for `Hashing`"),
        (lambda: layers.Hashing(3, dtype="float32"), "`dtype` should be an integer type"),
        (lambda: layers.HashedCrossing(3, output_mode="count"), "Unknown value for `output_mode`"),
        (lambda: layers.HashedCrossing(3)(np.array([1, 2])), "called on a list or tuple"),
        (lambda: layers.HashedCrossing(3)([np.array([1])]), "at least two inputs"),
        (
            lambda: layers.HashedCrossing(3)([np.ones((2, 2), "int64")] * 2),
            "should have shape `\\(\\)`, `\\(batch_size\\)` or `\\(batch_size, 1\\)`",
        ),
        (
            lambda: layers.HashedCrossing(3)([np.ones(2), np.ones(2)]),
            "integer or string dtype",
        ),
        (lambda: layers.CategoryEncoding(), "num_tokens must be set"),
        (lambda: layers.CategoryEncoding(0), "`num_tokens` must be >= 1"),
        (lambda: layers.CategoryEncoding(3, output_mode="int"), "Unknown arg for output_mode"),
        (
            lambda: layers.CategoryEncoding(3, "one_hot")(np.array([1]), count_weights=[1.0]),
            "`count_weights` is not used when `output_mode` is not `'count'`",
        ),
        (lambda: layers.Discretization(), "You need to set either `num_bins` or"),
        (
            lambda: layers.Discretization([0.0], num_bins=3),
            "Both `num_bins` and `bin_boundaries` should not be set",
        ),
        (lambda: layers.Discretization(num_bins=-1), "`num_bins` must be greater than or equal"),
        (lambda: layers.Discretization([0.0], output_mode="x"), "Unknown value for `output_mode`"),
        (
            lambda: layers.Discretization([0.0]).adapt(np.ones(3)),
            "Cannot adapt a Discretization layer that has been initialized with",
        ),
        (
            lambda: layers.Discretization(num_bins=3)(np.ones((2, 2), "float32")),
            "You need to either pass the `bin_boundaries` argument",
        ),
        (
            lambda: layers.Pipeline.from_config({"layers": None}),
            "`Pipeline` config must contain a `layers` key",
        ),
    ],
)
def test_kerass_errors(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_hashed_crossing_refuses_symbolic_inputs_with_its_reason():
    a, b = keras.Input((1,), dtype="int32"), keras.Input((1,), dtype="int32")
    with pytest.raises(NotImplementedError, match="host stage takes one model Input"):
        layers.HashedCrossing(5)([a, b])


@pytest.mark.slow
def test_category_encoding_count_weights_and_a_compiled_model(rng):
    ids = rng.integers(0, 6, (5, 4)).astype("int32")
    weights = rng.uniform(size=(5, 4)).astype("float32")
    out = layers.CategoryEncoding(6, "count")(ids, count_weights=weights)
    want = np.zeros((5, 6), "float32")
    for r in range(5):
        np.add.at(want[r], ids[r], weights[r])
    np.testing.assert_allclose(out, want, rtol=1e-6)
    inputs = keras.Input((4,), dtype="int32")
    model = keras.Model(inputs, layers.CategoryEncoding(6, "multi_hot")(inputs))
    found = []
    for backend in ("llvm", "reference"):
        model.compile("sgd", "mse", backend=backend)
        found.append(model.predict(ids, verbose=0))
    np.testing.assert_array_equal(found[0], found[1])
    np.testing.assert_array_equal(found[0], (want > 0).astype("float32"))


def test_discretization_matches_numpys_digitize_in_a_compiled_model(rng):
    x = rng.normal(size=(7, 5)).astype("float32")
    x[0, :3] = [-0.5, 0.0, 0.7]  # on the boundaries: numpy's right=False
    bounds = [-0.5, 0.0, 0.7]
    inputs = keras.Input((5,))
    model = keras.Model(inputs, layers.Discretization(bounds)(inputs))
    for backend in ("llvm", "reference"):
        model.compile("sgd", "mse", backend=backend)
        # the boundaries are float32, as in Keras: 0.7 is the input's own float32 0.7
        want = np.digitize(x, np.array(bounds, "float32"))
        np.testing.assert_array_equal(model.predict(x, verbose=0), want)
    layer = layers.Discretization(num_bins=4)
    layer.adapt(x)
    config = layer.get_config()
    again = layers.Discretization.from_config(config)
    assert again.bin_boundaries == layer.bin_boundaries and again.num_bins == 4


def test_pipeline_trains_on_data_by_default_and_not_in_predict(rng):
    x = np.ones((40, 50), "float32")
    pipeline = layers.Pipeline([layers.Identity(), layers.Dropout(0.5, seed=3)])
    out = pipeline(x)  # Keras's call(inputs, training=True)
    assert 0.3 < (out == 0).mean() < 0.7
    np.testing.assert_array_equal(pipeline(x, training=False), x)
    inputs = keras.Input((50,))
    model = keras.Model(inputs, pipeline(inputs))
    model.compile("sgd", "mse")
    np.testing.assert_array_equal(model.predict(x, verbose=0), x)
    assert pipeline.layers[1].rate == 0.5
    config = pipeline.get_config()
    assert [c["class_name"] for c in config["layers"]] == ["Identity", "Dropout"]
    again = layers.Pipeline.from_config(config)
    assert [type(layer).__name__ for layer in again.layers] == ["Identity", "Dropout"]


@pytest.mark.parametrize(
    ("args", "data", "want"),
    [
        (dict(num_bins=3), ["A", "B", "C", "D", "E"], [1, 0, 1, 1, 2]),
        (dict(num_bins=3, mask_value=""), ["A", "B", "", "C", "D"], [1, 1, 0, 2, 2]),
        (dict(num_bins=3, salt=[133, 137]), ["A", "B", "C", "D", "E"], [1, 2, 1, 0, 2]),
        (dict(num_bins=3, salt=133), ["A", "B", "C", "D", "E"], [0, 0, 2, 1, 0]),
    ],
)
def test_hashing_gives_the_numbers_of_kerass_docstring(args, data, want):
    out = layers.Hashing(**args)([[x] for x in data])
    np.testing.assert_array_equal(out, np.array(want)[:, None])


def test_category_encoding_and_discretization_give_kerass_docstring_numbers():
    one_hot = layers.CategoryEncoding(num_tokens=4, output_mode="one_hot")([3, 2, 0, 1])
    np.testing.assert_array_equal(one_hot, np.eye(4)[[3, 2, 0, 1]])
    data = [[0, 1], [0, 0], [1, 2], [3, 1]]
    multi = layers.CategoryEncoding(num_tokens=4, output_mode="multi_hot")(data)
    np.testing.assert_array_equal(multi, [[1, 1, 0, 0], [1, 0, 0, 0], [0, 1, 1, 0], [0, 1, 0, 1]])
    weights = np.array([[0.1, 0.2], [0.1, 0.1], [0.2, 0.3], [0.4, 0.2]])
    counts = layers.CategoryEncoding(num_tokens=4, output_mode="count")(data, count_weights=weights)
    np.testing.assert_allclose(
        counts,
        [[0.1, 0.2, 0, 0], [0.2, 0, 0, 0], [0, 0.2, 0.3, 0], [0, 0.2, 0, 0.4]],
        rtol=1e-6,
    )
    x = np.array([[-1.5, 1.0, 3.4, 0.5], [0.0, 3.0, 1.3, 0.0]])
    np.testing.assert_array_equal(
        layers.Discretization(bin_boundaries=[0.0, 1.0, 2.0])(x), [[0, 2, 3, 1], [1, 3, 2, 1]]
    )
    adapted = layers.Discretization(num_bins=4, epsilon=0.01)
    adapted.adapt(x)
    np.testing.assert_array_equal(adapted(x), [[0, 2, 3, 2], [1, 3, 3, 1]])
    crossing = layers.HashedCrossing(num_bins=5)
    feat1, feat2 = np.array(["A", "B", "A", "B", "A"]), np.array([101, 101, 101, 102, 102])
    np.testing.assert_array_equal(crossing((feat1, feat2)), [1, 4, 1, 1, 3])
    hot = layers.HashedCrossing(num_bins=5, output_mode="one_hot")((feat1, feat2))
    np.testing.assert_array_equal(hot, np.eye(5)[[1, 4, 1, 1, 3]])


def test_integer_images_through_crop_and_resize_as_keras():
    """Keras's CenterCrop casts images to its compute dtype (uint8 in, float32 out);
    its Resizing gives integer images back rounded (half to even) and saturated: for 8 -> 4
    bilinear, each pixel the rounded mean of a 2 x 2 block."""
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (2, 8, 8, 3)).astype(np.uint8)
    cropped = np.asarray(layers.CenterCrop(4, 4)(images))
    assert cropped.dtype == np.float32
    np.testing.assert_array_equal(cropped, images[:, 2:6, 2:6].astype(np.float32))
    inputs = keras.Input((8, 8, 3), dtype="uint8")
    model = keras.Model(inputs, layers.Resizing(4, 4)(inputs))
    got = model.predict(images, verbose=0)
    blocks = images.astype(np.float64).reshape(2, 4, 2, 4, 2, 3).mean(axis=(2, 4))
    assert got.dtype.kind == "i"  # (kcompile's integer data are int32)
    np.testing.assert_array_equal(got, np.round(blocks))
