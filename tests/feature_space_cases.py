"""``keras.utils.FeatureSpace`` cases written once and run twice: by Keras 3.15.1 with
TensorFlow (its FeatureSpace needs tf.data; ``fixture_scripts/make_feature_space_fixtures.py``
stores the results in ``keras_fixtures/feature_space.json``) and by kcompile
(``tests/test_feature_space.py``). Each function takes the ``keras`` module it runs with."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

ROWS = 40  # more than 32: a dict is adapted in batches of 32, as Keras batches it


def table(rows: int = ROWS) -> dict[str, np.ndarray]:
    """A small table of floats, integers and strings, one column per feature."""
    rng = np.random.default_rng(7)
    return {
        "fl": rng.normal(size=rows).astype("float32"),
        "fr": rng.uniform(0, 10, rows).astype("float32"),
        "fn": rng.normal(5, 2, rows).astype("float32"),
        "fd": rng.uniform(-1, 1, rows).astype("float32"),
        "ic": rng.integers(0, 6, rows).astype("int64"),
        "ic0": rng.choice([3, 7, 11], rows).astype("int64"),
        "sc": rng.choice(["red", "green", "blue", "teal", "plum"], rows),
        "sh": rng.choice(["a", "bb", "ccc", "dddd"], rows),
        "ih": rng.integers(100, 120, rows).astype("int64"),
    }


def concat_space(keras):
    """Every feature type by name or constructor, three crosses, one vector out."""
    FS = keras.utils.FeatureSpace
    return FS(
        features={
            "fl": FS.float(),
            "fr": FS.float_rescaled(scale=0.1, offset=-1.0),
            "fn": "float_normalized",
            "fd": FS.float_discretized(num_bins=4),
            "ic": "integer_categorical",
            "ic0": FS.integer_categorical(num_oov_indices=0),
            "sc": FS.string_categorical(max_tokens=4),
            "sh": FS.string_hashed(num_bins=8),
            "ih": FS.integer_hashed(num_bins=6),
        },
        crosses=[("ic", "sc"), FS.cross(("fd", "sh"), crossing_dim=16), ("ih", "ic0")],
        output_mode="concat",
    )


def dict_space(keras):
    """Integer outputs next to one-hot ones, an integer cross, a dict out."""
    FS = keras.utils.FeatureSpace
    return FS(
        features={
            "ic": FS.integer_categorical(output_mode="int"),
            "sc": "string_categorical",
            "fn": "float_normalized",
            "sh": FS.string_hashed(num_bins=5, output_mode="int"),
            "fd": FS.float_discretized(num_bins=3, output_mode="int"),
            "fl": "float",
        },
        crosses=[FS.cross(("ic", "sc"), 8, output_mode="int"), FS.cross(("sh", "fd"), 4)],
        output_mode="dict",
    )


def named_space(keras):
    """Every feature type by its name alone (the defaults: 32 bins, 32 hashing bins)."""
    return keras.utils.FeatureSpace(
        features={
            "fl": "float",
            "fr": "float_rescaled",
            "fn": "float_normalized",
            "fd": "float_discretized",
            "ic": "integer_categorical",
            "sc": "string_categorical",
            "sh": "string_hashed",
            "ih": "integer_hashed",
        },
        crosses=[("fd", "ic")],
        crossing_dim=8,
        hashing_dim=4,
        num_discretization_bins=5,
    )


def custom_space(keras):
    """``FeatureSpace.feature`` with layers of one's own choosing that need no adapt."""
    FS = keras.utils.FeatureSpace
    L = keras.layers
    text = L.TextVectorization(vocabulary=["red", "blue", "teal"], output_sequence_length=2)
    return FS(
        features={
            "fn": FS.feature("float32", L.Normalization(mean=5.0, variance=4.0), "float"),
            "ic": FS.feature("int32", L.CategoryEncoding(6, output_mode="one_hot"), "float"),
            "sc": FS.feature("string", text, "int"),
            "ih": "integer_hashed",
        },
        output_mode="dict",
    )


