"""ReduceLROnPlateau, BackupAndRestore, ModelCheckpoint(save_freq=N), TensorBoard's event
files, and the logs dict every hook gets."""

from __future__ import annotations

import os

import numpy as np
import pytest

import kcompile as keras
from kcompile.callbacks.tensorboard import read_events


def _model(lr=0.1):
    keras.utils.set_random_seed(3)
    inputs = keras.Input((3,))
    model = keras.Model(inputs, keras.layers.Dense(1)(inputs))
    model.compile(keras.optimizers.SGD(lr), "mse", metrics=["mae"])
    return model


def _data(rng):
    x = rng.normal(size=(32, 3)).astype("float32")
    return x, x @ np.array([[1.0], [-2.0], [0.5]], "float32")


class Recorder(keras.callbacks.Callback):
    """The guide's logging callback: it reads ``logs.keys()`` in every hook."""

    def __init__(self):
        super().__init__()
        self.seen = []

    def on_train_begin(self, logs=None):
        self.seen.append(("train_begin", sorted(logs.keys())))

    def on_epoch_begin(self, epoch, logs=None):
        self.seen.append(("epoch_begin", sorted(logs.keys())))

    def on_test_begin(self, logs=None):
        self.seen.append(("test_begin", sorted(logs.keys())))

    def on_predict_begin(self, logs=None):
        self.seen.append(("predict_begin", sorted(logs.keys())))


def test_every_hook_gets_a_logs_dict(rng):
    x, y = _data(rng)
    model, recorder = _model(), Recorder()
    model.fit(x, y, epochs=1, verbose=0, callbacks=[recorder], validation_data=(x, y))
    model.evaluate(x, y, verbose=0, callbacks=[recorder])
    model.predict(x, verbose=0, callbacks=[recorder])
    kinds = [k for k, _ in recorder.seen]
    assert kinds[:2] == ["train_begin", "epoch_begin"] and "predict_begin" in kinds
    assert all(keys == [] for _, keys in recorder.seen)


def test_reduce_lr_on_plateau_follows_kerass_rule(rng):
    x, y = _data(rng)
    model = _model(lr=0.0)  # nothing improves: the rate drops every `patience` epochs
    model.optimizer.learning_rate = 0.5
    model.compile(keras.optimizers.SGD(0.0), "mse")
    reduce = keras.callbacks.ReduceLROnPlateau(
        monitor="loss", factor=0.5, patience=2, cooldown=1, min_lr=0.0
    )
    history = model.fit(x, y, epochs=8, verbose=0, callbacks=[reduce]).history
    assert history["learning_rate"] == [0.0] * 8
    model = _model(lr=1e-9)
    reduce = keras.callbacks.ReduceLROnPlateau(monitor="loss", factor=0.5, patience=2, cooldown=1)
    history = model.fit(x, y, epochs=8, verbose=0, callbacks=[reduce]).history
    # the rate each epoch ran with: a cut after every 2 epochs without improvement, then
    # a cooldown epoch (Keras 3.15 gives this sequence for this run)
    rates = np.array(history["learning_rate"]) / 1e-9
    np.testing.assert_allclose(rates, [1, 1, 1, 0.5, 0.5, 0.25, 0.25, 0.125], rtol=1e-5)
    with pytest.raises(ValueError, match="factor >= 1.0"):
        keras.callbacks.ReduceLROnPlateau(factor=2.0)


