"""Keras 3.15's small namespaces on kcompile: the top-level names, ``keras.backend``,
``keras.tree``, ``keras.config``, ``keras.random``, ``keras.initializers``,
``keras.regularizers`` and ``keras.constraints``. Expected values are what Keras 3.15.1
(JAX backend) printed for the same calls, or ``keras_fixtures/namespaces.npz`` (made by
``make_namespace_fixtures.py``), or numpy where Keras's documented math is numpy's."""

from __future__ import annotations

import subprocess
import sys
from collections import OrderedDict, namedtuple
from pathlib import Path

import numpy as np
import pytest

import kcompile as keras
from kcompile import tree

FIXTURE = np.load(Path(__file__).parent / "keras_fixtures" / "namespaces.npz")
P = namedtuple("P", "x y")

# --- top level ---------------------------------------------------------------------


def test_top_level_names_are_the_base_classes():
    from kcompile.backend.keras_tensor import KerasTensor
    from kcompile.layers.layer import Layer

    assert keras.Layer is Layer and keras.KerasTensor is KerasTensor
    assert keras.Loss is keras.losses.Loss and keras.Metric is keras.metrics.Metric
    assert keras.Optimizer is keras.optimizers.Optimizer
    assert keras.Initializer is keras.initializers.Initializer
    assert keras.Regularizer is keras.regularizers.Regularizer
    assert isinstance(keras.layers.Dense(2), keras.Layer)
    assert isinstance(keras.optimizers.Adam(), keras.Optimizer)
    assert isinstance(keras.Input((3,)), keras.KerasTensor)
    assert keras.version() == keras.__version__


@pytest.mark.parametrize("name", ["name_scope", "remat", "device"])
def test_refused_top_level_names_say_why(name):
    with pytest.raises(NotImplementedError, match=f"keras.{name} is not supported by kcompile"):
        getattr(keras, name)
    with pytest.raises(AttributeError):
        keras.no_such_name  # noqa: B018


def test_dtype_policies_are_offered():
    assert keras.FloatDTypePolicy("bfloat16").compute_dtype == "bfloat16"
    assert keras.mixed_precision.DTypePolicy is keras.dtype_policies.DTypePolicy


def test_variable_with_kerass_constructor():
    w = keras.Variable(initializer="ones", shape=(2, 3), name="w")
    assert (w.path, w.name, w.shape, w.dtype, w.trainable) == ("w", "w", (2, 3), "float32", True)
    np.testing.assert_array_equal(w.numpy(), np.ones((2, 3)))
    v = keras.Variable(np.arange(3.0), trainable=False)
    assert v.path.startswith("variable") and not v.trainable
    np.testing.assert_array_equal(keras.ops.add(v, 1.0), [1.0, 2.0, 3.0])
    v.assign(np.zeros(3))
    np.testing.assert_array_equal(v.numpy(), np.zeros(3))
    with pytest.raises(ValueError, match="needs a shape"):
        keras.Variable(initializer="zeros")
    with pytest.raises(NotImplementedError, match="float32"):
        keras.Variable(np.zeros(2), dtype="int32")


def test_import_kcompile_stays_light():
    # ml_dtypes 0.7 takes a second to import: loaded when a bfloat16 array is first made.
    code = (
        "import sys, kcompile; kcompile.version(); kcompile.backend.floatx(); "
        "heavy = ('llvmlite', 'networkx', 'ml_dtypes'); "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in heavy))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


# --- backend -----------------------------------------------------------------------


def test_backend_settings_and_dtypes():
    b = keras.backend
    assert (b.floatx(), b.epsilon(), b.image_data_format(), b.backend()) == (
        "float32",
        1e-7,
        "channels_last",
        "kcompile",
    )
    assert b.is_keras_tensor(keras.Input((2,))) and not b.is_keras_tensor(np.zeros(2))
    assert b.standardize_dtype(int) == "int32" and b.standardize_dtype(np.float64) == "float64"
    assert b.standardize_dtype(None) == "float32" and b.standardize_dtype("bool") == "bool"
    with pytest.raises(ValueError, match="Invalid dtype: float"):
        b.standardize_dtype("float")
    assert b.is_float_dtype("bfloat16") and not b.is_float_dtype("int8")
    assert b.is_int_dtype("uint8") and not b.is_int_dtype("float32")


