"""fit / evaluate / predict and the callbacks, with Keras's semantics."""

from __future__ import annotations

import os
import re

import numpy as np
import pytest

import kcompile as keras
from kcompile import callbacks, layers, optimizers


def classifier(optimizer="adam", metrics=("accuracy",), dropout=0.0):
    stack = [keras.Input(shape=(6,)), layers.Dense(16, activation="relu")]
    if dropout:
        stack.append(layers.Dropout(dropout))
    stack.append(layers.Dense(3, activation="softmax"))
    model = keras.Sequential(stack)
    model.compile(
        optimizer=optimizer, loss="sparse_categorical_crossentropy", metrics=list(metrics)
    )
    return model


@pytest.fixture
def blobs(rng):
    centers = rng.normal(size=(3, 6)) * 3
    y = rng.integers(0, 3, size=200)
    x = centers[y] + rng.normal(size=(200, 6))
    return x, y


def test_fit_learns_and_returns_history(blobs, capsys):
    x, y = blobs
    model = classifier()
    history = model.fit(x, y, epochs=3, batch_size=16, verbose=0)
    assert history is model.history
    assert list(history.history) == ["accuracy", "loss"]
    assert history.epoch == [0, 1, 2]
    assert history.history["loss"][-1] < history.history["loss"][0]
    assert model.evaluate(x, y, verbose=0)[1] > 0.9
    assert capsys.readouterr().out == ""


def test_progress_bar_lines(blobs, capsys):
    x, y = blobs
    model = classifier()
    model.fit(x, y, epochs=2, batch_size=64, verbose=1, validation_split=0.25)
    out = capsys.readouterr().out
    assert "Epoch 1/2\n" in out and "Epoch 2/2\n" in out
    finals = [line.split("\r")[-1] for line in out.split("\n") if "━" in line]
    assert len(finals) == 2
    pattern = (
        r"3/3 ━{20} \d+s \d+(ms|us|s)/step - accuracy: \d\.\d{4} - loss: \d\.\d{4}"
        r" - val_accuracy: \d\.\d{4} - val_loss: \d\.\d{4}"
    )
    for line in finals:
        assert re.fullmatch(pattern, line.rstrip()), line


def test_single_epoch_prints_no_epoch_header_and_verbose_2_prints_one_line(blobs, capsys):
    x, y = blobs
    model = classifier()
    model.fit(x, y, epochs=1, batch_size=50, verbose=2)
    out = capsys.readouterr().out
    assert "Epoch" not in out
    assert re.fullmatch(
        r"4/4 - \d+s - \d+(ms|us|s)/step - accuracy: \d\.\d{4} - loss: "
        r"\d\.\d{4}\n",
        out,
    ), out
    model.evaluate(x, y, verbose=2)
    out = capsys.readouterr().out
    assert re.fullmatch(
        r"7/7 - \d+s - \d+(ms|us|s)/step - accuracy: \d\.\d{4} - loss: "
        r"\d\.\d{4}\n",
        out,
    ), out


def test_progbar_small_values_use_exponent(capsys):
    bar = callbacks.Progbar(2, verbose=2)
    bar.update(2, [("loss", 0.0001234), ("accuracy", 0.5)], finalize=True)
    assert "loss: 1.2340e-04 - accuracy: 0.5000" in capsys.readouterr().out


def test_validation_split_takes_the_tail_before_shuffling(blobs):
    x, y = blobs
    model = classifier(optimizer=optimizers.SGD(learning_rate=0.0))
    history = model.fit(x, y, epochs=1, batch_size=32, validation_split=0.2, verbose=0)
    tail = model.evaluate(x[160:], y[160:], verbose=0, return_dict=True)
    head = model.evaluate(x[:160], y[:160], verbose=0, return_dict=True)
    assert history.history["val_loss"][0] == pytest.approx(tail["loss"], rel=1e-6)
    assert history.history["val_accuracy"][0] == pytest.approx(tail["accuracy"])
    # The training loss is the batch-size-weighted mean over the head.
    assert history.history["loss"][0] == pytest.approx(head["loss"], rel=1e-5)


def test_validation_data_overrides_split(blobs):
    x, y = blobs
    model = classifier()
    h = model.fit(
        x[:150],
        y[:150],
        validation_data=(x[150:], y[150:]),
        validation_split=0.5,
        epochs=1,
        verbose=0,
    )
    assert list(h.history) == ["accuracy", "loss", "val_accuracy", "val_loss"]


