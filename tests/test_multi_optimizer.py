"""Keras's ``MultiOptimizer`` and ``OptimizerMap``: training with one optimizer per group
of variables against Keras 3's numbers on the same weights and data
(``keras_fixtures/multi_optimizer.npz`` and ``multi_optimizer.keras``, made by
``fixture_scripts/make_multi_optimizer_fixtures.py`` with Keras 3.15.1), natively and on
the reference interpreter, in the built-in step and a user's own; their configs as
Keras writes them; the optimizer state in Keras's weights-file layout both ways; and
Keras's refusals of bad maps."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest

import kcompile as keras
from kcompile import optimizers
from kcompile.saving import saving_lib, serialization_lib
from tests.keras_oracle import run_in_keras
from tests.multi_optimizer_programs import PROGRAMS, data, mapped_optimizer, model

FIXTURES_DIR = Path(__file__).parent / "keras_fixtures"
FIXTURES = np.load(FIXTURES_DIR / "multi_optimizer.npz")
KERAS_FILE = FIXTURES_DIR / "multi_optimizer.keras"


def _want(name: str) -> dict[str, np.ndarray]:
    prefix = f"{name}/"
    return {k[len(prefix) :]: FIXTURES[k] for k in FIXTURES.files if k.startswith(prefix)}


def _assert_trained_as_keras(got: dict, want: dict) -> None:
    assert set(got) == set(want)
    assert got["iterations"] == want["iterations"]
    np.testing.assert_array_equal(got["inner_iterations"], want["inner_iterations"])
    np.testing.assert_allclose(got["losses"], want["losses"], rtol=1e-5)
    for key in sorted(k for k in want if k.startswith("w")):
        np.testing.assert_allclose(got[key], want[key], rtol=0, atol=2e-6, err_msg=key)


@pytest.mark.parametrize("backend", ["llvm", "reference"])
@pytest.mark.parametrize("name", sorted(PROGRAMS))
def test_training_matches_keras(name, backend):
    """Six steps of each program: the weights, losses and every iteration count as
    Keras's, compiled and on the reference interpreter."""
    trained, got = PROGRAMS[name](keras, backend)
    assert isinstance(trained.optimizer, optimizers.MultiOptimizer)
    _assert_trained_as_keras(got, _want(name))


def _own_step_model(stateless: bool):
    class Stateful(keras.Model):
        def train_step(self, batch):
            x, y = batch
            with keras.GradientTape() as tape:
                loss = self.compute_loss(y=y, y_pred=self(x, training=True))
            grads = tape.gradient(loss, self.trainable_variables)
            self.optimizer.apply(grads, self.trainable_variables)
            return {"loss": loss}

    class Stateless(keras.Model):
        def train_step(self, state, batch):
            trainable, non_trainable, optimizer_variables, _ = state
            x, y = batch

            def loss_of(values):
                y_pred, after = self.stateless_call(values, non_trainable, x, training=True)
                return self.compute_loss(x, y, y_pred), after

            (loss, non_trainable), grads = keras.value_and_grad(loss_of, has_aux=True)(trainable)
            trainable, optimizer_variables = self.optimizer.stateless_apply(
                optimizer_variables, grads, trainable
            )
            return {"loss": loss}, (trainable, non_trainable, optimizer_variables, [])

    plain = model(keras)
    own = (Stateless if stateless else Stateful)(plain.inputs, plain.outputs)
    own.set_weights(plain.get_weights())
    return own


@pytest.mark.parametrize("stateless", [False, True], ids=["apply", "stateless_apply"])
def test_a_users_train_step_updates_as_keras(stateless):
    """``optimizer.apply`` and JAX's ``stateless_apply`` in a user's train_step give the
    built-in step's (Keras's) weights and counts."""
    own = _own_step_model(stateless)
    opt = mapped_optimizer(keras)
    own.compile(optimizer=opt, loss="mse")
    x, y = data()
    own.fit(x, y, epochs=3, batch_size=4, shuffle=False, verbose=0)
    want = _want("mapped")
    assert opt.iterations == want["iterations"]
    assert [o.iterations for o in opt.optimizers] == list(want["inner_iterations"])
    for k, w in enumerate(own.get_weights()):
        np.testing.assert_allclose(w, want[f"w{k}"], rtol=0, atol=2e-6)


