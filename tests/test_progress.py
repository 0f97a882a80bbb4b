"""The progress bar as Keras shows it: running loss and metrics while the native epoch
loop runs, one line per epoch where the output is not a terminal, ``verbose`` 0/1/2/auto."""

import re
import sys
import threading
import time

import numpy as np
import pytest

from kcompile.trainers.logs import RunningLogs
from kcompile.trainers.steps import run_steps
from tests.classifiers import dense_classifier

BAR_VALUES = re.compile(r" - (\w+): (-?\d+\.\d{4}(?:e[-+]\d+)?)")


class _RowsLoop:
    """Stands for a native loop: writes rows and the step count as ``kc_epoch`` does
    (the row, then the count), holding at 3 steps until the watcher has drawn them."""

    columns = ("loss", "metric/acc/total", "metric/acc/count")

    def __init__(self, shown: list) -> None:
        self.shown = shown
        self.rows = np.array(
            [[float(k + 1), float(k % 2), 4.0] for k in range(6)], dtype=np.float32
        )

    def log_columns(self) -> list[str]:
        return list(self.columns)

    def run_epoch(self, sources, order, batch, first, steps, progress, stop, logs):
        for k in range(steps):
            logs[k] = self.rows[k]
            progress[0] = k + 1
            if k + 1 == 3:  # wait until the watcher has shown the three rows
                for _ in range(400):
                    if any(len(s) == 2 and s[0] == first + 3 for s in self.shown):
                        break
                    time.sleep(0.01)
        return list(self.columns), logs[:steps].copy()


def test_the_progress_callback_gets_the_running_logs_of_the_rows_written_so_far():
    shown: list = []
    running = RunningLogs({"acc": ("total", ("count",))})
    # one earlier chunk of the epoch: 2 steps of batch 4
    running.add(["loss"], np.array([[10.0], [20.0]], np.float32), np.array([4, 4]))
    loop = _RowsLoop(shown)
    order = np.arange(30)  # batches of 4: steps 2.. have 4 rows, the last (step 7) 2
    run = run_steps(loop, {}, order, 4, 2, 6, lambda *a: shown.append(a), running)
    partial = [s for s in shown if len(s) == 2]
    assert partial, "the watcher never showed logs while the loop ran"
    seen, logs = partial[0]
    done = seen - 2
    assert done >= 1
    expected = RunningLogs({"acc": ("total", ("count",))})
    expected.add(["loss"], np.array([[10.0], [20.0]], np.float32), np.array([4, 4]))
    expected.add(loop.columns, loop.rows[:done], np.full(done, 4))
    assert logs == expected.logs()
    assert logs["loss"] == pytest.approx(
        (10 * 4 + 20 * 4 + sum(range(1, done + 1)) * 4) / (8 + 4 * done)
    )
    # what the watcher computed left the epoch's running logs as they were
    assert running.logs() == {"loss": 15.0}
    assert run.values.shape == (6, 3) and not run.interrupted


def test_a_loop_that_cannot_name_its_columns_shows_the_step_count_alone():
    shown: list = []

    class CountOnly:
        def run_epoch(self, sources, order, batch, first, steps, progress, stop):
            progress[0] = 2
            for _ in range(400):
                if shown:
                    break
                time.sleep(0.01)
            return ["loss"], np.ones((steps, 1), np.float32)

    run_steps(CountOnly(), {}, np.arange(8), 1, 0, 8, lambda *a: shown.append(a), RunningLogs())
    assert shown[0] == (2,)


def _finals(out: str) -> list[str]:
    """The bar lines as finally drawn: what follows the last ``\\r`` of each line."""
    return [line.split("\r")[-1] for line in out.split("\n") if "━" in line]


def _values(line: str) -> dict[str, float]:
    return {k: float(v) for k, v in BAR_VALUES.findall(re.sub(r"\x1b\[[0-9;]*m", "", line))}


def test_on_a_terminal_the_bar_shows_the_running_loss_during_the_epoch(rng, capsys, monkeypatch):
    monkeypatch.setenv("KCOMPILE_CHECK", "0")  # the loop's rows and count must be live
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
    rows = 400_000  # batch 1: long enough for the watcher to redraw while it runs
    x = rng.normal(size=(rows, 7)).astype(np.float32)
    y = rng.integers(0, 3, rows).astype(np.int32)
    model = dense_classifier(7, 8, seed=1)
    history = model.fit(x, y, batch_size=1, epochs=1, shuffle=False, verbose=1)
    out = capsys.readouterr().out
    draws = [d for d in re.split(r"[\r\n]", out) if "━" in d]
    during = [d for d in draws[:-1] if f"/{rows}" in d and "loss:" in d]
    assert during, f"no redraw showed the loss before the end: {draws[:3]}"
    assert {"loss", "accuracy"} <= set(_values(during[0]))
    final = _values(draws[-1])
    assert final["loss"] == float(f"{history.history['loss'][0]:.4f}")
    assert final["accuracy"] == float(f"{history.history['accuracy'][0]:.4f}")