def test_backup_and_restore_resumes_an_interrupted_run(tmp_path, rng):
    x, y = _data(rng)

    class Crash(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 1:
                raise RuntimeError("interrupted")

    backup = str(tmp_path / "backup")
    model = _model()
    with pytest.raises(RuntimeError, match="interrupted"):
        model.fit(
            x,
            y,
            epochs=4,
            shuffle=False,
            verbose=0,
            callbacks=[keras.callbacks.BackupAndRestore(backup), Crash()],
        )
    assert os.path.exists(os.path.join(backup, "latest.kcmodel"))
    resumed = _model()
    history = resumed.fit(
        x,
        y,
        epochs=4,
        shuffle=False,
        verbose=0,
        callbacks=[keras.callbacks.BackupAndRestore(backup)],
    ).history
    assert len(history["loss"]) == 2  # epochs 3 and 4 only (the backup holds epochs 1-2)
    straight = _model()
    straight.fit(x, y, epochs=4, shuffle=False, verbose=0)
    for a, b in zip(resumed.get_weights(), straight.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    assert not os.path.exists(os.path.join(backup, "latest.kcmodel"))  # a finished run cleans up


def test_model_checkpoint_every_n_batches(tmp_path, rng):
    x, y = _data(rng)
    path = str(tmp_path / "w-{epoch}-{batch}.weights.npz")
    checkpoint = keras.callbacks.ModelCheckpoint(path, save_weights_only=True, save_freq=3)
    _model().fit(x, y, batch_size=8, epochs=2, verbose=0, callbacks=[checkpoint])
    # 4 batches per epoch, a save every third batch: batches 3 and 6 -> (epoch 1, batch 3)
    # and (epoch 2, batch 2)
    assert sorted(os.listdir(tmp_path)) == ["w-1-3.weights.npz", "w-2-2.weights.npz"]
    with pytest.raises(ValueError, match="save_freq"):
        keras.callbacks.ModelCheckpoint(path, save_freq=0)


def test_tensorboard_logs_each_rate_of_a_multi_optimizer(tmp_path, rng):
    """As Keras's: ``epoch_learning_rate_<name>`` for each inner optimizer."""
    x, y = _data(rng)
    model = _model()
    fast, slow = keras.optimizers.SGD(0.1, name="fast"), keras.optimizers.SGD(0.01, name="slow")
    opt = keras.optimizers.MultiOptimizer(keras.optimizers.OptimizerMap(slow, {".*kernel": fast}))
    model.compile(opt, "mse")
    board = keras.callbacks.TensorBoard(log_dir=str(tmp_path / "logs"))
    model.fit(x, y, epochs=1, verbose=0, callbacks=[board])
    (train,) = os.listdir(board.log_dir + "/train")
    scalars = read_events(os.path.join(board.log_dir, "train", train))[1]["scalars"]
    assert scalars["epoch_learning_rate_fast"] == pytest.approx(0.1)
    assert scalars["epoch_learning_rate_slow"] == pytest.approx(0.01)
    assert "epoch_learning_rate" not in scalars


def test_tensorboard_writes_event_files_of_scalars(tmp_path, rng):
    x, y = _data(rng)
    board = keras.callbacks.TensorBoard(log_dir=str(tmp_path / "logs"))
    history = (
        _model().fit(x, y, epochs=3, verbose=0, validation_data=(x, y), callbacks=[board]).history
    )
    train = [os.path.join(board.log_dir, "train", f) for f in os.listdir(board.log_dir + "/train")]
    events = read_events(train[0])
    assert events[0]["file_version"] == "brain.Event:2"
    assert [e["step"] for e in events[1:]] == [0, 1, 2]
    np.testing.assert_allclose(
        [e["scalars"]["epoch_loss"] for e in events[1:]], history["loss"], rtol=1e-6
    )
    assert events[1]["scalars"]["epoch_learning_rate"] == pytest.approx(0.1)
    (validation,) = os.listdir(board.log_dir + "/validation")
    val = read_events(os.path.join(board.log_dir, "validation", validation))
    np.testing.assert_allclose(
        [e["scalars"]["epoch_mae"] for e in val[1:]], history["val_mae"], rtol=1e-6
    )
    with open(train[0], "rb") as f:
        data = bytearray(f.read())
    data[-6] ^= 1
    with open(train[0], "wb") as f:
        f.write(bytes(data))
    with pytest.raises(ValueError, match="checksum"):
        read_events(train[0])