@pytest.mark.parametrize(
    "dtypes, expected",  # Keras 3.15.1's results on the JAX backend
    [
        (("int32", "float32"), "float32"),
        (("bool", "int32"), "int32"),
        (("uint8", "int8"), "int16"),
        (("int32", "float16"), "float16"),
        (("int64", "float32"), "float32"),
        ((int, float), "float32"),
        (("int8", int), "int8"),
        (("bfloat16", int), "bfloat16"),
        (("float64",), "float32"),
        ((), "float32"),
    ],
)
def test_result_type_is_kerass_promotion(dtypes, expected):
    assert keras.backend.result_type(*dtypes) == expected


def test_get_uid_counts_with_layer_names():
    b = keras.backend
    b.clear_session()
    assert (b.get_uid("x"), b.get_uid("x"), b.get_uid("y")) == (1, 2, 1)
    keras.layers.Dense(2)  # named "dense"
    assert b.get_uid("dense") == 2
    b.clear_session(free_memory=True)
    assert b.get_uid("x") == 1
    assert keras.layers.Dense(2).name == "dense"


# --- tree --------------------------------------------------------------------------

NESTED = {"b": [1, (2, None)], "a": P(3, {"d": 4, "c": 5})}


def test_flatten_in_kerass_order():
    assert tree.flatten(NESTED) == [3, 5, 4, 1, 2, None]
    assert tree.flatten({"b": 2, "a": 3}) == [3, 2]
    assert tree.flatten(OrderedDict([("b", 1), ("a", 2)])) == [1, 2]
    assert tree.flatten(None) == [None] and tree.flatten(()) == []
    assert tree.flatten_with_path(NESTED) == [
        (("a", 0), 3),
        (("a", 1, "c"), 5),
        (("a", 1, "d"), 4),
        (("b", 0), 1),
        (("b", 1, 0), 2),
        (("b", 1, 1), None),
    ]


def test_pack_sequence_as_fills_dicts_in_sorted_key_order():
    assert tree.pack_sequence_as({"b": 0, "a": 0}, [1, 2]) == {"b": 2, "a": 1}
    assert list(tree.pack_sequence_as({"b": 0, "a": 0}, [1, 2])) == ["b", "a"]
    packed = tree.pack_sequence_as(NESTED, list(range(10, 16)))
    assert packed == {"b": [13, (14, 15)], "a": P(10, {"d": 12, "c": 11})}
    assert isinstance(packed["a"], P)
    od = tree.pack_sequence_as(OrderedDict([("b", 1), ("a", 2)]), [5, 6])
    assert od == OrderedDict([("b", 5), ("a", 6)]) and isinstance(od, OrderedDict)
    assert tree.pack_sequence_as(NESTED, tree.flatten(NESTED)) == NESTED
    with pytest.raises(ValueError, match="6 leaves but the flat sequence has 2"):
        tree.pack_sequence_as(NESTED, [1, 2])


def test_map_structure_and_its_variants():
    doubled = tree.map_structure(lambda a, b: (a or 0) + (b or 0), NESTED, NESTED)
    assert doubled == {"b": [2, (4, 0)], "a": P(6, {"d": 8, "c": 10})}
    assert tree.map_structure(lambda x: x, [None, 1], none_is_leaf=False) == [None, 1]
    with pytest.raises(ValueError):
        tree.map_structure(lambda a, b: a, [1, 2], (1, 2))
    up_to = tree.map_structure_up_to({"b": 0, "a": 0}, str, NESTED)
    assert up_to == {"b": "[1, (2, None)]", "a": "P(x=3, y={'d': 4, 'c': 5})"}
    assert tree.lists_to_tuples(NESTED) == {"b": (1, (2, None)), "a": P(3, {"d": 4, "c": 5})}
    shapes = tree.map_shape_structure(len, {"a": (None, 3), "b": [(1, 2), (4,)]})
    assert shapes == {"a": 2, "b": [2, 1]}


def test_traverse():
    def ints_times_ten(x):
        return x * 10 if isinstance(x, int) else None

    assert tree.traverse(ints_times_ten, [1, (2, {"a": 3})], top_down=False) == [
        10,
        (20, {"a": 30}),
    ]
    assert tree.traverse(lambda x: None, [1, [2]]) == [1, [2]]
    single = tree.traverse(lambda x: 0 if isinstance(x, list) and len(x) == 1 else None, [1, [2]])
    assert single == [1, 0]
    gone = tree.traverse(lambda x: tree.MAP_TO_NONE if x == 1 else None, [1, [2]])
    assert gone == [None, [2]]