def test_off_a_terminal_verbose_1_prints_one_line_per_epoch_without_redraws(rng, capsys):
    x = rng.normal(size=(300, 7)).astype(np.float32)
    y = rng.integers(0, 3, 300).astype(np.int32)
    model = dense_classifier(7, 8, seed=2)
    history = model.fit(x, y, batch_size=10, epochs=3, verbose=1, validation_split=0.2)
    out = capsys.readouterr().out
    assert "\r" not in out and "\b" not in out and "\x1b" not in out
    lines = out.splitlines()
    bars = [line for line in lines if "━" in line]
    assert len(bars) == 3
    assert [line for line in lines if line.startswith("Epoch")] == [
        "Epoch 1/3",
        "Epoch 2/3",
        "Epoch 3/3",
    ]
    for epoch, line in enumerate(bars):
        assert line.startswith("24/24 ━━━━━━━━━━━━━━━━━━━━ "), line
        values = _values(line)
        for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
            assert values[key] == float(f"{history.history[key][epoch]:.4f}"), (key, line)


def test_off_a_terminal_evaluate_prints_its_bar_once(rng, capsys):
    x = rng.normal(size=(64, 7)).astype(np.float32)
    y = rng.integers(0, 3, 64).astype(np.int32)
    model = dense_classifier(7, 8, seed=3)
    loss, accuracy = model.evaluate(x, y, batch_size=8)  # verbose "auto": 1
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and "\r" not in out
    assert re.fullmatch(r"8/8 ━{20} \d+s \d+(ms|us|s)/step - accuracy: \S+ - loss: \S+\n", out)
    assert _values(out) == {
        "accuracy": float(f"{accuracy:.4f}"),
        "loss": float(f"{loss:.4f}"),
    }


def test_verbose_2_prints_one_summary_line_per_epoch(rng, capsys):
    x = rng.normal(size=(90, 7)).astype(np.float32)
    y = rng.integers(0, 3, 90).astype(np.int32)
    model = dense_classifier(7, 8, seed=4)
    history = model.fit(x, y, batch_size=30, epochs=2, verbose=2)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "Epoch 1/2" and lines[2] == "Epoch 2/2" and len(lines) == 4
    for epoch, line in enumerate(lines[1::2]):
        assert re.fullmatch(
            r"3/3 - \d+s - \d+(ms|us|s)/step - accuracy: \d\.\d{4} - loss: \d\.\d{4}", line
        ), line
        assert _values(line)["loss"] == float(f"{history.history['loss'][epoch]:.4f}")


def test_verbose_0_is_silent_and_other_values_are_refused(rng, capsys):
    x = rng.normal(size=(20, 7)).astype(np.float32)
    y = rng.integers(0, 3, 20).astype(np.int32)
    model = dense_classifier(7, 8, seed=5)
    model.fit(x, y, epochs=2, verbose=0)
    model.evaluate(x, y, verbose=0)
    model.predict(x, verbose=0)
    assert capsys.readouterr().out == ""
    with pytest.raises(ValueError, match="verbose must be 0, 1, 2"):
        model.fit(x, y, verbose=3)


def test_the_watcher_reads_only_rows_the_loop_has_finished():
    """A row is written before the count that covers it: with a loop that writes a row
    slowly, element by element, the watcher never sees a half-written one."""
    shown: list = []
    stop_writing = threading.Event()

    class SlowRows:
        def log_columns(self) -> list[str]:
            return ["loss", "metric/m/total", "metric/m/count"]

        def run_epoch(self, sources, order, batch, first, steps, progress, stop, logs):
            for k in range(steps):
                for j in range(3):  # 1, 1, 1 for every finished row
                    logs[k, j] = 1.0
                    time.sleep(0.004)
                progress[0] = k + 1
            stop_writing.set()
            return self.log_columns(), logs[:steps].copy()

    running = RunningLogs({"m": ("total", ("count",))})
    run_steps(SlowRows(), {}, np.arange(40), 1, 0, 40, lambda *a: shown.append(a), running)
    partial = [logs for _, logs in (s for s in shown if len(s) == 2)]
    assert partial and stop_writing.is_set()
    assert all(logs == {"loss": 1.0, "m": 1.0} for logs in partial), partial
