"""Models whose saved files' HDF5 groups are compared with Keras's, written once for any
library with Keras's API (``keras`` or ``kcompile``): each program clears the session (so
layer names start afresh), builds, compiles and trains a small model and returns it.
``fixture_scripts/make_saved_group_fixtures.py`` ran them on Keras 3 to make
``keras_fixtures/saved_groups.json``; ``test_saved_group_names.py`` runs them on kcompile.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Callable

import numpy as np


def _fit(model, x: np.ndarray, outputs: int, optimizer) -> None:
    model.compile(optimizer=optimizer, loss="mse")
    y = np.random.default_rng(1).normal(size=(len(x), outputs)).astype(np.float32)
    model.fit(x, y, batch_size=len(x), epochs=1, verbose=0)


def _floats(*shape: int) -> np.ndarray:
    return np.random.default_rng(0).normal(size=shape).astype(np.float32)


def sequential_conv(lib):
    """Conv2D, BatchNormalization, Dropout, Dense; SGD with momentum."""
    lib.backend.clear_session()
    model = lib.Sequential(
        [
            lib.Input((6, 6, 2)),
            lib.layers.Conv2D(3, 3, activation="relu"),
            lib.layers.BatchNormalization(),
            lib.layers.Flatten(),
            lib.layers.Dropout(0.1),
            lib.layers.Dense(4),
            lib.layers.Dense(2),
        ]
    )
    _fit(model, _floats(4, 6, 6, 2), 2, lib.optimizers.SGD(0.01, momentum=0.9, name="sgd"))
    return model


def functional_recurrent(lib):
    """Embedding, LSTM, a Bidirectional GRU, MultiHeadAttention, an RNN of one cell and
    one of stacked cells, SimpleRNN; Adam."""
    lib.backend.clear_session()
    inputs = lib.Input((5,), dtype="int32")
    x = lib.layers.Embedding(10, 4)(inputs)
    x = lib.layers.LSTM(3, return_sequences=True)(x)
    x = lib.layers.Bidirectional(lib.layers.GRU(2, return_sequences=True), name="bidi")(x)
    x = lib.layers.MultiHeadAttention(2, 3)(x, x)
    x = lib.layers.BatchNormalization()(x)
    x = lib.layers.RNN(lib.layers.GRUCell(3), return_sequences=True)(x)
    cells = [lib.layers.SimpleRNNCell(2), lib.layers.LSTMCell(3)]
    x = lib.layers.RNN(lib.layers.StackedRNNCells(cells), return_sequences=True)(x)
    x = lib.layers.Bidirectional(lib.layers.SimpleRNN(2), name="bidi_1")(x)
    outputs = lib.layers.Dense(2)(x)
    model = lib.Model(inputs, outputs, name="recurrent")
    x = np.random.default_rng(0).integers(0, 10, size=(4, 5)).astype(np.int32)
    _fit(model, x, 2, "adam")
    return model


def _subclassed_classes(lib):
    class Block(lib.layers.Layer):
        """A user's layer holding sublayers: one by attribute, two in a list."""

        def __init__(self, units, **kwargs):
            super().__init__(**kwargs)
            self.units = units
            self.dense = lib.layers.Dense(units, activation="relu")
            self.norms = [lib.layers.LayerNormalization(), lib.layers.LayerNormalization()]

        def call(self, x):
            return self.norms[1](self.norms[0](self.dense(x)))

        def get_config(self):
            return {**super().get_config(), "units": self.units}

    class Net(lib.Model):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.block = Block(5)
            self.head = lib.layers.Dense(2)

        def call(self, x):
            return self.head(self.block(x))

    return Block, Net


def subclassed(lib):
    """A subclassed model holding a user's layer of sublayers; Adam."""
    lib.backend.clear_session()
    _, net = _subclassed_classes(lib)
    model = net()
    model(_floats(4, 3))
    _fit(model, _floats(4, 3), 2, "adam")
    return model


def loss_scaled(lib):
    """A Dense model trained with a LossScaleOptimizer around Adam."""
    lib.backend.clear_session()
    model = lib.Sequential([lib.Input((3,)), lib.layers.Dense(4), lib.layers.Dense(2)])
    _fit(model, _floats(4, 3), 2, lib.optimizers.LossScaleOptimizer(lib.optimizers.Adam()))
    return model


def default_names(lib):
    """A functional model of a Bidirectional layer trained with SGD, each named by
    default (the other programs name these three)."""
    lib.backend.clear_session()
    inputs = lib.Input((3, 2))
    x = lib.layers.Bidirectional(lib.layers.GRU(2))(inputs)
    model = lib.Model(inputs, lib.layers.Dense(2)(x))
    _fit(model, _floats(4, 3, 2), 2, lib.optimizers.SGD(0.01))
    return model


PROGRAMS: dict[str, Callable] = {
    "sequential_conv": sequential_conv,
    "functional_recurrent": functional_recurrent,
    "subclassed": subclassed,
    "loss_scaled": loss_scaled,
    "default_names": default_names,
}

# The programs whose models go to .keras files too (a subclassed model's needs its class
# registered, which its weights do not).
WHOLE_FILE = ("sequential_conv", "functional_recurrent", "loss_scaled", "default_names")


def groups(h5_bytes: bytes) -> dict[str, dict]:
    """Each HDF5 group of a weights file (by path) as its attributes and its datasets'
    shapes (by name)."""
    import h5py

    out: dict[str, dict] = {}
    with h5py.File(io.BytesIO(h5_bytes), "r") as f:

        def visit(name: str, obj) -> None:
            if isinstance(obj, h5py.Group):
                out[name] = {
                    "attrs": {k: _plain(v) for k, v in obj.attrs.items()},
                    "datasets": {
                        k: list(v.shape) for k, v in obj.items() if isinstance(v, h5py.Dataset)
                    },
                }

        f.visititems(visit)
    return out


def _plain(value):
    return value.item() if isinstance(value, np.generic) else value


def saved_groups(model, directory, whole: bool) -> dict[str, dict[str, dict]]:
    """The groups of the model's ``.weights.h5`` file, and of its ``.keras`` one's
    ``model.weights.h5`` when ``whole``."""
    weights = f"{directory}/m.weights.h5"
    model.save_weights(weights)
    with open(weights, "rb") as f:
        out = {"weights.h5": groups(f.read())}
    if whole:
        path = f"{directory}/m.keras"
        model.save(path)
        with zipfile.ZipFile(path) as z:
            out["keras"] = groups(z.read("model.weights.h5"))
    return out
