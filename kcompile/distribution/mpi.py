"""The processes of an MPI job, through mpi4py (the ``mpi`` extra).

One ``Communicator`` per process, over ``MPI.COMM_WORLD``; with one process, or when the
program was not started by an MPI launcher, a ``Solo`` stands in and every collective is
the identity. A failure on one rank must not leave the others waiting in a collective:
``abort_on_failure`` makes an exception that ends a rank's program (or one of its
threads) print the rank and the error and end the whole job through ``MPI_Abort``.
"""

from __future__ import annotations

import functools
import os
import sys
import threading
import traceback
import warnings

import numpy as np

# What launchers put in each process's environment: its rank and the job's size.
_SIZE_VARIABLES = ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MPI_LOCALNRANKS", "SLURM_NTASKS")
_RANK_VARIABLES = ("PMI_RANK", "OMPI_COMM_WORLD_RANK", "MPI_LOCALRANKID", "SLURM_PROCID")


def launched_size() -> int:
    """The number of processes the launcher started, from the environment (1 if none)."""
    for name in _SIZE_VARIABLES[:2]:  # the MPI launchers' own; Slurm's only with PMI
        value = os.environ.get(name)
        if value and value.isdigit():
            return int(value)
    return 1


def launched_rank() -> int:
    for name in _RANK_VARIABLES[:2]:
        value = os.environ.get(name)
        if value and value.isdigit():
            return int(value)
    return 0


class Solo:
    """A job of one process."""

    rank = 0
    size = 1

    def allreduce_sum(self, array: np.ndarray) -> None:
        """Replace ``array`` with its sum over the processes, in place."""

    def broadcast(self, array: np.ndarray, root: int = 0) -> None:
        """Replace ``array`` with the root's, in place."""

    def broadcast_object(self, value, root: int = 0):
        return value

    def any(self, flag: bool) -> bool:
        """Whether any process passed True."""
        return bool(flag)

    def barrier(self) -> None:
        pass

    def abort(self, code: int = 1) -> None:
        os._exit(code)


class Communicator(Solo):
    """The processes of ``MPI.COMM_WORLD``."""

    def __init__(self) -> None:
        from mpi4py import MPI

        self._mpi = MPI
        self._comm = MPI.COMM_WORLD
        self.rank = self._comm.Get_rank()
        self.size = self._comm.Get_size()

    def allreduce_sum(self, array: np.ndarray) -> None:
        if not array.flags.c_contiguous:
            raise ValueError("allreduce_sum: the array must be C-contiguous")
        self._comm.Allreduce(self._mpi.IN_PLACE, array, op=self._mpi.SUM)

    def broadcast(self, array: np.ndarray, root: int = 0) -> None:
        if not array.flags.c_contiguous:
            raise ValueError("broadcast: the array must be C-contiguous")
        self._comm.Bcast(array, root=root)

    def broadcast_object(self, value, root: int = 0):
        return self._comm.bcast(value, root=root)

    def any(self, flag: bool) -> bool:
        return bool(self._comm.allreduce(int(bool(flag)), op=self._mpi.MAX))

    def barrier(self) -> None:
        self._comm.Barrier()

    def abort(self, code: int = 1) -> None:
        self._comm.Abort(code)


@functools.cache
def world() -> Solo:
    """This process's job: MPI's world when started by an MPI launcher with more than one
    process, else a ``Solo``."""
    if launched_size() <= 1:
        return Solo()
    try:
        communicator = Communicator()
    except ImportError:
        raise ImportError(
            f"kcompile: this process is rank {launched_rank()} of {launched_size()} started "
            "by an MPI launcher, and data-parallel training needs mpi4py: pip install "
            "'kcompile[mpi]' (mpi4py with the MPICH wheel)"
        ) from None
    abort_on_failure(communicator)
    return communicator


def abort_on_failure(communicator: Solo) -> None:
    """An uncaught exception on this rank (in the main program or any thread) ends the
    job on every rank, with the rank and the error printed, instead of leaving the others
    blocked in a collective."""

    def hook(kind, error, tb) -> None:
        _report(communicator, kind, error, tb)

    def thread_hook(args) -> None:
        if args.exc_type is not SystemExit:  # a thread's sys.exit ends only the thread
            _report(communicator, args.exc_type, args.exc_value, args.exc_traceback)

    sys.excepthook = hook
    threading.excepthook = thread_hook


def _report(communicator: Solo, kind, error, tb) -> None:
    text = "".join(traceback.format_exception(kind, error, tb))
    sys.stderr.write(
        f"kcompile: rank {communicator.rank} of {communicator.size} failed; ending the job "
        f"on every rank.\n{text}"
    )
    sys.stderr.flush()
    communicator.abort(1)


_warned = False


def warn_if_alone() -> None:
    """Started by an MPI launcher with several processes but without a distribution:
    each rank would train alone on all the data. Said once per process."""
    global _warned
    if _warned or launched_size() <= 1:
        return
    _warned = True
    warnings.warn(
        f"kcompile: this process is rank {launched_rank()} of {launched_size()} started by "
        "an MPI launcher, but no distribution is set: every rank trains its own model on "
        "all the data. For data-parallel training call kcompile.distribution."
        "set_distribution(kcompile.distribution.DataParallel()) before fit.",
        RuntimeWarning,
        stacklevel=3,
    )
