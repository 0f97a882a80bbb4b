"""Running a chunk of an epoch's steps while the caller's thread watches.

The native loop runs on a worker thread (ctypes releases the GIL), so the main
thread stays free to redraw the progress bar from the loop's step counter and to
take Ctrl-C, which asks the loop to stop after the step it is in: the weights are
then those of the last finished step, and its logs are kept.

The bar shows the running loss and metrics too: the loop writes each step's row of
statistics into an array the watcher passed in, and publishes the step count after
the row (``codegen.lowering.epoch_loop``: the row's stores, then an atomic exchange with
release order), so the rows below the count the watcher reads are complete. (On
x86-64 a plain load of the count orders the row loads after it; a weaker machine
would need an acquire load here.)
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np

from kcompile.trainers.logs import RunningLogs

PROGRESS_INTERVAL = 0.05  # seconds between redraws of the progress bar


@dataclass
class StepsRun:
    names: list[str]
    values: np.ndarray  # [steps run, len(names)]
    interrupted: bool = False  # Ctrl-C stopped the loop early


def run_steps(
    exe,
    sources: Mapping[str, np.ndarray],
    order: np.ndarray,
    batch: int,
    first: int,
    count: int,
    show_progress: Callable[..., None],
    running: RunningLogs | None = None,
) -> StepsRun:
    """Steps ``first .. first + count`` through ``exe.run_epoch``; ``show_progress(steps
    done in the epoch)`` is called every ``PROGRESS_INTERVAL`` while they run, and
    ``show_progress(steps done, logs)`` when the rows done so far can be read: ``logs``
    are ``running``'s with those rows added, as the epoch's logs will be computed."""
    if count == 1:  # a Ctrl-C arrives when the call returns, between steps anyway
        return StepsRun(*exe.run_epoch(sources, order, batch, first, 1))
    progress, stop = np.zeros(1, np.int64), np.zeros(1, np.int64)
    columns = exe.log_columns() if running is not None and hasattr(exe, "log_columns") else None
    rows = None if columns is None else np.zeros((count, len(columns)), np.float32)
    extra = () if rows is None else (rows,)  # run_epoch's ``logs``
    box: dict = {}
    # Waited on rather than joined: a join interrupted by Ctrl-C can report a thread
    # that is still running as finished.
    finished = threading.Event()

    def work() -> None:
        try:
            box["out"] = exe.run_epoch(sources, order, batch, first, count, progress, stop, *extra)
        except BaseException as error:  # handed to the caller's thread
            box["error"] = error
        finally:
            finished.set()

    def show() -> None:
        done = int(progress[0])  # read before the rows: rows below it are written
        if rows is None or done == 0:
            show_progress(first + done)
            return
        starts = (first + np.arange(done)) * batch
        sizes = np.minimum(batch, len(order) - starts)
        show_progress(first + done, running.with_steps(columns, rows[:done].copy(), sizes))

    threading.Thread(target=work, name="kcompile-steps", daemon=True).start()
    interrupted = False
    while not finished.is_set():
        try:
            if not finished.wait(PROGRESS_INTERVAL):
                show()
        except KeyboardInterrupt:
            interrupted = True
            stop[0] = 1
    if "error" in box:
        raise box["error"]
    return StepsRun(*box["out"], interrupted)


def chunk_size(per_execution: int, cbs, kind: str, steps: int) -> int:
    """Steps per native call: ``steps_per_execution`` when set above 1; one step when
    a user's callback has per-batch hooks; else the whole epoch."""
    if per_execution > 1:
        return per_execution
    return 1 if cbs.has_batch_hooks("train" if kind == "train" else "test") else max(steps, 1)