@pytest.mark.parametrize(
    "a, b, same_structure, same_paths",  # Keras 3.15.1's answers
    [
        ([1, 2], (1, 2), False, True),
        ({"a": 1}, {"b": 1}, False, False),
        ([1, [2]], [1, 2], False, False),
        (P(1, 2), (1, 2), False, True),
        ({"a": 1, "b": [2]}, OrderedDict([("b", [3]), ("a", 4)]), True, True),
    ],
)
def test_structure_and_path_assertions(a, b, same_structure, same_paths):
    def holds(check):
        try:
            check(a, b)
        except ValueError:
            return False
        return True

    assert holds(tree.assert_same_structure) is same_structure
    assert holds(tree.assert_same_paths) is same_paths


def test_is_nested():
    assert tree.is_nested(P(1, 2)) and tree.is_nested(OrderedDict()) and tree.is_nested([])
    assert not tree.is_nested("ab") and not tree.is_nested(None)
    assert not tree.is_nested(np.zeros(2))


# --- config ------------------------------------------------------------------------


def test_max_epochs_and_steps_limit_fit_as_keras_does():
    """keras/src/trainers/trainer_test.py's test_max_epochs_and_steps: 4 epochs of 10
    batches become 2 epochs of 3 steps."""

    class Counter(keras.callbacks.Callback):
        epochs = batches = 0

        def on_epoch_begin(self, epoch, logs=None):
            self.epochs += 1

        def on_train_batch_begin(self, batch, logs=None):
            self.batches += 1

    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    model.compile(loss="mse", optimizer="sgd")
    x, y = np.ones((80, 4), "float32"), np.ones((80, 1), "float32")
    counter = Counter()
    model.fit(x, y, batch_size=8, epochs=4, callbacks=[counter], verbose=0)
    assert (counter.epochs, counter.batches) == (4, 40)
    try:
        keras.config.set_max_epochs(2)
        keras.config.set_max_steps_per_epoch(3)
        counter = Counter()
        with pytest.warns(UserWarning, match="Limiting epochs to 2"):
            model.fit(x, y, batch_size=8, epochs=4, callbacks=[counter], verbose=0)
        assert (counter.epochs, counter.batches) == (2, 6)
        assert model.predict(x, batch_size=8, verbose=0).shape == (24, 1)
    finally:
        keras.config.set_max_epochs(None)
        keras.config.set_max_steps_per_epoch(None)


def test_config_names():
    c = keras.config
    assert c.max_epochs() is None and c.max_steps_per_epoch() is None
    with pytest.raises(ValueError, match="set_max_epochs"):
        c.set_max_epochs(0)
    assert c.is_nnx_enabled() is False
    c.set_backend("kcompile")
    with pytest.raises(NotImplementedError, match="set_backend"):
        c.set_backend("jax")


# --- random ------------------------------------------------------------------------


def test_truncated_normal_eagerly():
    x = keras.random.truncated_normal((20000,), mean=1.0, stddev=2.0, seed=3)
    assert x.dtype == np.float32 and np.abs(x - 1.0).max() <= 4.0
    # a unit normal cut at ±2 has standard deviation 0.8796
    assert abs(x.mean() - 1.0) < 0.03 and abs(x.std() - 2 * 0.87962566) < 0.03


def test_categorical_eagerly():
    probs = np.array([[0.1, 0.6, 0.3], [0.5, 0.0, 0.5]])
    draws = keras.random.categorical(np.log(probs + 1e-12), 6000, seed=1)
    assert draws.shape == (2, 6000) and draws.dtype == np.int32
    for row, p in zip(draws, probs):
        np.testing.assert_allclose(np.bincount(row, minlength=3) / 6000, p, atol=0.025)


def test_shuffle_eagerly():
    x = np.arange(20).reshape(10, 2)
    y = keras.random.shuffle(x, seed=4)
    assert sorted(map(tuple, y)) == sorted(map(tuple, x)) and not np.array_equal(x, y)
    z = keras.random.shuffle(x, axis=1, seed=5)
    assert sorted(z[0]) == [0, 1]