def test_last_short_batch_is_kept(blobs):
    x, y = blobs
    model = classifier()
    seen = []
    cb = callbacks.LambdaCallback(on_train_batch_end=lambda b, logs: seen.append(b))
    model.fit(x[:70], y[:70], batch_size=32, epochs=1, verbose=0, callbacks=[cb])
    assert seen == [0, 1, 2]
    assert model.optimizer.iterations == 3


def test_evaluate_return_forms(blobs):
    x, y = blobs
    model = classifier(metrics=["accuracy", "precision"] and ["accuracy"])
    result = model.evaluate(x, y, verbose=0)
    assert isinstance(result, list) and len(result) == 2
    as_dict = model.evaluate(x, y, verbose=0, return_dict=True)
    assert as_dict == {"accuracy": result[1], "loss": result[0]}
    plain = keras.Sequential([keras.Input(shape=(6,)), layers.Dense(1)])
    plain.compile(optimizer="sgd", loss="mse")
    assert isinstance(plain.evaluate(x, y.astype(float), verbose=0), float)


def test_metrics_names_order_and_train_on_batch(blobs):
    x, y = blobs
    t = np.eye(3)[y]
    model = keras.Sequential([keras.Input(shape=(6,)), layers.Dense(3, activation="softmax")])
    model.compile(
        optimizer="adam",
        loss="categorical_crossentropy",
        metrics=["accuracy", keras.metrics.Precision(), "recall"],
    )
    out = model.train_on_batch(x[:10], t[:10])
    assert model.metrics_names == ["loss", "accuracy", "precision", "recall"]
    assert len(out) == 4
    logs = model.test_on_batch(x[:10], t[:10], return_dict=True)
    assert sorted(logs) == ["accuracy", "loss", "precision", "recall"]
    assert model.predict_on_batch(x[:4]).shape == (4, 3)


def test_predict_any_batch_size(blobs):
    x, _ = blobs
    model = classifier()
    full = model.predict(x, verbose=0)
    assert full.shape == (200, 3) and full.dtype == np.float32
    np.testing.assert_allclose(full.sum(1), 1.0, rtol=1e-5)
    for bs in (1, 7, 33):
        np.testing.assert_allclose(
            model.predict(x[:40], batch_size=bs, verbose=0), full[:40], rtol=1e-5
        )


def test_dropout_only_in_training(blobs):
    x, y = blobs
    model = classifier(dropout=0.5, optimizer=optimizers.SGD(0.0))
    a, b = model.predict(x, verbose=0), model.predict(x, verbose=0)
    np.testing.assert_array_equal(a, b)
    eval_loss = model.evaluate(x, y, verbose=0, batch_size=200)[0]
    train_loss = model.train_on_batch(x, y)[0]
    assert train_loss != pytest.approx(eval_loss, rel=1e-3)
    layer = model.layers[1]
    dropped = layer(np.ones((1000, 16)), training=True)
    assert set(np.unique(dropped)) == {0.0, 2.0}
    assert 0.45 < (dropped == 0).mean() < 0.55
    np.testing.assert_array_equal(layer(np.ones((3, 16))), np.ones((3, 16)))


def test_get_weights_order_and_set_weights_checks_shapes():
    inp = keras.Input(shape=(4,))
    shared = layers.Dense(4, name="shared")
    a = shared(inp)
    b = layers.Dense(2, use_bias=False, name="head")(a)
    model = keras.Model(inp, [b, shared(a)])
    shapes = [w.shape for w in model.get_weights()]
    assert shapes == [(4, 4), (4,), (4, 2)]
    assert [v.path for v in model.weights] == ["shared/kernel", "shared/bias", "head/kernel"]
    with pytest.raises(ValueError, match="head/kernel has shape \\(4, 2\\)"):
        model.set_weights([np.zeros((4, 4)), np.zeros(4), np.zeros((2, 4))])


def test_functional_two_inputs_concat_residual(rng):
    a = keras.Input(shape=(5,), name="a")
    b = keras.Input(shape=(3,), name="b")
    h = layers.Concatenate()([a, b])
    h = layers.Dense(8, activation="tanh")(h)
    h = layers.Add()([h, layers.Dense(8)(h)])
    out1 = layers.Dense(1, name="reg")(h)
    out2 = layers.Dense(2, activation="softmax", name="cls")(h)
    model = keras.Model([a, b], [out1, out2])
    model.compile(
        optimizer="rmsprop",
        loss={"reg": "mse", "cls": "sparse_categorical_crossentropy"},
        loss_weights={"reg": 0.5, "cls": 1.0},
        metrics={"cls": ["accuracy"]},
    )
    xa, xb = rng.normal(size=(40, 5)), rng.normal(size=(40, 3))
    y1, y2 = rng.normal(size=(40, 1)), rng.integers(0, 2, 40)
    h = model.fit({"a": xa, "b": xb}, [y1, y2], epochs=2, verbose=0)
    assert sorted(h.history) == ["cls_accuracy", "cls_loss", "loss", "reg_loss"]
    logs = model.evaluate([xa, xb], [y1, y2], verbose=0, return_dict=True)
    assert logs["loss"] == pytest.approx(0.5 * logs["reg_loss"] + logs["cls_loss"], rel=1e-5)
    p1, p2 = model.predict([xa, xb], verbose=0)
    assert p1.shape == (40, 1) and p2.shape == (40, 2)
    assert [layer.name for layer in model.layers][:2] == ["a", "b"]