# --- Keras's weights-file layout ------------------------------------------------------------


def _keras_file_groups(path: Path) -> dict[str, tuple[str, list[np.ndarray]]]:
    """A .keras file's optimizer groups: path -> (name attribute, arrays in order)."""
    h5py = pytest.importorskip("h5py")
    with zipfile.ZipFile(path) as archive:
        data_file = io.BytesIO(archive.read("model.weights.h5"))
    groups = {}
    with h5py.File(data_file, "r") as f:

        def visit(name, obj):
            if isinstance(obj, h5py.Group) and name.endswith("vars"):
                arrays = [np.asarray(obj[str(i)]) for i in range(len(obj))]
                groups[f"optimizer/{name}"] = (obj.attrs["name"], arrays)

        f["optimizer"].visititems(visit)
    return groups


def _assert_same_groups(ours: list, theirs: dict, atol: float) -> None:
    assert {path for path, _, _ in ours} == set(theirs)
    for path, name, arrays in ours:
        their_name, their_arrays = theirs[path]
        assert name == their_name, path
        assert len(arrays) == len(their_arrays), path
        for i, (a, b) in enumerate(zip(arrays, their_arrays)):
            a = np.asarray(a)
            assert (a.shape, a.dtype) == (b.shape, b.dtype), f"{path}/{i}"
            np.testing.assert_allclose(a, b, rtol=0, atol=atol, err_msg=f"{path}/{i}")


@pytest.fixture(scope="module")
def trained():
    """The ``mapped`` program's model after its six steps (read, not trained further),
    its optimizers named as in Keras's fresh process (adam, sgd, multi_optimizer)."""
    keras.backend.clear_session()
    return PROGRAMS["mapped"](keras, "llvm")[0]


def test_trained_state_is_written_as_keras_writes_it(trained):
    """After the same six steps, the groups kcompile writes (each inner optimizer's under
    ``optimizer/optimizers/<class>``, all of them under ``optimizer/vars``) hold Keras's
    names, shapes, dtypes and values."""
    theirs = _keras_file_groups(KERAS_FILE)
    _assert_same_groups(trained.optimizer.keras_groups(), theirs, atol=2e-6)
    every = theirs["optimizer/vars"][1]
    assert len(trained.optimizer.variables) == len(every)
    sizes = [np.asarray(a).size for a in trained.optimizer.variables]
    assert sizes == [a.size for a in every]


def test_keras_state_is_restored_where_keras_keeps_it():
    """Keras's arrays restored into a new MultiOptimizer: each count, and each slot
    where Keras's layout puts it (Adam's first momentum is its third variable); written
    again, the same groups, exactly."""
    fresh = model(keras)
    opt = mapped_optimizer(keras)
    fresh.compile(optimizer=opt, loss="mse")
    theirs = _keras_file_groups(KERAS_FILE)
    opt.restore_keras_arrays(fresh, theirs["optimizer/vars"][1])
    want = _want("mapped")
    assert opt.iterations == want["iterations"]
    assert [o.iterations for o in opt.optimizers] == list(want["inner_iterations"])
    adam = opt.optimizers[0]
    kernel = fresh.get_layer("enc").kernel
    momentum = adam.slots[opt.slot_path(kernel, "momentum")]
    np.testing.assert_array_equal(momentum, theirs["optimizer/optimizers/adam/vars"][1][2])
    renamed = {  # the new optimizers' own names (adam_1, ...) are their groups' names
        path: (name, theirs[path][1]) for path, name, _ in opt.keras_groups()
    }
    _assert_same_groups(opt.keras_groups(), renamed, atol=0)


def test_a_state_of_another_size_is_skipped_with_keras_warning():
    fresh = model(keras)
    opt = mapped_optimizer(keras)
    fresh.compile(optimizer=opt, loss="mse")
    arrays = _keras_file_groups(KERAS_FILE)["optimizer/vars"][1]
    with pytest.warns(UserWarning, match=f"Skipping variable loading for optimizer '{opt.name}'"):
        opt.restore_keras_arrays(fresh, arrays[:-1])
    assert opt.iterations == 0
    assert all(not np.any(a) for a in opt.optimizers[1].slots.values())