SPACES: dict[str, Callable] = {
    "concat": concat_space,
    "dict": dict_space,
    "named": named_space,
    "custom": custom_space,
}


def pair(keras, a: str = "integer_categorical", b: str = "integer_categorical", **kwargs):
    return keras.utils.FeatureSpace(features={"f1": a, "f2": b}, **kwargs)


def _called_before_adapt(keras, data):
    pair(keras)({"f1": [0], "f2": [0]})


def _encoded_before_adapt(keras, data):
    pair(keras).get_encoded_features()


def _missing_column(keras, data):
    space = concat_space(keras)
    space.adapt(data)
    space({k: v for k, v in data.items() if k != "sc"})


def _extra_column(keras, data):
    space = dict_space(keras)
    space.adapt({k: data[k] for k in ("ic", "sc", "fn", "sh", "fd", "fl")})
    space(data)


def _not_a_dict(keras, data):
    space = dict_space(keras)
    space.adapt({k: data[k] for k in ("ic", "sc", "fn", "sh", "fd", "fl")})
    space([1, 2, 3])


def _adapt_a_list(keras, data):
    pair(keras).adapt([1, 2, 3])


def _three_way_cross(keras, data):
    space = keras.utils.FeatureSpace(
        features={"ic": "integer_categorical", "sh": "string_hashed", "ih": "integer_hashed"},
        crosses=[("ic", "sh", "ih")],
    )
    space.adapt({k: data[k] for k in ("ic", "sh", "ih")})


def _concat_of_ints(keras, data):
    FS = keras.utils.FeatureSpace
    space = FS(
        features={"ic": FS.integer_categorical(output_mode="int"), "fl": "float"},
        output_mode="concat",
    )
    space.adapt({k: data[k] for k in ("ic", "fl")})


def _one_hot_of_floats(keras, data):
    FS = keras.utils.FeatureSpace
    space = FS(
        features={
            "fn": FS.feature(
                dtype="float32", preprocessor=keras.layers.Normalization(), output_mode="one_hot"
            )
        }
    )
    space.adapt({"fn": data["fn"]})


def _one_hot_unknown_size(keras, data):
    FS = keras.utils.FeatureSpace
    space = FS(
        features={"fd": FS.float_discretized(num_bins=None, bin_boundaries=[0.0])},
        output_mode="concat",
    )
    space.adapt({"fd": data["fd"]})


ERRORS: dict[str, Callable] = {
    "no_features": lambda keras, data: keras.utils.FeatureSpace(features={}),
    "unknown_type": lambda keras, data: pair(keras, b="integer_categorcal"),
    "unknown_cross_feature": lambda keras, data: pair(keras, crosses=[("f1", "zzz")]),
    "no_crossing_dim": lambda keras, data: pair(keras, crosses=[("f1", "f2")], crossing_dim=None),
    "bad_output_mode": lambda keras, data: pair(keras, output_mode="tuple"),
    "bad_feature_output_mode": lambda keras, data: keras.utils.FeatureSpace.feature(
        "float32", keras.layers.Normalization(), "multi_hot"
    ),
    "bad_cross_output_mode": lambda keras, data: keras.utils.FeatureSpace.cross(
        ("f1", "f2"), 8, output_mode="float"
    ),
    "called_before_adapt": _called_before_adapt,
    "encoded_before_adapt": _encoded_before_adapt,
    "missing_column": _missing_column,
    "extra_column": _extra_column,
    "not_a_dict": _not_a_dict,
    "adapt_a_list": _adapt_a_list,
    "three_way_cross": _three_way_cross,
    "concat_of_ints": _concat_of_ints,
    "one_hot_of_floats": _one_hot_of_floats,
    "one_hot_unknown_size": _one_hot_unknown_size,
}


def error_of(keras, name: str, data: dict) -> dict:
    """The exception a case raises: its type and message."""
    try:
        ERRORS[name](keras, data)
    except Exception as e:  # the cases are bad input: each raises
        return {"type": type(e).__name__, "message": str(e)}
    return {"type": None, "message": ""}