@pytest.mark.parametrize(
    "draw, mean, var",
    [
        (lambda: keras.random.gamma((40000,), alpha=3.0, seed=1), 3.0, 3.0),
        (lambda: keras.random.beta((40000,), 2.0, 5.0, seed=2), 2 / 7, 10 / (49 * 8)),
        (lambda: keras.random.binomial((40000,), 10, 0.3, seed=3), 3.0, 2.1),
    ],
)
def test_distributions_have_their_moments(draw, mean, var):
    x = draw()
    assert x.dtype == np.float32
    assert abs(x.mean() - mean) < 0.02 * max(1.0, mean)
    assert abs(x.var() - var) < 0.05 * var


class _Draws(keras.layers.Layer):
    """A layer whose output is random draws, to see them traced and compiled."""

    def __init__(self, kind, **kwargs):
        super().__init__(**kwargs)
        self.kind = kind

    def call(self, x):
        if self.kind == "truncated_normal":
            return x + keras.random.truncated_normal(keras.ops.shape(x), stddev=2.0, seed=7)
        if self.kind == "binomial":
            p = keras.ops.linspace(0.0, 1.0, 512)  # a probability per column
            return x + keras.random.binomial(keras.ops.shape(x), 10, p, seed=7)
        return keras.ops.cast(keras.random.categorical(x, 512, seed=7), "float32")


@pytest.mark.parametrize("kind", ["truncated_normal", "categorical", "binomial"])
def test_traced_draws(kind):
    width = 3 if kind == "categorical" else 512
    inputs = keras.Input((width,))
    model = keras.Model(inputs, _Draws(kind)(inputs))
    model.compile("sgd", "mse")  # a compiled model's steps count the draws' iterations
    if kind == "binomial":
        x = model.predict(np.zeros((400, 512), np.float32), batch_size=400, verbose=0)
        p = np.linspace(0.0, 1.0, 512)
        assert set(np.unique(x)) <= set(range(11))
        assert np.abs(x.mean(axis=0) - 10 * p).max() < 0.6  # 5 standard errors at p = 1/2
        np.testing.assert_allclose(x.mean(), 5.0, atol=0.05)
        np.testing.assert_allclose(x.var(axis=0).mean(), np.mean(10 * p * (1 - p)), rtol=0.05)
    elif kind == "truncated_normal":
        x = model.predict(np.zeros((8, 512), np.float32), batch_size=8, verbose=0)
        assert np.abs(x).max() <= 4.0 + 1e-5
        assert abs(x.std() - 2 * 0.87962566) < 0.06 and abs(x.mean()) < 0.06
    else:
        logits = np.log(np.array([[0.2, 0.5, 0.3]] * 8, np.float32))
        x = model.predict(logits, batch_size=8, verbose=0)
        assert x.shape == (8, 512)
        counts = np.bincount(x.astype(int).ravel(), minlength=3) / x.size
        np.testing.assert_allclose(counts, [0.2, 0.5, 0.3], atol=0.03)


def test_traced_categorical_of_constant_logits():
    class Constant(keras.layers.Layer):
        def call(self, x):
            draws = keras.random.categorical(np.log([[0.5, 0.5]]), 4000, seed=2)
            return keras.ops.cast(draws, "float32") + keras.ops.sum(x) * 0.0

    inputs = keras.Input((1,))
    model = keras.Model(inputs, Constant()(inputs))
    model.compile("sgd", "mse")
    x = model.predict(np.zeros((1, 1)), verbose=0)
    assert x.shape == (1, 4000) and abs(x.mean() - 0.5) < 0.03


def test_random_refuses_what_it_cannot_trace():
    class Shuffled(keras.layers.Layer):
        def call(self, x):
            return keras.random.gamma((2,), 1.0) + x

    inputs = keras.Input((2,))
    with pytest.raises(NotImplementedError, match="keras.random.gamma inside a traced step"):
        model = keras.Model(inputs, Shuffled()(inputs))
        model.compile("sgd", "mse")
        model.predict(np.zeros((1, 2)), verbose=0)


# --- initializers ------------------------------------------------------------------


