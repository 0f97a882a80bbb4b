"""Data-parallel training over MPI, under Keras 3's distribution API names.

    kcompile.distribution.set_distribution(kcompile.distribution.DataParallel())
    model.fit(x, y, batch_size=256)      # mpiexec -n 4 python train.py

Each process is one replica ("device") and holds the whole model. As in Keras's
``DataParallel``, ``batch_size`` is the global batch: every rank takes its contiguous
share of each batch (``batch_size / ranks`` rows; the remainder of a last, short batch
goes to the first ranks), computes the gradients of its rows, and the gradients are
summed across ranks (one allreduce over a flat buffer) between the compiled backward
pass and the compiled optimizer update. Losses and metrics are those of the global
batch, every rank ends each step with the same weights, bit for bit. Without a
distribution, or with one process, nothing changes.
"""

from __future__ import annotations

import collections.abc
import contextlib
import functools
import math
import re

from kcompile.distribution.mpi import Solo, launched_size, world

_current: Distribution | None = None


class Distribution:
    """What a distribution gives the training loop: the job's communicator."""

    def __init__(self) -> None:
        self.communicator: Solo = world()

    @property
    def num_processes(self) -> int:
        return self.communicator.size

    @property
    def process_id(self) -> int:
        return self.communicator.rank

    @contextlib.contextmanager
    def scope(self):
        """This distribution in effect within the block (Keras's ``scope``)."""
        global _current
        saved, _current = _current, self
        try:
            yield self
        finally:
            _current = saved

    def __repr__(self) -> str:
        return f"<{type(self).__name__} processes={self.num_processes}>"


class DataParallel(Distribution):
    """Every process a replica of the whole model, each batch split between them."""

    def __init__(self, device_mesh=None, devices=None, auto_shard_dataset: bool = True):
        super().__init__()
        if device_mesh is not None:
            raise NotImplementedError(
                "DataParallel(device_mesh=...): kcompile's replicas are the MPI processes; "
                "leave device_mesh unset"
            )
        if devices is not None and list(devices) != list_devices():
            raise ValueError(
                f"DataParallel(devices={devices!r}): kcompile's devices are the job's "
                f"processes, {list_devices()}"
            )
        if not auto_shard_dataset:
            raise NotImplementedError(
                "DataParallel(auto_shard_dataset=False): every rank takes its share of the "
                "global batch; feeding each rank its own data is not supported"
            )
        self.auto_shard_dataset = True


class ModelParallel(Distribution):
    def __init__(self, *args, **kwargs) -> None:
        raise NotImplementedError(
            "ModelParallel: kcompile trains data-parallel only (DataParallel over MPI)"
        )


def list_devices(device_type: str | None = None) -> list[str]:
    """One device per process of the job: ``cpu:<rank>``."""
    if device_type not in (None, "cpu", "CPU"):
        raise ValueError(f"list_devices: kcompile runs on CPUs only, not {device_type!r}")
    return [f"cpu:{rank}" for rank in range(world().size)]


def get_device_count(device_type: str | None = None) -> int:
    """How many devices the job has: one per process."""
    return len(list_devices(device_type))


class DeviceMesh:
    """Keras's mesh of devices: ``shape``, one name per axis, the devices laid out in it.
    kcompile's ``DataParallel`` takes no mesh (its replicas are the job's processes), and
    ``ModelParallel``, which lays tensors out on one, is refused."""

    def __init__(self, shape, axis_names, devices=None) -> None:
        shape, axis_names = tuple(shape), list(axis_names)
        if not shape or not axis_names:
            raise ValueError(f"DeviceMesh: shape and axis_names must not be empty, got {shape}")
        if len(shape) != len(axis_names):
            raise ValueError(
                f"DeviceMesh: shape {shape} and axis_names {axis_names} differ in length"
            )
        devices = list_devices() if devices is None else list(devices)
        if math.prod(shape) != len(devices):
            raise ValueError(f"DeviceMesh: shape {shape} does not match the {len(devices)} devices")
        self.shape, self.axis_names, self.devices = shape, axis_names, devices

    def __repr__(self) -> str:
        return f"<DeviceMesh shape={self.shape}, axis_names={self.axis_names}>"