KERAS_RESUMES = """
import sys
import numpy as np
import keras
sys.path.insert(0, sys.argv[1])
from multi_optimizer_programs import model, data, mapped_optimizer
built = model(keras)
built.compile(optimizer=mapped_optimizer(keras), loss="mse")
built.optimizer.build(built.trainable_variables)
built.load_weights(sys.argv[2])
x, y = data()
built.fit(x, y, epochs=1, batch_size=4, shuffle=False, verbose=0)
opt = built.optimizer
np.savez(sys.argv[3], *built.get_weights(), iterations=int(opt.iterations),
         inner=[int(o.iterations) for o in opt.optimizers])
"""


@pytest.mark.slow  # a Keras process: 10 s of JAX and Keras imports and a jit
def test_keras_resumes_training_from_kcompiles_state(tmp_path):
    """Keras loads the weights file kcompile writes (the model's groups, then the
    optimizer's) without a warning and trains on from it as kcompile does: the same
    weights and counts after one more epoch."""
    h5py = pytest.importorskip("h5py")
    trained, _ = PROGRAMS["mapped"](keras, "llvm")
    path = tmp_path / "resume.weights.h5"
    bare = model(keras)  # no optimizer: the model's own groups
    bare.set_weights(trained.get_weights())
    saving_lib.write_weights(bare, path)
    with h5py.File(path, "a") as f:
        for group_path, name, arrays in trained.optimizer.keras_groups():
            group = f.require_group(group_path)
            group.attrs["name"] = name
            for i, array in enumerate(arrays):
                saving_lib.write_array(group, str(i), np.asarray(array))
    x, y = data()
    trained.fit(x, y, epochs=1, batch_size=4, shuffle=False, verbose=0)
    tests_dir = str(Path(__file__).parent)
    out = tmp_path / "keras.npz"
    done = run_in_keras(KERAS_RESUMES, tmp_path, tests_dir, str(path), str(out))
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Skipping variable loading" not in done.stderr
    theirs = np.load(out)
    assert int(theirs["iterations"]) == trained.optimizer.iterations == 8
    assert list(theirs["inner"]) == [o.iterations for o in trained.optimizer.optimizers]
    for k, w in enumerate(trained.get_weights()):
        np.testing.assert_allclose(w, theirs[f"arr_{k}"], rtol=0, atol=2e-6)


def test_keras_file_loads_with_its_optimizer_state():
    loaded = keras.saving.load_model(KERAS_FILE)
    assert loaded.optimizer.iterations == _want("mapped")["iterations"]
    assert [o.iterations for o in loaded.optimizer.optimizers] == list(
        _want("mapped")["inner_iterations"]
    )


def test_a_saved_model_carries_its_optimizer_state(trained, tmp_path):
    trained.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    assert loaded.optimizer.iterations == trained.optimizer.iterations
    for mine, theirs in zip(trained.optimizer.variables, loaded.optimizer.variables):
        np.testing.assert_array_equal(np.asarray(mine), np.asarray(theirs))


# --- configs ---------------------------------------------------------------------------------


def _keras_optimizer_config() -> dict:
    with zipfile.ZipFile(KERAS_FILE) as archive:
        config = json.loads(archive.read("config.json"))
    return config["compile_config"]["optimizer"]


def test_keras_config_makes_the_same_optimizers_and_config():
    """Keras's config of a MultiOptimizer over an OptimizerMap makes its optimizers, each
    for the variables Keras gives it, and serializes back to the same dict."""
    theirs = _keras_optimizer_config()
    opt = optimizers.deserialize(theirs)
    assert isinstance(opt, optimizers.MultiOptimizer)
    assert [type(o).__name__ for o in opt.optimizers] == ["Adam", "SGD"]
    assert optimizers.serialize(opt) == theirs
    assert serialization_lib.serialize_keras_object(opt) == theirs
    again = optimizers.MultiOptimizer.from_config(opt.get_config())
    assert again.get_config() == opt.get_config()
    built = model(keras)
    opt.build(built.trainable_weights)
    owners = {v.path: type(opt.owner(v)).__name__ for v in built.trainable_weights}
    assert owners == {
        "enc/kernel": "Adam",
        "enc/bias": "Adam",
        "dec/kernel": "SGD",
        "dec/bias": "SGD",
    }
    mapping = optimizers.deserialize(theirs["config"]["optimizer_map"])
    assert isinstance(mapping, optimizers.OptimizerMap)
    assert serialization_lib.serialize_keras_object(mapping) == theirs["config"]["optimizer_map"]


