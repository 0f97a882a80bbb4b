"""Programs of Keras's ``MultiOptimizer``, written once for any library with Keras's API
(``keras`` or ``kcompile``): each compiles a small encoder/decoder model with one, trains
it a few steps from set weights on set data and returns what it did.
``fixture_scripts/make_multi_optimizer_fixtures.py`` ran them on Keras 3 to make
``keras_fixtures/multi_optimizer.npz``; ``test_multi_optimizer.py`` runs them on
kcompile."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np


def model(lib):
    """Dense 'enc' (3 -> 4, tanh) then Dense 'dec' (4 -> 2), weights from a seeded draw."""
    inputs = lib.Input((3,))
    hidden = lib.layers.Dense(4, activation="tanh", name="enc")(inputs)
    outputs = lib.layers.Dense(2, name="dec")(hidden)
    built = lib.Model(inputs, outputs)
    rng = np.random.default_rng(5)
    built.set_weights([rng.normal(size=w.shape).astype(np.float32) for w in built.get_weights()])
    return built


def data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(6)
    x = rng.normal(size=(8, 3)).astype(np.float32)
    y = rng.normal(size=(8, 2)).astype(np.float32)
    return x, y


def mapped_optimizer(lib):
    """An OptimizerMap: Adam for the encoder (a pattern of its variables' paths), SGD
    with momentum (the default) for the decoder."""
    opts = lib.optimizers
    return opts.MultiOptimizer(
        opts.OptimizerMap(opts.SGD(0.1, momentum=0.9), {"enc/.*": opts.Adam(0.02)})
    )


def chosen_optimizer(lib):
    """A function of the variable: the kernels Adam on a decaying schedule, the biases
    RMSprop with momentum and clipped gradients; a loss scale of 8 over both."""
    opts = lib.optimizers
    kernels = opts.Adam(opts.schedules.ExponentialDecay(0.05, decay_steps=2, decay_rate=0.5))
    biases = opts.RMSprop(0.01, momentum=0.5, clipnorm=0.5)

    def choose(variable):
        return kernels if variable.path.endswith("kernel") else biases

    return opts.MultiOptimizer(choose, loss_scale_factor=8.0)


def _train(lib, optimizer, backend: str | None):
    built = model(lib)
    options = {} if backend is None else {"backend": backend}
    built.compile(optimizer=optimizer, loss="mse", **options)
    x, y = data()
    history = built.fit(x, y, epochs=3, batch_size=4, shuffle=False, verbose=0)
    opt = built.optimizer
    out = {
        "losses": np.array(history.history["loss"], np.float32),
        "iterations": np.int64(int(np.asarray(opt.iterations))),
        "inner_iterations": np.array([int(np.asarray(o.iterations)) for o in opt.optimizers]),
    }
    for k, w in enumerate(built.get_weights()):
        out[f"w{k}"] = np.asarray(w, np.float32)
    return built, out


def mapped(lib, backend: str | None = None):
    return _train(lib, mapped_optimizer(lib), backend)


def chosen(lib, backend: str | None = None):
    return _train(lib, chosen_optimizer(lib), backend)


PROGRAMS: dict[str, Callable] = {"mapped": mapped, "chosen": chosen}
