"""Programs of Keras's loss scaling, written once for any library with Keras's API
(``keras`` or ``kcompile``): each builds, compiles and trains a small model and returns
what the scale did. ``fixture_scripts/make_loss_scaling_fixtures.py`` ran them on Keras 3
to make ``keras_fixtures/loss_scaling.npz``; ``test_loss_scaling.py`` runs them on
kcompile."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np


def _data(rows: int, features: int, outputs: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, features)).astype(np.float32)
    y = rng.normal(size=(rows, outputs)).astype(np.float32)
    return x, y


def _set_weights(model, seed: int) -> None:
    rng = np.random.default_rng(seed)
    model.set_weights([rng.normal(size=w.shape).astype(np.float32) for w in model.get_weights()])


def _options(backend: str | None) -> dict:
    """kcompile's ``backend=`` where a test names one (Keras has no such argument)."""
    return {} if backend is None else {"backend": backend}


def _results(model, losses: list[float], **options) -> dict[str, np.ndarray]:
    opt = model.optimizer
    out = {
        "class_name": np.array(type(opt).__name__),
        "losses": np.array(losses, np.float32),
        "iterations": np.int64(int(opt.iterations)),
    }
    if hasattr(opt, "dynamic_scale"):
        out["step_counter"] = np.int64(int(np.asarray(opt.step_counter)))
        out["dynamic_scale"] = np.float32(np.asarray(opt.dynamic_scale))
    for k, w in enumerate(model.get_weights()):
        out[f"w{k}"] = np.asarray(w, np.float32)
    return out


def mixed_float16_sgd(lib, backend: str | None = None) -> tuple[object, dict[str, np.ndarray]]:
    """Under mixed_float16 ``compile`` wraps SGD in a LossScaleOptimizer: the first
    steps' scaled float16 gradients overflow, so those steps are skipped and the scale
    halves until the gradients are finite."""
    lib.mixed_precision.set_global_policy("mixed_float16")
    try:
        model = lib.Sequential(
            [
                lib.Input((4,)),
                lib.layers.Dense(6, activation="relu"),
                lib.layers.Dense(2, dtype="float32"),
            ]
        )
    finally:
        lib.mixed_precision.set_global_policy("float32")
    model.compile(optimizer=lib.optimizers.SGD(0.02), loss="mse", **_options(backend))
    _set_weights(model, 0)
    x, y = _data(16, 4, 2, 1)
    history = model.fit(x, y, epochs=3, batch_size=4, shuffle=False, verbose=0)
    return model, _results(model, history.history["loss"])


def growth(lib, backend: str | None = None) -> tuple[object, dict[str, np.ndarray]]:
    """An explicit LossScaleOptimizer in float32: the scale doubles after every two
    finite steps, and a step with an infinite label is skipped and halves it."""
    inner = lib.optimizers.Adam(0.01)
    optimizer = lib.optimizers.LossScaleOptimizer(inner, initial_scale=4.0, dynamic_growth_steps=2)
    model = lib.Sequential([lib.Input((3,)), lib.layers.Dense(2)])
    model.compile(optimizer=optimizer, loss="mse", **_options(backend))
    _set_weights(model, 2)
    x, y = _data(6, 3, 2, 3)
    losses = []
    for step in range(7):
        labels = y.copy()
        if step == 4:
            labels[0, 0] = np.inf
        losses.append(float(model.train_on_batch(x, labels)))
    return model, _results(model, losses)


def factor(lib, backend: str | None = None) -> tuple[object, dict[str, np.ndarray]]:
    """A fixed ``loss_scale_factor``: the loss's gradients are multiplied by it and
    divided again before the update (with momentum and clipping after the division)."""
    optimizer = lib.optimizers.SGD(0.1, momentum=0.5, clipnorm=0.7, loss_scale_factor=3.0)
    model = lib.Sequential([lib.Input((3,)), lib.layers.Dense(2)])
    model.compile(optimizer=optimizer, loss="mse", **_options(backend))
    _set_weights(model, 4)
    x, y = _data(5, 3, 2, 5)
    losses = [float(model.train_on_batch(x, y)) for _ in range(3)]
    return model, _results(model, losses)


PROGRAMS: dict[str, Callable] = {
    "mixed_float16_sgd": mixed_float16_sgd,
    "growth": growth,
    "factor": factor,
}
