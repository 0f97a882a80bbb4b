"""A compiled step held by the runtime: owns its buffers, calls the entry through ctypes.

Weights, non-trainable state and optimizer state are bound once to the arrays
that hold them (the step updates them in place); data inputs are copied into
preallocated buffers; scratch buffers are allocated once for a maximum batch
and grown, rarely, when a larger batch comes. Per call: copies of the batch,
one foreign call with the GIL released, no numpy allocation.

This module needs numpy and ctypes only: it runs code the JIT just made
(``kcompile.runtime.native``) and code loaded from an ahead-of-time artifact alike.
"""

from __future__ import annotations

import ctypes
import threading
from collections.abc import Mapping

import numpy as np

from kcompile.backend.variables import stable_array
from kcompile.ir import BATCH, Graph, abi
from kcompile.ir.buffers import BufferPlan, plan_buffers
from kcompile.ir.interpreter import FeedError, bind_batch, check_feed
from kcompile.ir.memory import assign_offsets
from kcompile.runtime.epoch import EpochLoop
from kcompile.runtime.guarded import GuardedBuffers

ENTRY_TYPE = abi.ctypes_type(abi.ENTRY)
EPOCH_TYPE = abi.ctypes_type(abi.EPOCH)


def aligned_empty(shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    """A C-contiguous array whose data starts on a 64-byte boundary."""
    return stable_array(np.zeros(shape, dtype), dtype)


class NativeProgram(EpochLoop):
    """The step of ``graph`` at ``entry`` (``void (ptr buffers[], i64 n)``) and its epoch
    loop at ``epoch`` (``kc_epoch``, see ``codegen.lowering.epoch_loop``; 0 when there is none);
    ``code`` is whatever keeps that code loaded."""

    def __init__(
        self,
        graph: Graph,
        entry: int,
        epoch: int,
        code: object,
        capacity: int = 32,
        plan: BufferPlan | None = None,
        guards: GuardedBuffers | None = None,
    ) -> None:
        self.graph = graph
        self.lock = threading.RLock()
        self._code = code
        self._entry = ENTRY_TYPE(entry)
        self._epoch = EPOCH_TYPE(epoch) if epoch else None
        self._guards = guards
        self._bound_arrays: dict[int, np.ndarray] = {}
        if guards is not None:
            self._entry = guards.wrap(self._entry)
            self._epoch = guards.wrap(self._epoch) if self._epoch else None
        self._plan = plan or plan_buffers(graph)
        self._buffers: list[np.ndarray | None] = [None] * len(self._plan.buffers)
        self._table = (ctypes.c_void_p * len(self._plan.buffers))()
        self._inputs = {v.name: v for v in graph.inputs}
        self._data = {v.name for v in graph.inputs if v.role == "data"}
        self._bound: set[str] = set()
        aliased = {name for name, _ in graph.outputs if name in self._inputs}
        types = {name: v.type for name, v in graph.outputs}
        self._results = [
            (name, index, types[name])
            for name, index in self._plan.outputs.items()
            if name not in aliased
        ]
        self._has_batch = any(BATCH in v.shape for v in graph.inputs)
        self._capacity = 0
        self._allocate(capacity)

    def _allocate(self, capacity: int) -> None:
        """Buffers for batches up to ``capacity``: the data inputs, and either one arena
        laid out by the memory plan or (unplanned graphs) one array per result."""
        if self._guards is not None:
            self._allocate_guarded(capacity)
            return
        arena_intervals = {
            i: (s, e, size.at(capacity)) for i, (s, e, size) in self._plan.arena.items()
        }
        offsets, arena_bytes = assign_offsets(arena_intervals)
        self._arena = aligned_empty((max(arena_bytes, 1),), np.uint8)
        self.arena_bytes = arena_bytes
        for spec in self._plan.buffers:
            if spec.input is not None and spec.input not in self._data:
                continue
            shape = spec.type.concrete_shape(capacity)
            if spec.index in offsets:
                count = int(np.prod(shape, dtype=np.int64))
                start = offsets[spec.index]
                raw = self._arena[start : start + count * spec.element_bytes]
                array = raw.view(spec.type.dtype.numpy).reshape(shape)
            else:
                array = aligned_empty(shape, spec.type.dtype.numpy)
            self._buffers[spec.index] = array
            self._table[spec.index] = array.ctypes.data
        self._capacity = capacity
        self._kept: dict[int | None, _Kept] = {}  # views of each batch size fed so far

    def _allocate_guarded(self, capacity: int) -> None:
        """The checking mode's layout: each buffer on its own between guard zones, for
        exactly ``capacity`` rows; bound arrays through guarded copies."""
        self._guards.reset()
        self.arena_bytes = 0
        for spec in self._plan.buffers:
            if spec.input is not None and spec.input not in self._data:
                continue
            shape = spec.type.concrete_shape(capacity)
            nbytes = int(np.prod(shape, dtype=np.int64)) * spec.element_bytes
            array = self._guards.allocate(nbytes).view(spec.type.dtype.numpy).reshape(shape)
            self._buffers[spec.index] = array
            self._table[spec.index] = array.ctypes.data
        for index, array in self._bound_arrays.items():
            self._table[index] = self._guards.bind(index, array).ctypes.data
        self._capacity = capacity
        self._kept = {}

    def _fits(self, batch: int) -> bool:
        """Whether buffers made for the current capacity serve ``batch`` (in the checking
        mode only an exact fit does, so a write past the batch's rows is seen)."""
        return batch <= self._capacity and (self._guards is None or batch == self._capacity)

    def _ready(self, batch: int) -> None:
        if not self._fits(batch):
            self._allocate(batch)
        if self._inputs.keys() - self._bound - self._data:
            self._refuse_missing(self._data)

    def _loop(self, arrays, order, batch, first, steps, logs, progress, stop) -> int:
        if self._epoch is None:
            return super()._loop(arrays, order, batch, first, steps, logs, progress, stop)
        return self._native_epoch(arrays, order, batch, first, steps, logs, progress, stop)

    def _native_epoch(self, arrays, order, batch, first, steps, logs, progress, stop) -> int:
        pointers = (ctypes.c_void_p * len(arrays))(*[a.ctypes.data for a in arrays])
        return self._epoch(
            self._table,
            pointers,
            order.ctypes.data,
            batch,
            len(order),
            first,
            steps,
            logs.ctypes.data,
            progress.ctypes.data,
            stop.ctypes.data,
        )

    def bind(self, name: str, array: np.ndarray) -> None:
        """Use ``array`` as the storage of input ``name``; the step updates it in place."""
        v = self._inputs.get(name)
        if v is None:
            return
        if v.role == "data":
            raise ValueError(f"input {name!r} is data, fed per call; it cannot be bound")
        expected = v.type.concrete_shape(None)
        if array.shape != expected or array.dtype != v.dtype.numpy:
            raise FeedError(f"input {name!r}: expected {v.type}, got {array.dtype}{array.shape}")
        if not array.flags.c_contiguous or not array.flags.writeable:
            raise FeedError(f"input {name!r}: storage must be a writeable C-contiguous array")
        index = self._plan.slot[v]
        self._buffers[index] = array
        self._table[index] = array.ctypes.data
        if self._guards is not None:
            self._bound_arrays[index] = array
            self._table[index] = self._guards.bind(index, array).ctypes.data
        self._bound.add(name)
        self._kept.clear()

    def __call__(self, data: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run the step on ``data``; the results are views of buffers that the next call
        reuses. A batch of a size fed before, with the same inputs, dtypes and shapes,
        takes the short way: its views are kept, so the call is copies in, one foreign
        call, and the same result views out."""
        self.check_data(data)
        first = next(iter(data.values()), None)
        guess = first.shape[0] if self._has_batch and first is not None and first.ndim else None
        kept = self._kept.get(guess)
        if kept is not None and kept.fill(data):
            self._entry(self._table, kept.n)
            return kept.results
        return self._call(data)

    def call_single(self, array: np.ndarray) -> np.ndarray | None:
        """A copy of the one result of a graph with one data input, on ``array``: the
        shortest path (predict at batch 1). None, with nothing run, unless a batch of
        this size, dtype and shape was fed before through ``__call__``."""
        with self.lock:
            kept = self._kept.get(array.shape[0] if array.ndim else None)
            if kept is None or kept.single is None:
                return None
            self.check_data({kept.targets[0][0]: array})
            target = kept.targets[0][1]
            if array.dtype != target.dtype or array.shape != target.shape:
                return None
            np.copyto(target, array)
            self._entry(self._table, kept.n)
            return kept.single.copy()

    def _call(self, data: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        n = self._batch_of(data)
        if n is not None and not self._fits(n):
            self._allocate(n if self._guards is not None else max(n, 2 * self._capacity))
        for name, array in data.items():
            v = self._inputs[name]
            if array.dtype != v.dtype.numpy:
                check_feed(v, array, n)  # raises with the expected dtype
            if self._buffers[self._plan.slot[v]] is None:
                # A parameter fed by value and never bound: a copy becomes its storage
                # (the step may update it in place; the caller's array stays as it was).
                self.bind(name, np.array(array, order="C", copy=True))
                continue
            target = self._view(self._plan.slot[v], n)
            if array.shape != target.shape:
                check_feed(v, array, n)
            np.copyto(target, array)
        self._entry(self._table, 0 if n is None else n)
        out = {name: self._view(index, n, t) for name, index, t in self._results}
        if data.keys() <= self._data:
            targets = [(name, self._view(self._plan.slot[self._inputs[name]], n)) for name in data]
            key = targets[0][1].shape[0] if self._has_batch and targets[0][1].ndim else None
            self._kept[key] = _Kept(0 if n is None else n, targets, out)
        return out

    def _batch_of(self, data: Mapping[str, np.ndarray]) -> int | None:
        if self._missing_if(data):
            self._refuse_missing(data.keys())
        return bind_batch(self.graph, data) if self._has_batch else None

    def _refuse_missing(self, given) -> None:
        missing = self._inputs.keys() - self._bound - set(given)
        raise FeedError(f"graph {self.graph.name} needs inputs {sorted(missing)}")

    def _missing_if(self, data: Mapping[str, np.ndarray]) -> bool:
        return len(data) + len(self._bound) < len(self._inputs)

    def _view(self, index: int, n: int | None, type_=None) -> np.ndarray:
        """Buffer ``index`` seen as ``type_`` (default: its own type) at batch ``n``."""
        type_ = type_ or self._plan.buffers[index].type
        shape = type_.concrete_shape(n if BATCH in type_.shape else None)
        flat = self._buffers[index].reshape(-1)
        return flat[: int(np.prod(shape, dtype=np.int64))].reshape(shape)


class _Kept:
    """The input and result views of one batch size."""

    def __init__(self, n: int, targets: list[tuple[str, np.ndarray]], results: dict) -> None:
        self.n = n
        self.targets = targets
        self.results = results
        one = len(targets) == 1 and len(results) == 1
        self.single = next(iter(results.values())) if one else None  # for call_single

    def fill(self, data: Mapping[str, np.ndarray]) -> bool:
        """Copy ``data`` into the input views if it has exactly their names, dtypes and
        shapes; False (nothing copied) otherwise."""
        if len(data) != len(self.targets):
            return False
        for name, target in self.targets:
            array = data.get(name)
            if array is None or array.dtype != target.dtype or array.shape != target.shape:
                return False
        for name, target in self.targets:
            np.copyto(target, data[name])
        return True
