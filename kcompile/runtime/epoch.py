"""``run_epoch``: many steps of an epoch in one call, with the same checks for every
executable. Native code runs them in ``kc_epoch`` (see ``codegen.lowering.epoch_loop``); other
executables step through them in Python with the same results and logs."""

from __future__ import annotations

import threading
from collections.abc import Mapping

import numpy as np

from kcompile.ir import Graph
from kcompile.ir.indices import IndexUse, check_indices, index_uses
from kcompile.ir.interpreter import FeedError, check_feed
from kcompile.ir.signature import batched_data, logged_results, result_columns


class EpochLoop:
    """Mixed into an executable (``exe(data) -> results``) that has ``graph``."""

    graph: Graph
    _index_uses: list[IndexUse] | None = None
    # Held around every run of the executable's buffers; a model gives all its
    # executables one lock, so weights are never read while a step updates them.
    lock: threading.RLock

    def results(self, data: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """``self(data)``'s results as arrays of their own, safe to call from several
        threads at once (a bare call returns views of buffers the next call reuses)."""
        with self.lock:
            return {name: np.array(value) for name, value in self(data).items()}

    def check_data(self, data: Mapping[str, np.ndarray]) -> None:
        """Refuse ids outside what they index (``ir.indices``): a wrong class id or
        embedding id is an error here, never a silent zero or another row."""
        if self._index_uses is None:
            self._index_uses = index_uses(self.graph)
        if self._index_uses:
            check_indices(self._index_uses, data)

    def run_epoch(
        self,
        sources: Mapping[str, np.ndarray],
        order: np.ndarray,
        batch: int,
        first: int = 0,
        steps: int | None = None,
        progress: np.ndarray | None = None,
        stop: np.ndarray | None = None,
        logs: np.ndarray | None = None,
    ) -> tuple[list[str], np.ndarray]:
        """Steps ``first, first + 1, ...`` of an epoch: each gathers rows
        ``order[s*batch : (s+1)*batch]`` of every array in ``sources`` (one per batched
        data input, all rows of the epoch) and runs the step. Returns the names of the
        scalar results and their values per step run. ``progress`` and ``stop`` (int64
        arrays of one element) let another thread watch the step count and stop the
        loop between steps. ``logs`` (float32, a row of ``log_columns()`` per step) is
        where the rows are written, for that thread to read: row ``k`` is written before
        the count in ``progress`` passes ``k``."""
        inputs = batched_data(self.graph)
        unbatched = [v.name for v in self.graph.inputs if v.role == "data" and v not in inputs]
        if not inputs or unbatched:
            raise NotImplementedError(
                f"graph {self.graph.name}: an epoch loop gathers batched data inputs only "
                f"(has {[v.name for v in inputs]}, and unbatched {unbatched})"
            )
        names = result_columns(self.graph)
        given = {v.name for v in self.graph.inputs}
        logged = {name for name, _ in logged_results(self.graph)}
        unlogged = {name for name, _ in self.graph.outputs if name not in given} - logged
        if unlogged:
            raise NotImplementedError(
                f"graph {self.graph.name}: an epoch loop records f32 results of fixed "
                f"shape only, not {sorted(unlogged)}"
            )
        if set(sources) != {v.name for v in inputs}:
            raise FeedError(
                f"run_epoch needs arrays for {sorted(v.name for v in inputs)}, got {sorted(sources)}"
            )
        if batch < 1:
            raise ValueError(f"run_epoch: batch must be at least 1, got {batch}")
        with self.lock:
            return self._run_epoch(
                sources, inputs, names, order, batch, first, steps, progress, stop, logs
            )

    def log_columns(self) -> list[str]:
        """The names of the columns ``run_epoch`` writes for each step."""
        return result_columns(self.graph)

    def _run_epoch(
        self, sources, inputs, names, order, batch, first, steps, progress, stop, given=None
    ):
        arrays = [_epoch_source(v, sources[v.name]) for v in inputs]
        order = np.ascontiguousarray(order, dtype=np.int64)
        left = -(-len(order) // batch) - first
        steps = max(0, left if steps is None else min(steps, left))
        used = order[first * batch : (first + steps) * batch]
        if len(used) and (used.min() < 0 or any(used.max() >= len(a) for a in arrays)):
            raise FeedError("run_epoch: the order indexes rows outside the data")
        self._ready(batch)
        logs = _logs_array(given, steps, len(names))
        progress = _flag(progress, "progress")
        stop = _flag(stop, "stop")
        done = self._loop(arrays, order, batch, first, steps, logs, progress, stop)
        return names, logs[:done]

    def _ready(self, batch: int) -> None:
        """Called before the loop with its batch size."""

    def _loop(self, arrays, order, batch, first, steps, logs, progress, stop) -> int:
        """The loop in Python: the same steps, the same logs, one call each."""
        inputs = [v.name for v in batched_data(self.graph)]
        logged = [name for name, _ in logged_results(self.graph)]
        done = 0
        for k in range(steps):
            index = order[(first + k) * batch : (first + k + 1) * batch]
            out = self({name: a[index] for name, a in zip(inputs, arrays)})
            logs[k] = np.concatenate([np.ravel(out[name]) for name in logged])
            done = progress[0] = k + 1
            if stop[0]:
                break
        return done


def _epoch_source(v, array: np.ndarray) -> np.ndarray:
    """``array`` checked as all rows of batched input ``v``: rows are copied as bytes, so
    the dtype must match exactly and the array be C-contiguous."""
    if array.shape[1:] != v.type.concrete_shape(1)[1:]:
        check_feed(v, array[:1], 1)  # raises with the expected shape
    if array.dtype != v.dtype.numpy:
        raise FeedError(f"input {v.name!r}: expected dtype {v.dtype.value}, got {array.dtype}")
    if not array.flags.c_contiguous:
        raise FeedError(f"input {v.name!r}: the epoch's array must be C-contiguous")
    return array


def _logs_array(given: np.ndarray | None, steps: int, columns: int) -> np.ndarray:
    """Where the loop writes its rows: ``given`` (checked: native code writes ``steps``
    rows of ``columns`` float32 into it), or a new array."""
    if given is None:
        return np.zeros((steps, columns), np.float32)
    if (
        given.dtype != np.float32
        or given.ndim != 2
        or given.shape[0] < steps
        or given.shape[1] != columns
        or not given.flags.c_contiguous
        or not given.flags.writeable
    ):
        raise ValueError(
            f"run_epoch: logs must be a writeable C-contiguous float32 array of at least "
            f"({steps}, {columns}), got {given.dtype}{given.shape}"
        )
    return given


def _flag(array: np.ndarray | None, name: str) -> np.ndarray:
    """A one-element int64 array native code may read and write (a fresh one for None)."""
    if array is None:
        return np.zeros(1, np.int64)
    if array.dtype != np.int64 or array.size < 1 or not array.flags.c_contiguous:
        raise ValueError(f"run_epoch: {name} must be a C-contiguous int64 array of one element")
    return array
