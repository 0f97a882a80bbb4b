"""The epoch loop in native code (``kc_epoch``): steps run in one call must leave the
same weights, bit for bit, and give the same per-step results as the same steps
called one by one."""

import numpy as np
import pytest

import kcompile as keras
from ir import FeedError
from kcompile import layers


def _model(seed: int = 0):
    keras.utils.set_random_seed(seed)
    model = keras.Sequential(
        [
            keras.Input(shape=(7,)),
            layers.Dense(5, activation="relu"),
            layers.Dense(3, activation="softmax"),
        ]
    )
    model.compile(loss="sparse_categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
    return model


def _train_executable(model, x, y):
    model.train_on_batch(x[:2], y[:2])  # builds the weights, the optimizer and the step
    key = next(k for k in model._executables if k[0] == "train")
    return model._executables[key]


@pytest.mark.parametrize("batch", [4, 9])
def test_epoch_loop_matches_steps_one_by_one(rng, batch):
    x = rng.normal(size=(37, 7)).astype(np.float32)
    y = rng.integers(0, 3, 37).astype(np.int32)
    order = rng.permutation(37)
    looped, stepped = _model(), _model()
    exe_loop, exe_step = _train_executable(looped, x, y), _train_executable(stepped, x, y)
    names, logs = exe_loop.run_epoch({looped.input_names[0]: x, "y": y}, order, batch)
    steps = -(-37 // batch)
    assert logs.shape == (steps, len(names)) and "loss" in names
    for s in range(steps):
        index = order[s * batch : (s + 1) * batch]
        out = exe_step({stepped.input_names[0]: x[index], "y": y[index]})
        np.testing.assert_array_equal(logs[s], [out[name] for name in names])
    for a, b in zip(looped.get_weights(), stepped.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_epoch_loop_resumes_and_stops(rng):
    x = rng.normal(size=(40, 7)).astype(np.float32)
    y = rng.integers(0, 3, 40).astype(np.int32)
    order = np.arange(40)
    whole, parts = _model(), _model()
    exe_whole, exe_parts = _train_executable(whole, x, y), _train_executable(parts, x, y)
    _, all_logs = exe_whole.run_epoch({whole.input_names[0]: x, "y": y}, order, 8)
    name = parts.input_names[0]
    progress = np.zeros(1, np.int64)
    _, first = exe_parts.run_epoch({name: x, "y": y}, order, 8, first=0, steps=2, progress=progress)
    assert progress[0] == 2 and len(first) == 2
    stop = np.ones(1, np.int64)  # asked to stop: the loop finishes the step it is in
    _, one = exe_parts.run_epoch({name: x, "y": y}, order, 8, first=2, stop=stop)
    _, rest = exe_parts.run_epoch({name: x, "y": y}, order, 8, first=3)
    assert len(one) == 1 and len(rest) == 2
    np.testing.assert_array_equal(np.concatenate([first, one, rest]), all_logs)
    for a, b in zip(whole.get_weights(), parts.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_epoch_loop_refuses_bad_data(rng):
    x = rng.normal(size=(10, 7)).astype(np.float32)
    y = rng.integers(0, 3, 10).astype(np.int32)
    model = _model()
    exe = _train_executable(model, x, y)
    name = model.input_names[0]
    with pytest.raises(FeedError, match="needs arrays"):
        exe.run_epoch({name: x}, np.arange(10), 4)
    with pytest.raises(FeedError, match="outside the data"):
        exe.run_epoch({name: x, "y": y}, np.arange(11), 4)
    with pytest.raises(FeedError, match="expected dtype f32"):
        exe.run_epoch({name: x.astype(np.float64), "y": y}, np.arange(10), 4)
    with pytest.raises(FeedError, match="expected shape"):
        exe.run_epoch({name: x[:, :5].copy(), "y": y}, np.arange(10), 4)