class TensorLayout:
    """Keras's layout of a tensor on a mesh: one mesh axis name (or None) per dimension."""

    def __init__(self, axes, device_mesh: DeviceMesh | None = None) -> None:
        self.axes, self.device_mesh = tuple(axes), device_mesh

    def __repr__(self) -> str:
        return f"<TensorLayout axes={self.axes}>"


class LayoutMap(collections.abc.MutableMapping):
    """Keras's map from variable-path regular expressions to layouts, for ModelParallel
    (which kcompile refuses); a lookup returns the layout of the first key that matches
    the path."""

    def __init__(self, device_mesh: DeviceMesh) -> None:
        self.device_mesh = device_mesh
        self._layouts: dict[str, TensorLayout] = {}

    def __getitem__(self, key: str) -> TensorLayout | None:
        if key in self._layouts:
            return self._layouts[key]
        matches = [k for k in self._layouts if re.search(k, key)]
        if len(matches) > 1:
            raise ValueError(f"Path '{key}' matches multiple layout specification keys: {matches}")
        return self._layouts[matches[0]] if matches else None

    def __setitem__(self, key: str, layout) -> None:
        if key in self._layouts:
            raise ValueError(f"{key} already exists in the LayoutMap")
        if not isinstance(layout, TensorLayout):
            layout = TensorLayout(layout, self.device_mesh)
        self._layouts[key] = layout

    def __delitem__(self, key: str) -> None:
        del self._layouts[key]

    def __len__(self) -> int:
        return len(self._layouts)

    def __iter__(self):
        return iter(self._layouts)


def __getattr__(name: str):
    if name == "distribute_tensor":
        raise NotImplementedError(
            "keras.distribution.distribute_tensor is not supported by kcompile: tensors are "
            "not laid out across devices (DataParallel replicates the whole model)"
        )
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def initialize(job_addresses=None, num_processes: int | None = None, process_id=None) -> None:
    """Keras's multi-process start: here the MPI launcher has done it; the numbers given,
    if any, must agree with it."""
    job = world()
    if num_processes is not None and num_processes != job.size:
        raise ValueError(
            f"initialize(num_processes={num_processes}): the launcher started {job.size}"
        )
    if process_id is not None and process_id != job.rank:
        raise ValueError(f"initialize(process_id={process_id}): this process is {job.rank}")


def set_distribution(value: Distribution | None) -> None:
    global _current
    if value is not None and not isinstance(value, Distribution):
        raise TypeError(f"set_distribution expects a DataParallel or None, got {value!r}")
    _current = value


def distribution() -> Distribution | None:
    return _current


_one_rank: Solo | None = None  # set by one_rank_job()


def active() -> Solo | None:
    """The communicator of the data-parallel job in effect, if it has several processes
    (or inside ``one_rank_job``)."""
    if _one_rank is not None:
        return _one_rank
    if _current is None or _current.num_processes <= 1:
        return None
    return _current.communicator


@contextlib.contextmanager
def one_rank_job():
    """Steps made inside run as in a data-parallel job of one rank: the train step as a
    gradient step and an update with the (identity) sum between them. The fuzzer checks
    them against the fused train step."""
    global _one_rank
    saved, _one_rank = _one_rank, Solo()
    try:
        yield _one_rank
    finally:
        _one_rank = saved


def root_writes(method):
    """``method`` (one that writes files) run by rank 0 alone in a data-parallel job; the
    other ranks, which hold the same weights, skip it and return None. Not a collective:
    callbacks, which run on rank 0 only, call it too."""

    @functools.wraps(method)
    def run(*args, **kwargs):
        job = active()
        if job is not None and job.rank != 0:
            return None
        return method(*args, **kwargs)

    return run


__all__ = [
    "DataParallel",
    "DeviceMesh",
    "LayoutMap",
    "ModelParallel",
    "TensorLayout",
    "active",
    "distribution",
    "get_device_count",
    "initialize",
    "launched_size",
    "list_devices",
    "one_rank_job",
    "root_writes",
    "set_distribution",
]