def test_summary_table(capsys):
    model = keras.Sequential(
        [
            keras.Input(shape=(28, 28)),
            layers.Flatten(),
            layers.Dense(128, activation="relu"),
            layers.Dense(10),
        ]
    )
    model.summary()
    out = capsys.readouterr().out
    assert 'Model: "sequential"' in out
    assert "Layer (type)" in out and "Output Shape" in out and "Param #" in out
    assert re.search(r"dense \(Dense\)\s+│ \(None, 128\)\s+│\s+100,480 │", out)
    assert " Total params: 101,770 (397.54 KB)" in out
    assert " Non-trainable params: 0 (0.00 B)" in out


def test_deferred_build_sequential(blobs):
    x, y = blobs
    model = keras.Sequential([layers.Dense(4, activation="relu"), layers.Dense(3)])
    model.compile(
        optimizer="adam",
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["acc"],
    )
    h = model.fit(x, y, epochs=1, verbose=0)
    assert "acc" in h.history
    assert model.layers[0].kernel.shape == (6, 4)


# --- callbacks ---------------------------------------------------------------


def test_early_stopping_restores_best_weights(blobs):
    x, y = blobs
    model = classifier(optimizer=optimizers.SGD(0.0))
    stop = callbacks.EarlyStopping(monitor="val_loss", patience=2, restore_best_weights=True)
    h = model.fit(x, y, epochs=10, validation_split=0.2, callbacks=[stop], verbose=0)
    # A constant val_loss never improves after epoch 0: stop when wait reaches patience.
    assert len(h.epoch) == 3 and stop.stopped_epoch == 2 and model.stop_training


def test_early_stopping_auto_mode_on_accuracy(blobs):
    x, y = blobs
    model = classifier()
    stop = callbacks.EarlyStopping(monitor="accuracy", patience=0)
    model.fit(x, y, epochs=1, callbacks=[stop], verbose=0)
    assert stop.monitor_op is np.greater


def test_model_checkpoint_writes_atomically_and_reloads(blobs, tmp_path):
    x, y = blobs
    model = classifier()
    path = str(tmp_path / "ckpt-{epoch:02d}.weights.npz")
    ckpt = callbacks.ModelCheckpoint(
        path, save_weights_only=True, monitor="loss", save_best_only=True
    )
    model.fit(x, y, epochs=2, callbacks=[ckpt], verbose=0)
    files = sorted(os.listdir(tmp_path))
    assert files == ["ckpt-01.weights.npz", "ckpt-02.weights.npz"]
    fresh = classifier()
    fresh.load_weights(str(tmp_path / "ckpt-02.weights.npz"))
    for a, b in zip(model.get_weights(), fresh.get_weights()):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="must end in .weights.h5 or .weights.npz"):
        callbacks.ModelCheckpoint(str(tmp_path / "w.h5"), save_weights_only=True)
    (tmp_path / "bad.weights.npz").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="bad.weights.npz: not a readable weights file"):
        fresh.load_weights(str(tmp_path / "bad.weights.npz"))


def test_terminate_on_nan(blobs, capsys):
    x, y = blobs
    model = keras.Sequential([keras.Input(shape=(6,)), layers.Dense(1)])
    model.compile(optimizer=optimizers.SGD(1e6), loss="mse")
    h = model.fit(
        x * 1e3,
        y.astype(float),
        epochs=5,
        batch_size=8,
        callbacks=[callbacks.TerminateOnNaN()],
        verbose=0,
    )
    assert "Invalid loss, terminating training" in capsys.readouterr().out
    assert len(h.epoch) == 1


def test_lambda_and_scheduler_callbacks(blobs):
    x, y = blobs
    model = classifier(optimizer=optimizers.SGD(0.1))
    events = []
    lam = callbacks.LambdaCallback(
        on_epoch_begin=lambda e, logs: events.append(("begin", e)),
        on_epoch_end=lambda e, logs: events.append(("end", e)),
    )
    sched = callbacks.LearningRateScheduler(lambda epoch, lr: lr * 0.5)
    h = model.fit(x, y, epochs=2, callbacks=[lam, sched], verbose=0)
    assert events == [("begin", 0), ("end", 0), ("begin", 1), ("end", 1)]
    assert h.history["learning_rate"] == pytest.approx([0.05, 0.025])