def test_initializer_aliases_are_the_classes():
    i = keras.initializers
    assert i.glorot_uniform is i.GlorotUniform and i.he_normal is i.HeNormal
    assert i.zeros is i.Zeros and i.orthogonal is i.Orthogonal is i.OrthogonalInitializer
    assert i.identity is i.Identity is i.IdentityInitializer
    assert isinstance(i.get("glorot_normal"), i.GlorotNormal)
    assert isinstance(i.get("GlorotNormal"), i.GlorotNormal)


def test_initializers_get_and_serialize_with_kerass_dicts():
    i = keras.initializers
    assert i.serialize(i.GlorotUniform(seed=3)) == {
        "module": "keras.initializers",
        "class_name": "GlorotUniform",
        "config": {"seed": 3, "input_axes": None, "output_axes": None},
        "registered_name": None,
    }
    got = i.get({"class_name": "RandomNormal", "config": {"stddev": 0.2}})
    assert isinstance(got, i.RandomNormal)
    assert got.get_config() == {"seed": None, "mean": 0.0, "stddev": 0.2}
    for init in (
        i.Orthogonal(gain=2.0, seed=1),
        i.Constant(3.0),
        i.VarianceScaling(2.0, "fan_out"),
    ):
        back = i.deserialize(i.serialize(init))
        assert type(back) is type(init) and back.get_config() == init.get_config()
    with pytest.raises(ValueError, match="could not deserialize initializer 'Nope'"):
        i.get({"class_name": "Nope", "config": {}})


def test_seeded_initializers_repeat_and_have_kerass_scale():
    i = keras.initializers
    a = i.GlorotUniform(seed=5)((300, 200))
    np.testing.assert_array_equal(a, i.GlorotUniform(seed=5)((300, 200)))
    limit = np.sqrt(6 / 500)
    assert np.abs(a).max() <= limit and abs(a.std() - limit / np.sqrt(3)) < 0.002


def test_orthogonal_and_identity():
    i = keras.initializers
    q = i.Orthogonal(gain=2.0, seed=0)((6, 4))
    np.testing.assert_allclose(q.T @ q, 4.0 * np.eye(4), atol=1e-5)
    wide = i.Orthogonal(seed=0)((3, 5))
    np.testing.assert_allclose(wide @ wide.T, np.eye(3), atol=1e-5)
    np.testing.assert_array_equal(i.Identity(gain=3.0)((2, 3)), 3.0 * np.eye(2, 3))


STFT_CASES = {
    "hann_density": ({"side": "real", "window": "hann", "scaling": "density"}, (8, 1, 5)),
    "hamming_spectrum_periodic": (
        {"side": "imag", "window": "hamming", "scaling": "spectrum", "periodic": True},
        (6, 1, 4),
    ),
    "no_window": ({"side": "real", "window": None}, (4, 1, 3)),
    "blackman": ({"side": "imag", "window": "blackman", "scaling": None}, (7, 1, 4)),
}


@pytest.mark.parametrize("name", sorted(STFT_CASES))
def test_stft_initializer_matches_keras(name):
    if name == "blackman":
        pytest.importorskip("scipy")
    config, shape = STFT_CASES[name]
    init = keras.initializers.get({"class_name": "STFT", "config": config})
    assert keras.initializers.stft is keras.initializers.STFTInitializer is type(init)
    np.testing.assert_allclose(init(shape), FIXTURE[f"stft/{name}"], rtol=1e-5, atol=1e-6)


# --- regularizers ------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["rows", "columns"])
def test_orthogonal_regularizer_matches_keras(mode):
    r = keras.regularizers.OrthogonalRegularizer(factor=0.3, mode=mode)
    got = r(FIXTURE["regularizer/w"])
    np.testing.assert_allclose(got, FIXTURE[f"regularizer/orthogonal_{mode}"], rtol=1e-5)


def test_orthogonal_regularizer_in_training():
    inputs = keras.Input((4,))
    dense = keras.layers.Dense(
        3, kernel_regularizer=keras.regularizers.orthogonal_regularizer(0.5, "columns")
    )
    model = keras.Model(inputs, dense(inputs))
    model.compile(optimizer="sgd", loss="mse")
    x, y = np.ones((2, 4), np.float32), np.zeros((2, 3), np.float32)
    kernel = dense.weights[0].numpy()
    mse = np.mean((x @ kernel + dense.weights[1].numpy() - y) ** 2)
    penalty = keras.regularizers.OrthogonalRegularizer(0.5, "columns")(kernel)
    np.testing.assert_allclose(model.evaluate(x, y, verbose=0), mse + penalty, rtol=1e-5)