def test_compiled_model_config_round_trips():
    """``get_compile_config`` and ``compile_from_config`` carry the MultiOptimizer."""
    trained = model(keras)
    trained.compile(optimizer=mapped_optimizer(keras), loss="mse")
    config = trained.get_compile_config()
    again = model(keras)
    again.compile_from_config(config)
    assert isinstance(again.optimizer, optimizers.MultiOptimizer)
    assert again.optimizer.get_config() == trained.optimizer.get_config()


def choose_by_kind(variable):
    return _CHOSEN["kernel" if variable.path.endswith("kernel") else "bias"]


_CHOSEN: dict = {}


def test_a_function_map_is_written_by_name_and_found_in_custom_objects():
    """A function map is written as Keras writes one (by its name); its config makes it
    again with the function passed in ``custom_objects``."""
    opt = optimizers.MultiOptimizer(choose_by_kind, loss_scale_factor=2.0)
    config = optimizers.serialize(opt)
    assert config["config"]["optimizer_map"] == {
        "module": "builtins",
        "class_name": "function",
        "config": "choose_by_kind",
        "registered_name": "function",
    }
    again = optimizers.deserialize(config, custom_objects={"choose_by_kind": choose_by_kind})
    assert again.get_config() == opt.get_config()
    assert again.loss_scale_factor == 2.0


# --- what Keras's MultiOptimizer offers ------------------------------------------------------


def test_inner_optimizers_in_keras_order_and_variables():
    """The map's optimizers as first met, then the default one (unused here, yet its
    count and rate among the variables, as Keras's); one a function gives joins at build."""
    adam, rms, default = optimizers.Adam(), optimizers.RMSprop(), optimizers.SGD()
    mapping = optimizers.OptimizerMap(default, {"enc/.*": adam, "dec/.*": rms})
    opt = optimizers.MultiOptimizer(mapping)
    assert opt.optimizers == [adam, rms, default]
    built = model(keras)
    opt.build(built.trainable_weights)
    assert adam.built and rms.built and not default.built
    assert len(opt.variables) == 2 + (2 + 4) + (2 + 2) + 2
    assert opt.variables_of(rms) == [built.get_layer("dec").kernel, built.get_layer("dec").bias]
    late = optimizers.Lion()
    by_function = optimizers.MultiOptimizer(lambda v: late if "enc" in v.path else adam)
    assert by_function.optimizers == []
    by_function.build(built.trainable_weights)
    assert by_function.optimizers == [late, adam]


def test_optimizer_map_matches_whole_paths_exactly_first():
    adam, sgd, rms = optimizers.Adam(), optimizers.SGD(), optimizers.RMSprop()
    mapping = optimizers.OptimizerMap(default_optimizer=rms)
    mapping["encoder/layer_0/dense"] = adam
    mapping["encoder/.*"] = sgd
    mapping["decoder"] = adam
    assert mapping["decoder"] is adam
    assert mapping["encoder/layer_0/dense"] is adam  # exact, though the pattern matches
    assert mapping["encoder/layer_0/attention/query"] is sgd
    assert mapping["decoder/layer_0/dense"] is rms  # "decoder" matches whole paths only
    assert len(mapping) == 3 and list(mapping) == ["encoder/layer_0/dense", "encoder/.*", "decoder"]
    del mapping["decoder"]
    assert mapping["decoder"] is rms and mapping.default_optimizer is rms


def test_learning_rate_is_each_inner_optimizers():
    opt = mapped_optimizer(keras)
    with pytest.raises(AttributeError, match="cannot be accessed on a MultiOptimizer"):
        opt.learning_rate  # noqa: B018
    with pytest.raises(AttributeError, match="cannot be set on a MultiOptimizer"):
        opt.learning_rate = 0.1


