"""The epoch loop in native code (``kc_epoch``): steps run in one call must leave the
same weights, bit for bit, and give the same per-step results as the same steps
called one by one."""

import os
import signal
import sys
import threading
import time

import numpy as np
import pytest

import kcompile as keras
from kcompile.ir import FeedError
from kcompile.models import graphs as G
from kcompile.runtime.epoch import EpochLoop
from tests.classifiers import dense_classifier
from tests.threads import on_threads


def _model():
    return dense_classifier(features=7, hidden=5, seed=0)


def _train_executable(model, x, y):
    """The model's compiled train step, built without running a step."""
    return model.compiled_steps.executable("train", (G.label_type_for(y.dtype, y.shape),))


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


@pytest.mark.parametrize("parallel", [True, False])
def test_rows_gathered_on_each_thread_count_match_steps_one_by_one(rng, monkeypatch, parallel):
    """``codegen.lowering.epoch_loop.PARALLEL_GATHER``: each thread gathers a share of a step's
    rows (on 1, 2 and 3 threads; steps of 9 rows and a last one of 1, so some shares are
    unequal or empty) or the calling thread all of them; the logs and weights are those of
    the steps called one by one, bit for bit."""
    from kcompile.codegen.lowering import epoch_loop
    from kcompile.codegen.lowering.module import lower_graph

    monkeypatch.setenv("KCOMPILE_CACHE", "0")  # the cache does not see the flag
    monkeypatch.setattr(epoch_loop, "PARALLEL_GATHER", parallel)
    x = rng.normal(size=(37, 7)).astype(np.float32)
    y = rng.integers(0, 3, 37).astype(np.int32)
    order = rng.permutation(37)
    stepped = _model()
    exe_step = _train_executable(stepped, x, y)
    want = []
    for s in range(-(-37 // 9)):
        index = order[s * 9 : (s + 1) * 9]
        out = exe_step({stepped.input_names[0]: x[index], "y": y[index]})
        want.append([np.array(out[name]) for name in exe_step.log_columns()])
    for threads in (1, 2, 3):
        looped = _model()
        exe_loop = _train_executable(looped, x, y)
        with on_threads(threads):
            _, logs = exe_loop.run_epoch({looped.input_names[0]: x, "y": y}, order, 9)
        assert ("kc_epoch_gather" in lower_graph(exe_loop.compiled.graph).llvm_ir) == parallel
        np.testing.assert_array_equal(logs, np.array(want, np.float32), err_msg=f"{threads}")
        for a, b in zip(looped.get_weights(), stepped.get_weights()):
            np.testing.assert_array_equal(a, b, err_msg=f"{threads} threads")


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


class _Recorder(keras.callbacks.Callback):
    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[str, int]] = []

    def on_train_batch_begin(self, batch, logs=None):
        self.calls.append(("begin", batch))

    def on_train_batch_end(self, batch, logs=None):
        self.calls.append(("end", batch))


def test_fit_runs_the_epoch_in_one_call_and_matches_per_batch_callbacks(rng, monkeypatch):
    x = rng.normal(size=(50, 7)).astype(np.float32)
    y = rng.integers(0, 3, 50).astype(np.int32)
    looped, stepped = _model(), _model()
    calls = []
    original = EpochLoop.run_epoch

    def counted(self, sources, order, batch, first=0, steps=None, *args):
        calls.append((self.graph.name, steps))
        return original(self, sources, order, batch, first, steps, *args)

    monkeypatch.setattr(EpochLoop, "run_epoch", counted)
    keras.utils.set_random_seed(5)  # the same shuffles in both fits
    h_loop = looped.fit(x, y, batch_size=8, epochs=2, verbose=0, validation_split=0.2)
    # 40 rows to train on: one call of 5 steps per epoch; 10 to validate on: 2 steps
    assert calls == [("train_step", 5), ("eval_step", 2)] * 2
    recorder = _Recorder()  # per-batch hooks: one step per call, as Keras calls them
    keras.utils.set_random_seed(5)
    h_step = stepped.fit(
        x, y, batch_size=8, epochs=2, verbose=0, validation_split=0.2, callbacks=[recorder]
    )
    assert recorder.calls[:4] == [("begin", 0), ("end", 0), ("begin", 1), ("end", 1)]
    assert calls[4:9] == [("train_step", 1)] * 5
    for a, b in zip(looped.get_weights(), stepped.get_weights()):
        np.testing.assert_array_equal(a, b)
    for key in h_loop.history:
        np.testing.assert_allclose(h_loop.history[key], h_step.history[key], rtol=1e-6)


def test_steps_per_execution_calls_batch_hooks_per_chunk(rng):
    x = rng.normal(size=(40, 7)).astype(np.float32)
    y = rng.integers(0, 3, 40).astype(np.int32)
    model = _model()
    model.compile(loss="sparse_categorical_crossentropy", optimizer="adam", steps_per_execution=3)
    recorder = _Recorder()
    model.fit(x, y, batch_size=5, epochs=1, verbose=0, callbacks=[recorder])  # 8 steps
    expected = [("begin", 0), ("end", 2), ("begin", 3), ("end", 5), ("begin", 6), ("end", 7)]
    assert recorder.calls == expected
    assert model.optimizer.iterations == 8
    with pytest.raises(ValueError, match="steps_per_execution"):
        model.compile(loss="mse", steps_per_execution=0)


def test_the_progress_bar_is_redrawn_while_the_loop_runs():
    from kcompile.trainers.steps import run_steps

    shown: list[int] = []

    class SlowLoop:  # stands for a native loop: it waits until the watcher has drawn step 3
        def run_epoch(self, sources, order, batch, first, steps, progress, stop):
            progress[0] = 3
            for _ in range(400):
                if shown:
                    break
                time.sleep(0.01)
            return ["loss"], np.ones((steps, 1), np.float32)

    run = run_steps(SlowLoop(), {}, np.arange(10), 1, 2, 8, shown.append)
    assert shown and shown[0] == 5  # first step 2 + 3 done
    assert run.values.shape == (8, 1) and not run.interrupted


def test_the_bar_is_drawn_again_only_when_the_step_count_moves(capsys, monkeypatch):
    from kcompile.callbacks.callback import ProgbarLogger

    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)  # redrawn on a terminal only
    logger = ProgbarLogger()
    logger.set_params({"verbose": 1, "epochs": 1, "steps": 4})
    logger.on_epoch_begin(0)
    for seen in (0, 0, 0, 2, 2, 3):  # a slow step: the watcher sees the same count
        logger.show(seen)
        logger.progbar._last_update = 0.0  # past the bar's own redraw interval
    drawn = capsys.readouterr().out.count("/4")
    assert drawn == 3


