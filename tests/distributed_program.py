"""A training program the data-parallel tests run, alone or under ``mpiexec -n P``.

python tests/distributed_program.py MODE OUT [--dp]

Each rank writes ``OUT.<rank>.json``: its weights, their bytes' hash, the history, the
rank's count of callback calls and, per mode, what else the test checks.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys

import numpy as np

import kcompile as keras
from kcompile import layers

GLOBAL_BATCH = 24


def model_for(mode: str):
    keras.utils.set_random_seed(5)
    body = [keras.Input((6,)), layers.Dense(12, activation="relu")]
    if mode in ("batchnorm", "short"):
        body.append(layers.BatchNormalization())
    model = keras.Sequential([*body, layers.Dense(3, activation="softmax")])
    optimizer = keras.optimizers.Adam(0.01)
    if mode == "loss_scale":  # the scale doubles every 3 steps: its state is shared too
        optimizer = keras.optimizers.LossScaleOptimizer(
            optimizer, initial_scale=2.0**10, dynamic_growth_steps=3
        )
    model.compile(
        optimizer=optimizer,
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy", keras.metrics.SparseTopKCategoricalAccuracy(k=2)],
    )
    return model


def data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(100, 6)).astype(np.float32)  # 100 rows: a short last batch of 4
    y = (x[:, 0] > 0).astype(np.int32) + (x[:, 1] > 0.5).astype(np.int32)
    return x, y


class Calls(keras.callbacks.Callback):
    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def on_epoch_end(self, epoch, logs=None) -> None:
        self.count += 1


def main() -> None:
    mode, out = sys.argv[1], sys.argv[2]
    if "--dp" in sys.argv:
        keras.distribution.set_distribution(keras.distribution.DataParallel())
    job = keras.distribution.active()
    rank = job.rank if job else 0
    x, y = data()
    if mode == "short":  # a last batch of one row: rank 1 has none of it
        x, y = x[:97], y[:97]
    calls = Calls()
    extra = {}
    if mode == "resume":  # continue from a checkpoint another run wrote
        keras.utils.set_random_seed(7)  # the epochs' shuffles: the same in every run
        model = keras.models.load_model(os.environ["CHECKPOINT"])
    else:
        model = model_for(mode)
    if mode == "fail" and rank == 1:
        raise ValueError("this rank's data is bad")
    if mode == "killed" and rank == 1:
        import signal

        os.kill(os.getpid(), signal.SIGKILL)
    callbacks = [calls]
    if mode == "checkpoint":
        callbacks.append(keras.callbacks.ModelCheckpoint(os.environ["CHECKPOINT"]))
    if mode == "stop":
        callbacks.append(keras.callbacks.EarlyStopping(monitor="loss", patience=0, min_delta=10))
    history = model.fit(
        x,
        y,
        batch_size=GLOBAL_BATCH,
        epochs=3 if mode != "checkpoint" else 1,
        callbacks=callbacks,
        verbose=0,
        shuffle=True,
    )
    extra["evaluate"] = model.evaluate(x, y, batch_size=GLOBAL_BATCH, verbose=0)
    if mode == "loss_scale":
        extra["dynamic_scale"] = float(model.optimizer.dynamic_scale)
    weights = model.get_weights()
    digest = hashlib.sha256(b"".join(w.tobytes() for w in weights)).hexdigest()
    record = {
        "rank": rank,
        "weights": [w.tolist() for w in weights],
        "digest": digest,
        "history": history.history,
        "calls": calls.count,
        **extra,
    }
    with open(f"{out}.{rank}.json", "w") as f:
        json.dump(record, f)


if __name__ == "__main__":
    main()