def test_loss_scale_factor_overrides_the_inner_optimizers():
    inner = optimizers.SGD(loss_scale_factor=4.0)
    opt = optimizers.MultiOptimizer(optimizers.OptimizerMap(inner), loss_scale_factor=8.0)
    assert inner.loss_scale_factor == 8.0
    opt.loss_scale_factor = None
    assert inner.loss_scale_factor is None and opt.loss_scale_factor is None


def test_set_weights_takes_the_variables_back():
    built = model(keras)
    opt = mapped_optimizer(keras)
    with pytest.raises(ValueError, match="has not yet been built"):
        opt.set_weights([])
    opt.build(built.trainable_weights)
    values = [np.asarray(v) + 1 for v in opt.variables]
    opt.set_weights(values)
    for got, want in zip(opt.variables, values):
        np.testing.assert_array_equal(np.asarray(got), want.astype(np.asarray(got).dtype))
    assert opt.optimizers[0].learning_rate == pytest.approx(1.02)
    with pytest.raises(ValueError, match="expected 12 arrays"):
        opt.set_weights(values[:-1])


def _two_patterns():
    mapping = optimizers.OptimizerMap(optimizers.SGD(), {"enc/.*": optimizers.Adam()})
    mapping["en.*"] = optimizers.Adam()
    return optimizers.MultiOptimizer(mapping)


@pytest.mark.parametrize(
    "make, error, message",
    [
        (lambda: optimizers.OptimizerMap("sgd"), TypeError, "default_optimizer must be"),
        (lambda: optimizers.OptimizerMap(optimizers.SGD(), [1]), TypeError, "must be a dict"),
        (lambda: optimizers.MultiOptimizer(3), TypeError, "OptimizerMap or a function"),
        (
            lambda: optimizers.MultiOptimizer(mapped_optimizer(keras), name="m", learning_rate=1),
            TypeError,
            "learning_rate",
        ),
    ],
)
def test_bad_arguments_are_refused(make, error, message):
    with pytest.raises(error, match=message):
        make()


@pytest.mark.parametrize(
    "key, value, message",
    [
        ("enc/.*", optimizers.Adam(), "'enc/.*' already exists in the OptimizerMap"),
        (3, optimizers.Adam(), "key must be a string"),
        ("dec", 3, "optimizer must be a Keras Optimizer instance"),
        ("dec", optimizers.LossScaleOptimizer(optimizers.SGD()), "cannot be LossScaleOpt"),
        ("dec", optimizers.MultiOptimizer(optimizers.OptimizerMap(optimizers.SGD())), "cannot"),
    ],
)
def test_a_bad_map_entry_is_refused(key, value, message):
    mapping = optimizers.OptimizerMap(optimizers.SGD(), {"enc/.*": optimizers.Adam()})
    with pytest.raises(ValueError, match=message):
        mapping[key] = value


@pytest.mark.parametrize(
    "make, message",
    [
        (_two_patterns, "Multiple optimizers assigned to variable enc/kernel"),
        (lambda: optimizers.MultiOptimizer(lambda v: None), "is not an Optimizer instance"),
        (
            lambda: optimizers.MultiOptimizer(
                lambda v: optimizers.LossScaleOptimizer(optimizers.SGD())
            ),
            "LossScaleOptimizer cannot be used inside an MultiOptimizer",
        ),
        (
            lambda: optimizers.MultiOptimizer(lambda v: mapped_optimizer(keras)),
            "MultiOptimizer cannot be used inside an MultiOptimizer",
        ),
        (
            lambda: optimizers.MultiOptimizer(
                optimizers.OptimizerMap(
                    optimizers.SGD(name="x"), {"enc/.*": optimizers.Adam(name="x")}
                )
            ),
            "two of its optimizers are named 'x'",
        ),
    ],
)
def test_a_variable_without_one_optimizer_is_refused_at_build(make, message):
    built = model(keras)
    with pytest.raises(ValueError, match=message):
        make().build(built.trainable_weights)


def test_fit_refuses_an_ambiguous_map_naming_the_variable():
    built = model(keras)
    built.compile(optimizer=_two_patterns(), loss="mse")
    x, y = data()
    with pytest.raises(ValueError, match="Multiple optimizers assigned to variable enc/kernel"):
        built.fit(x, y, epochs=1, batch_size=4, verbose=0)