def test_ctrl_c_stops_fit_between_steps_with_the_last_steps_weights(rng, monkeypatch):
    # The checking mode copies bound state out only when a call returns: the step count
    # this test watches must be live.
    monkeypatch.setenv("KCOMPILE_CHECK", "0")
    rows = 2_000_000  # batch 1: seconds of steps; Ctrl-C comes after 2000 of them
    x = rng.normal(size=(rows, 7)).astype(np.float32)
    y = rng.integers(0, 3, rows).astype(np.int32)
    stopped, replayed = _model(), _model()
    before = stopped.get_weights()
    fitting = threading.Event()

    def press_ctrl_c() -> None:
        while fitting.is_set() and stopped.optimizer.iterations < 2000:
            time.sleep(0.001)
        if fitting.is_set():
            os.kill(os.getpid(), signal.SIGINT)  # as a terminal sends Ctrl-C

    fitting.set()
    presser = threading.Thread(target=press_ctrl_c)
    # Python's own Ctrl-C handler, even when the suite runs where SIGINT is ignored
    # (a background job of a non-interactive shell)
    handler = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        presser.start()
        with pytest.raises(KeyboardInterrupt):
            stopped.fit(x, y, batch_size=1, epochs=1, shuffle=False, verbose=0)
    finally:
        fitting.clear()
        presser.join()
        signal.signal(signal.SIGINT, handler)
    done = stopped.optimizer.iterations
    assert 0 < done < rows
    assert not all(np.array_equal(a, b) for a, b in zip(before, stopped.get_weights()))
    exe = _train_executable(replayed, x, y)
    exe.run_epoch({replayed.input_names[0]: x, "y": y}, np.arange(rows), 1, steps=done)
    for a, b in zip(stopped.get_weights(), replayed.get_weights()):
        np.testing.assert_array_equal(a, b)