def test_regularizers_serialize_and_get():
    r = keras.regularizers
    assert r.serialize(r.L2(0.1)) == {
        "module": "keras.regularizers",
        "class_name": "L2",
        "config": {"l2": 0.1},
        "registered_name": None,
    }
    got = r.get({"class_name": "L1L2", "config": {"l1": 0.1, "l2": 0.2}})
    assert isinstance(got, r.L1L2) and got.get_config() == {"l1": 0.1, "l2": 0.2}
    back = r.deserialize(r.serialize(r.OrthogonalRegularizer(0.2, "columns")))
    assert back.get_config() == {"factor": 0.2, "mode": "columns"}
    assert isinstance(r.get("orthogonal_regularizer"), r.OrthogonalRegularizer)
    with pytest.raises(ValueError, match="mode"):
        r.OrthogonalRegularizer(mode="diagonal")


# --- constraints -------------------------------------------------------------------

CONSTRAINTS = {
    "max_norm": lambda c: c.MaxNorm(max_value=1.5, axis=0),
    "max_norm_axes": lambda c: c.MaxNorm(max_value=2.0, axis=[0, 1]),
    "min_max_norm": lambda c: c.MinMaxNorm(0.5, 1.2, rate=0.7, axis=1),
    "min_max_norm_rate1": lambda c: c.MinMaxNorm(1.0, 3.0, axis=-1),
    "non_neg": lambda c: c.NonNeg(),
    "unit_norm": lambda c: c.UnitNorm(axis=0),
    "unit_norm_last": lambda c: c.UnitNorm(axis=-1),
}


@pytest.mark.parametrize("name", sorted(CONSTRAINTS))
def test_constraints_match_keras(name):
    got = CONSTRAINTS[name](keras.constraints)(FIXTURE["constraint/w"])
    np.testing.assert_allclose(got, FIXTURE[f"constraint/{name}"], rtol=1e-6, atol=1e-7)


def test_constraints_names_and_serialization():
    c = keras.constraints
    assert c.max_norm is c.MaxNorm and c.non_neg is c.NonNeg
    assert c.unit_norm is c.UnitNorm and c.min_max_norm is c.MinMaxNorm
    assert isinstance(c.get("non_neg"), c.NonNeg) and isinstance(c.get("MaxNorm"), c.MaxNorm)
    assert c.get(None) is None
    assert c.serialize(c.MaxNorm(3, axis=1)) == {
        "module": "keras.constraints",
        "class_name": "MaxNorm",
        "config": {"max_value": 3, "axis": 1},
        "registered_name": None,
    }
    back = c.get(c.serialize(c.MinMaxNorm(0.1, 2.0, 0.5, axis=-1)))
    assert back.get_config() == {"min_value": 0.1, "max_value": 2.0, "rate": 0.5, "axis": -1}
    w = np.array([-1.0, 2.0], np.float32)
    np.testing.assert_array_equal(c.Constraint()(w), w)
    with pytest.raises(ValueError, match="could not deserialize constraint"):
        c.get("no_such_constraint")


# --- distribution names --------------------------------------------------------------


def test_distribution_names():
    d = keras.distribution
    assert d.get_device_count() == len(d.list_devices()) == 1
    mesh = d.DeviceMesh((1,), ["batch"])
    assert mesh.shape == (1,) and mesh.axis_names == ["batch"] and mesh.devices == ["cpu:0"]
    with pytest.raises(ValueError, match="does not match the 1 devices"):
        d.DeviceMesh((2,), ["batch"])
    layouts = d.LayoutMap(mesh)
    layouts["dense.*kernel"] = (None, "batch")
    assert layouts["dense/kernel"].axes == (None, "batch") and layouts["conv/bias"] is None
    assert list(layouts) == ["dense.*kernel"] and len(layouts) == 1
    with pytest.raises(NotImplementedError, match="distribute_tensor is not supported"):
        d.distribute_tensor  # noqa: B018
    with pytest.raises(NotImplementedError, match="device_mesh"):
        d.DataParallel(device_mesh=mesh)
