"""Running a chunk of an epoch's steps while the caller's thread watches.

The native loop runs on a worker thread (ctypes releases the GIL), so the main
thread stays free to redraw the progress bar from the loop's step counter and to
take Ctrl-C, which asks the loop to stop after the step it is in: the weights are
then those of the last finished step, and its logs are kept.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np

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
    show_progress: Callable[[int], None],
) -> StepsRun:
    """Steps ``first .. first + count`` through ``exe.run_epoch``; ``show_progress(steps
    done in the epoch)`` is called every ``PROGRESS_INTERVAL`` while they run."""
    if count == 1:  # a Ctrl-C arrives when the call returns, between steps anyway
        return StepsRun(*exe.run_epoch(sources, order, batch, first, 1))
    progress, stop = np.zeros(1, np.int64), np.zeros(1, np.int64)
    box: dict = {}
    # Waited on rather than joined: a join interrupted by Ctrl-C can report a thread
    # that is still running as finished.
    finished = threading.Event()

    def work() -> None:
        try:
            box["out"] = exe.run_epoch(sources, order, batch, first, count, progress, stop)
        except BaseException as error:  # handed to the caller's thread
            box["error"] = error
        finally:
            finished.set()

    threading.Thread(target=work, name="kcompile-steps", daemon=True).start()
    interrupted = False
    while not finished.is_set():
        try:
            if not finished.wait(PROGRESS_INTERVAL):
                show_progress(first + int(progress[0]))
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
