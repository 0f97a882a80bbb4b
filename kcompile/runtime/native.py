"""The native executable: owns its buffers, calls the compiled entry through ctypes.

Weights, non-trainable state and optimizer state are bound once to the arrays
that hold them (the step updates them in place); data inputs are copied into
preallocated buffers; scratch buffers are allocated once for a maximum batch
and grown, rarely, when a larger batch comes. Per call: copies of the batch,
one foreign call with the GIL released, no numpy allocation.
"""

from __future__ import annotations

import ctypes
import os
import sys
from collections.abc import Mapping

import numpy as np

from codegen import compile_graph
from codegen.epoch import EPOCH, batched_data, has_epoch_loop, log_outputs
from ir import BATCH, Graph
from ir.interpreter import FeedError, bind_batch, check_feed
from ir.memory import assign_offsets
from kcompile.variables import stable_array
from passes.manager import debug_level

ENTRY_TYPE = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_int64)
EPOCH_TYPE = ctypes.CFUNCTYPE(
    ctypes.c_int64, *[ctypes.c_void_p] * 3, *[ctypes.c_int64] * 4, *[ctypes.c_void_p] * 3
)


def aligned_empty(shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    """A C-contiguous array whose data starts on a 64-byte boundary."""
    return stable_array(np.zeros(shape, dtype), dtype)


class NativeExecutable:
    def __init__(
        self,
        graph: Graph,
        version: str,
        capacity: int = 32,
        dump_index: int | None = None,
        profile: bool = False,
    ) -> None:
        self.graph = graph
        compiled = compile_graph(
            graph, version, dump=_dumper(graph, dump_index or 0), profile=profile
        )
        self.compiled = compiled
        self.compile_times = compiled.times
        self.cache_hit = compiled.cache_hit
        if debug_level() >= 1:
            _report(graph, compiled)
        self._code = compiled.code
        self._entry = ENTRY_TYPE(compiled.entry_address)
        has_loop = has_epoch_loop(graph)
        self._epoch = EPOCH_TYPE(compiled.code.address(EPOCH)) if has_loop else None
        self._plan = compiled.plan
        self._buffers: list[np.ndarray | None] = [None] * len(self._plan.buffers)
        self._table = (ctypes.c_void_p * len(self._plan.buffers))()
        self._inputs = {v.name: v for v in graph.inputs}
        self._data = {v.name for v in graph.inputs if v.role == "data"}
        self._bound: set[str] = set()
        aliased = {name for name, _ in graph.outputs if name in self._inputs}
        types = {name: v.type for name, v in graph.outputs}
        self._logged = log_outputs(graph, self._plan.outputs)
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

    def run_epoch(
        self,
        sources: Mapping[str, np.ndarray],
        order: np.ndarray,
        batch: int,
        first: int = 0,
        steps: int | None = None,
        progress: np.ndarray | None = None,
        stop: np.ndarray | None = None,
    ) -> tuple[list[str], np.ndarray]:
        """Steps ``first, first + 1, ...`` of an epoch in one native call (``kc_epoch``):
        each gathers rows ``order[s*batch : (s+1)*batch]`` of every array in ``sources``
        (one per batched data input, all rows of the epoch) and runs the step. Returns
        the names of the scalar results and their values per step run. ``progress``
        and ``stop`` (int64 arrays of one element) let another thread watch the step
        count and stop the loop between steps."""
        if self._epoch is None:
            raise NotImplementedError(f"graph {self.graph.name} has no batched data input")
        inputs = batched_data(self.graph)
        if set(sources) != {v.name for v in inputs}:
            raise FeedError(
                f"run_epoch needs arrays for {sorted(v.name for v in inputs)}, got {sorted(sources)}"
            )
        total = len(order)
        arrays = []
        for v in inputs:
            array = sources[v.name]
            if array.shape[1:] != v.type.concrete_shape(1)[1:]:
                check_feed(v, array[:1], 1)  # raises with the expected shape
            if array.dtype != v.dtype.numpy:  # rows are copied as bytes: no conversion
                raise FeedError(
                    f"input {v.name!r}: expected dtype {v.dtype.value}, got {array.dtype}"
                )
            if not array.flags.c_contiguous:
                raise FeedError(f"input {v.name!r}: the epoch's array must be C-contiguous")
            arrays.append(array)
        order = np.ascontiguousarray(order, dtype=np.int64)
        if total and (order.min() < 0 or any(order.max() >= len(a) for a in arrays)):
            raise FeedError("run_epoch: the order indexes rows outside the data")
        if batch < 1:
            raise ValueError(f"run_epoch: batch must be at least 1, got {batch}")
        if batch > self._capacity:
            self._allocate(batch)
        if self._inputs.keys() - self._bound - self._data:
            self._refuse_missing(self._data)
        left = -(-total // batch) - first
        steps = max(0, left if steps is None else min(steps, left))
        names = [name for name, _ in self._logged]
        logs = np.zeros((steps, len(names)), np.float32)
        progress = np.zeros(1, np.int64) if progress is None else progress
        stop = np.zeros(1, np.int64) if stop is None else stop
        pointers = (ctypes.c_void_p * max(len(arrays), 1))(*[a.ctypes.data for a in arrays])
        done = self._epoch(
            self._table,
            pointers,
            order.ctypes.data,
            batch,
            total,
            first,
            steps,
            logs.ctypes.data,
            progress.ctypes.data,
            stop.ctypes.data,
        )
        return names, logs[:done]

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
        self._bound.add(name)
        self._kept.clear()

    def __call__(self, data: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run the step on ``data``; the results are views of buffers that the next call
        reuses. A batch of a size fed before, with the same inputs, dtypes and shapes,
        takes the short way: its views are kept, so the call is copies in, one foreign
        call, and the same result views out."""
        first = next(iter(data.values()), None)
        guess = first.shape[0] if self._has_batch and first is not None and first.ndim else None
        kept = self._kept.get(guess)
        if kept is not None and kept.fill(data):
            self._entry(self._table, kept.n)
            return kept.results
        return self._call(data)

    def _call(self, data: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        n = self._batch_of(data)
        if n is not None and n > self._capacity:
            self._allocate(max(n, 2 * self._capacity))
        for name, array in data.items():
            v = self._inputs[name]
            if array.dtype != v.dtype.numpy:
                check_feed(v, array, n)  # raises with the expected dtype
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


def _dumper(graph: Graph, index: int):
    """Writes LLVM IR (before and after optimization) and assembly after the graph dumps,
    into ``$KCOMPILE_DUMP/<graph>/``; ``KCOMPILE_DEBUG`` 3 prints the LLVM IR, 4 the
    assembly too."""
    folder = os.environ.get("KCOMPILE_DUMP")
    level = debug_level()
    if not folder and level < 3:
        return None
    counter = [index]

    def dump(name: str, text: str) -> None:
        if folder:
            os.makedirs(os.path.join(folder, graph.name), exist_ok=True)
            path = os.path.join(folder, graph.name, f"{counter[0]:03d}_{name}")
            with open(path, "w") as f:
                f.write(text)
        counter[0] += 1
        if level >= 4 or (level >= 3 and name != "asm.s"):
            print(f"// {graph.name}: {name}\n{text}", file=sys.stderr)

    return dump


def _report(graph: Graph, compiled) -> None:
    total = sum(compiled.times.stages.values())
    source = "cache hit" if compiled.cache_hit else "compiled"
    print(
        f"[kcompile] {graph.name}: {len(graph.nodes)} nodes, {source}, {total * 1e3:.1f} ms",
        file=sys.stderr,
    )
    for stage, seconds in compiled.times.stages.items():
        print(f"[kcompile]   {stage:<22} {seconds * 1e3:8.1f} ms", file=sys.stderr)