# --- bad input ---------------------------------------------------------------


def test_wrong_shape_at_build_names_layer_and_shapes():
    inp = keras.Input(shape=(4,))
    dense = layers.Dense(3, name="proj")
    dense(inp)
    with pytest.raises(
        ValueError,
        match=r"layer 'proj' .*expected shape \(None, 4\), got shape "
        r"\(None, 5\)",
    ):
        dense(keras.Input(shape=(5,)))
    with pytest.raises(
        ValueError,
        match=r"layer 'add' \(Add\): Inputs have incompatible shapes. Received shapes \[\(3,\), \(2,\)\]",
    ):
        layers.Add()([layers.Dense(3)(inp), layers.Dense(2)(inp)])
    with pytest.raises(ValueError, match=r"Reshape 'reshape'.*4 elements.*\(3,\) has 3"):
        layers.Reshape((3,))(inp)


def test_fit_rejects_bad_data(blobs):
    x, y = blobs
    model = classifier()
    with pytest.raises(
        ValueError,
        match=r"expects arrays of shape \(None, 6\), got shape "
        r"\(200, 5\)",
    ):
        model.fit(x[:, :5], y, verbose=0)
    with pytest.raises(TypeError, match="labels for output 'dense_1': expected numeric"):
        model.fit(x, y.astype(str), verbose=0)
    with pytest.raises(ValueError, match="labels for output 'dense_1' have 100 samples"):
        model.fit(x, y[:100], verbose=0)
    with pytest.raises(ValueError, match="one-hot labels need categorical_crossentropy"):
        model.fit(x, np.eye(3)[y], verbose=0)
    with pytest.raises(ValueError, match="expects arrays of shape"):
        model.predict(x[:, None], verbose=0)
    uncompiled = keras.Sequential([keras.Input(shape=(6,)), layers.Dense(1)])
    with pytest.raises(RuntimeError, match="must call `compile\\(\\)`"):
        uncompiled.fit(x, y)


def test_accepts_what_keras_accepts(blobs):
    x, y = blobs
    model = classifier()
    model.fit(x.astype(np.float64), y.astype(np.uint8), epochs=1, verbose=0)
    model.fit((x * 10).astype(np.uint8), y.astype(np.int64), epochs=1, verbose=0)
    model.fit(x, y.astype(np.float32)[:, None], epochs=1, verbose=0)
    assert model.predict(x.tolist(), verbose=0).shape == (200, 3)


def test_unknown_backend_is_refused():
    model = keras.Sequential([keras.Input(shape=(2,)), layers.Dense(1)])
    with pytest.raises(ValueError, match="unknown backend 'gpu'; expected one of"):
        model.compile(loss="mse", backend="gpu")


def test_predict_on_batch_fast_path_matches_the_reference(rng):
    """Repeated predict_on_batch reuses the executable's views per batch size; results
    must stay right across batch sizes, a grown buffer, new weights and other dtypes."""
    model = keras.Sequential([keras.Input(shape=(6,)), layers.Dense(5, activation="relu")])
    model.compile(loss="mse", optimizer="sgd")
    reference = keras.Sequential([keras.Input(shape=(6,)), layers.Dense(5, activation="relu")])
    reference.compile(loss="mse", optimizer="sgd", backend="reference")
    reference.set_weights(model.get_weights())
    for n in (1, 1, 3, 1, 100, 3, 1):
        x = rng.normal(size=(n, 6)).astype(np.float32)
        got = model.predict_on_batch(x)
        again = model.predict_on_batch(x.astype(np.float64))  # converted, same numbers
        want = reference.predict_on_batch(x)
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
        np.testing.assert_array_equal(got, again)
    model.set_weights([w + 1 for w in model.get_weights()])
    reference.set_weights(model.get_weights())
    x = rng.normal(size=(1, 6)).astype(np.float32)
    np.testing.assert_allclose(
        model.predict_on_batch(x), reference.predict_on_batch(x), rtol=1e-5, atol=1e-6
    )
    kept = model.predict_on_batch(x)
    model.predict_on_batch(x + 1)  # a result is the caller's copy, not a reused buffer
    np.testing.assert_array_equal(kept, model.predict_on_batch(x))
    with pytest.raises(ValueError, match="expects arrays of shape"):
        model.predict_on_batch(np.zeros((1, 7), np.float32))
