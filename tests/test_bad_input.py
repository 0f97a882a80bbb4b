"""Bad data gets a clear error naming the input, the value and its row, in compiled models
and loaded artifacts alike; empty and ragged data too; fit(epochs=0) is an empty History."""

from __future__ import annotations

import numpy as np
import pytest

import kcompile as keras
from kcompile import layers
from kcompile.ir.interpreter import FeedError
from tests.classifiers import dense_classifier

BAD_LABELS = [
    ([0, 1, 2, 3], "3 at row 3 is outside \\[0, 3\\)"),
    ([0, -1, 2, 1], "-1 at row 1 is outside"),
    ([0, 1, 2**30, 1], "1.07374e\\+09 at row 2 is outside"),
    ([0.0, 1.5, 2.0, 1.0], "expected whole numbers, got 1.5 at row 1"),
]


@pytest.fixture(params=["llvm", "reference"])
def classifier(request):
    model = dense_classifier(4, 5, seed=1)
    model.compile(
        loss="sparse_categorical_crossentropy",
        optimizer="sgd",
        metrics=["accuracy"],
        backend=request.param,
    )
    return model


@pytest.mark.parametrize("labels, message", BAD_LABELS)
def test_out_of_range_class_ids_are_refused(classifier, labels, message):
    x = np.zeros((4, 4), np.float32)
    y = np.array(labels)
    before = classifier.get_weights()
    for call in (
        lambda: classifier.fit(x, y, verbose=0),
        lambda: classifier.evaluate(x, y, verbose=0),
        lambda: classifier.train_on_batch(x, y),
        lambda: classifier.fit(x, y[::-1] * 0, validation_data=(x, y), verbose=0),
    ):
        with pytest.raises(FeedError, match=f"input 'y' \\(class ids.*{message}"):
            call()
    for a, b in zip(before, classifier.get_weights()):
        np.testing.assert_array_equal(a, b)  # refused before any step ran


def test_loaded_artifacts_refuse_them_too(tmp_path):
    model = dense_classifier(4, 5, seed=1)
    path = str(tmp_path / "m.kc")
    model.export(path)
    loaded = keras.load(path)
    x = np.zeros((4, 4), np.float32)
    for labels, message in BAD_LABELS[:3]:
        with pytest.raises(FeedError, match=message):
            loaded.fit(x, np.array(labels), verbose=0)
        with pytest.raises(FeedError, match=message):
            loaded.evaluate(x, np.array(labels), verbose=0)


def test_embedding_ids_out_of_range_are_an_error():
    model = keras.Sequential(
        [keras.Input(shape=(3,), dtype="int32"), layers.Embedding(5, 2), layers.Flatten()]
    )
    model.compile(optimizer="sgd", loss="mse")
    ok = np.array([[0, 1, 4]], np.int32)
    assert model.predict(ok, verbose=0).shape == (1, 6)
    for ids, message in (([[0, 1, 5]], "5 at row 0"), ([[0, -1, 1]], "-1 at row 0")):
        with pytest.raises(FeedError, match=f"ids looked up in layer 'embedding'.*{message}"):
            model.predict(np.array(ids, np.int32), verbose=0)
        model.predict_on_batch(ok)
        with pytest.raises(FeedError, match=message):
            model.predict_on_batch(np.array(ids, np.int32))  # the fast path checks too
        with pytest.raises(FeedError, match=message):
            model.fit(np.array(ids, np.int32), np.zeros((1, 6)), verbose=0)


def test_empty_data_is_an_error_and_zero_epochs_an_empty_history():
    model = dense_classifier(4, 5, seed=1)
    for call in (model.fit, model.evaluate):
        with pytest.raises(ValueError, match="no samples"):
            call(np.zeros((0, 4), np.float32), np.zeros(0, np.int32), verbose=0)
    history = model.fit(np.zeros((4, 4), np.float32), np.zeros(4, np.int32), epochs=0, verbose=0)
    assert history.history == {} and history.epoch == []


def test_ragged_lists_get_a_message():
    model = dense_classifier(4, 5, seed=1)
    with pytest.raises(ValueError, match="not one rectangular array"):
        model.fit([[1, 2, 3, 4], [1, 2]], [0, 1], verbose=0)


def test_ids_sliced_from_one_input_are_checked_per_use_not_as_a_whole():
    """Column 0 indexes a table of 20 rows, column 1 one of 5: a 12 in column 0 is valid
    (before, a slice passed the whole input to each bound check and refused it)."""
    import kcompile as keras
    from kcompile import layers

    ids = keras.Input((2,), dtype="int32")
    users = layers.Embedding(20, 2)(layers.Lambda(lambda t: t[:, 0])(ids))
    items = layers.Embedding(5, 2)(layers.Lambda(lambda t: t[:, 1])(ids))
    model = keras.Model(ids, layers.Dense(1)(layers.Concatenate()([users, items])))
    model.compile(optimizer="sgd", loss="mse")
    x = np.array([[12, 3], [19, 4]], "int32")
    model.fit(x, np.zeros((2, 1), "float32"), verbose=0)


def test_a_parameter_fed_by_value_is_copied_in_and_a_wrong_one_named():
    """A graph's ``param`` input fed per call without ``bind`` (as the reference
    interpreter takes it) gets a copy as its storage; one of the wrong shape is refused
    naming it (it failed inside the runtime with an AttributeError)."""
    from kcompile.ir import DType, Graph, TensorType
    from kcompile.ir import build as B
    from kcompile.ir.interpreter import interpret
    from kcompile.ir.types import BATCH
    from kcompile.runtime import make_executable

    g = Graph("fed_param")
    x = g.add_input("x", TensorType(DType.f32, (BATCH, 4)), "data")
    w = g.add_input("w", TensorType(DType.f32, (4, 3)), "param")
    g.set_outputs([("y", B.matmul(x, w))])
    exe = make_executable(g, "llvm")
    rng = np.random.default_rng(0)
    for _ in range(2):  # a second call copies into the storage the first made
        feeds = {"x": rng.normal(size=(5, 4)).astype(np.float32)}
        feeds["w"] = rng.normal(size=(4, 3)).astype(np.float32)
        np.testing.assert_allclose(exe(feeds)["y"], interpret(g, feeds)["y"], rtol=1e-5)
    with pytest.raises(FeedError, match="'w'"):
        make_executable(g, "llvm")({"x": feeds["x"], "w": np.ones((3, 4), np.float32)})
