"""A train or eval step run by every rank of a data-parallel job on its share of the
global batch.

Train: the rank's compiled gradient step (``graphs.trace_grad``, its loss scaled in the
graph by the rank's share of the batch) writes each weight's gradient into views of one
flat buffer; one in-place allreduce sums that buffer over the ranks (Horovod's tensor
fusion, with one bucket: the gradients of the examples fit one buffer of a few MB); the
compiled optimizer update (``graphs.trace_apply``) then reads the summed gradients in
place. The same buffer carries the state the step updated (BatchNormalization's moving
statistics, weighted by rows) and the loss and metric statistics (each rank's batch-mean
losses weighted by its rows, its metric statistics as sums), so one allreduce a step
makes them the global batch's.

The allreduce is called from Python between the two native calls: it is one call per
step whichever side makes it, and a hook inside the native step would have to hold the
GIL or call MPI from compiled code for no saving the step could measure (~1 µs of Python
against the allreduce's own tens of microseconds). Sums needed inside the step
(synchronized BatchNormalization's statistics, ``replica_sum``) do call back into
Python, through the runtime library's hook (``hooks``).

Random ops (dropout) draw from a stream keyed by ``iterations * ranks + rank`` in the
gradient step, so ranks draw different masks.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping

import numpy as np

from kcompile.distribution.hooks import install as install_hook
from kcompile.distribution.mpi import Solo
from kcompile.ir.signature import batched_data, logged_results
from kcompile.runtime.epoch import EpochLoop

# The names the two halves of a train step share (``graphs.trace_grad``, ``trace_apply``):
GRADIENT = "grad/"  # the gradient of weight ``p``: ``grad/p``, in- and output of a grad step
REPLICA_WEIGHT = "replica_weight"  # a grad step's share of the global batch


def share(rows: int, rank: int, size: int) -> tuple[int, int]:
    """Rank ``rank``'s contiguous rows ``[begin, end)`` of a batch of ``rows``: equal
    shares, the first ``rows % size`` ranks one row more."""
    base, extra = divmod(rows, size)
    begin = rank * base + min(rank, extra)
    return begin, begin + base + (1 if rank < extra else 0)


class DataParallelStep(EpochLoop):
    """``local`` (the rank's gradient or eval step) on this rank's share of each batch,
    then, for training, the summed gradients through ``apply`` (the optimizer's
    update)."""

    def __init__(self, local, communicator: Solo, apply=None) -> None:
        self.graph = local.graph
        self._local, self._apply, self._comm = local, apply, communicator
        grads = [v for v in local.graph.inputs if v.name.startswith(GRADIENT)]
        self._logged = logged_results(local.graph)
        updated = {name for name, _ in local.graph.outputs}
        self._state_inputs = {
            v.name: v for v in local.graph.inputs if v.role == "state" and v.name in updated
        }
        # One buffer, one allreduce a step: the gradients, the state the step updated,
        # then the loss and metric statistics.
        shapes = [v.shape for v in grads] + [v.shape for v in self._state_inputs.values()]
        shapes += [shape for _, shape in self._logged]
        self._flat = np.zeros(sum(math.prod(shape) for shape in shapes), np.float32)
        views, at = [], 0
        for shape in shapes:
            views.append(self._flat[at : at + math.prod(shape)].reshape(shape))
            at += math.prod(shape)
        for v, view in zip(grads, views):
            local.bind(v.name, view)
            if apply is not None:
                apply.bind(v.name, view)
        self._state_views = dict(zip(self._state_inputs, views[len(grads) :]))
        self._stat_views = views[len(grads) + len(self._state_inputs) :]
        self._state: dict[str, np.ndarray] = {}
        # The gradient step's loss is scaled by the rank's share of the batch in the
        # graph (``REPLICA_WEIGHT``), so replica_sum's gradient sums shares too.
        self._weight = np.zeros((), np.float32)
        if any(v.name == REPLICA_WEIGHT for v in local.graph.inputs):
            local.bind(REPLICA_WEIGHT, self._weight)
        install_hook(communicator)
        # What a rank without rows (a last batch smaller than the job) still owes the
        # others: its (zero) part of each replica sum the step makes, in graph order.
        self._replica_sizes = []
        for node in local.graph.nodes:
            if _nested_replica_sum(node):
                raise NotImplementedError(
                    f"a replica sum inside a loop ({node.op}) in a data-parallel step"
                )
            if node.op == "replica_sum":
                value = node.outputs[0]
                if not value.type.is_static:
                    raise NotImplementedError(
                        f"a replica sum over a batch-sized value ({value.type}) in a "
                        "data-parallel step"
                    )
                self._replica_sizes.append(math.prod(value.shape))
        self._iterations: np.ndarray | None = None
        self._draws = np.zeros((), np.int32)
        self._lock = None
        # Seconds spent in each part of the steps so far (benchmarks/distributed.py).
        self.seconds = {"local step": 0.0, "allreduce": 0.0, "update": 0.0}

    @property
    def lock(self):
        return self._lock

    @lock.setter
    def lock(self, value) -> None:
        self._lock = value
        self._local.lock = value
        if self._apply is not None:
            self._apply.lock = value

    def bind(self, name: str, array: np.ndarray) -> None:
        if name == "iterations" and self._apply is not None:
            # Random ops (dropout) draw from a stream keyed by the step count: each rank
            # gets its own count, iterations * ranks + rank, so no two ranks (and no two
            # steps) draw the same masks. The update counts steps as usual.
            self._iterations = array
            self._local.bind(name, self._draws)
        else:
            self._local.bind(name, array)
        if self._apply is not None:
            self._apply.bind(name, array)
        if name in self._state_inputs:
            self._state[name] = array

    def __call__(self, data: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """One step on a global batch (every rank passes the same one)."""
        rows = len(next(iter(data.values())))
        begin, end = share(rows, self._comm.rank, self._comm.size)
        return self._step({name: array[begin:end] for name, array in data.items()}, rows)

    def _loop(self, arrays, order, batch, first, steps, logs, progress, stop) -> int:
        """The epoch's steps, each reading only this rank's rows of the global batch."""
        names = [v.name for v in batched_data(self.graph)]
        done = 0
        for k in range(steps):
            index = order[(first + k) * batch : (first + k + 1) * batch]
            begin, end = share(len(index), self._comm.rank, self._comm.size)
            mine = index[begin:end]
            out = self._step({name: a[mine] for name, a in zip(names, arrays)}, len(index))
            logs[k] = np.concatenate([np.ravel(out[name]) for name, _ in self._logged])
            done = progress[0] = k + 1
            if stop[0]:
                break
        return done

    def _step(self, data: Mapping[str, np.ndarray], rows: int) -> dict[str, np.ndarray]:
        """This rank's rows ``data`` of a global batch of ``rows``: its step, the sum over
        the ranks, the update; the global batch's losses and metric statistics."""
        mine = len(next(iter(data.values())))
        weight = np.float32(mine / rows if rows else 0.0)
        t0 = time.perf_counter()
        if self._iterations is not None:
            self._draws[...] = self._iterations * self._comm.size + self._comm.rank
        if mine:
            self._weight[...] = weight
            out = self._local(data)
            for (name, _), view in zip(self._logged, self._stat_views):
                # A loss is a mean over the rank's rows; metric statistics are sums.
                view[...] = out[name] * weight if _is_mean(name) else out[name]
            for name, view in self._state_views.items():
                np.multiply(self._state[name], weight, out=view)
        else:  # a short last batch left this rank no rows: it adds zeros
            self._flat[:] = 0
            for size in self._replica_sizes:
                self._comm.allreduce_sum(np.zeros(size, np.float32))
        t1 = time.perf_counter()
        self._comm.allreduce_sum(self._flat)
        t2 = time.perf_counter()
        for name, view in self._state_views.items():
            self._state[name][...] = view
        if self._apply is not None:
            self._apply({})
        t3 = time.perf_counter()
        for part, seconds in zip(self.seconds, (t1 - t0, t2 - t1, t3 - t2)):
            self.seconds[part] += seconds
        return {name: view.copy() for (name, _), view in zip(self._logged, self._stat_views)}


def _nested_replica_sum(node) -> bool:
    """Whether a loop or fused body of ``node`` sums over the replicas."""
    body = node.attrs.get("body")
    nodes = getattr(body, "nodes", None)
    return bool(nodes) and any(n.op == "replica_sum" or _nested_replica_sum(n) for n in nodes)


def _is_mean(name: str) -> bool:
    return name == "loss" or name.startswith("loss/")
