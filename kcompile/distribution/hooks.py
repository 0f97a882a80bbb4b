"""The replica hook: how compiled ``replica_sum`` ops reach MPI.

The runtime library (the compiler's, and each loaded artifact's) calls one hook per
process with a buffer to sum over the replicas in place (``codegen.library.replicas``); here it
is a ctypes callback around the job's allreduce. A callback cannot raise into native
code (ctypes would print the error and return), so a failure in it ends the job.
"""

from __future__ import annotations

import ctypes
import sys
import traceback

import numpy as np

from kcompile.distribution.mpi import Solo

_HOOK = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_int64)
_installed: dict = {}  # the callback (kept alive while native code may call it) and job


def install(communicator: Solo) -> None:
    """Sum ``replica_sum`` results over ``communicator``'s processes from now on, in the
    compiler's runtime and in every artifact runtime loaded."""
    if _installed.get("job") is communicator:
        return

    def hook(data: int, floats: int) -> None:
        try:
            array = np.ctypeslib.as_array((ctypes.c_float * floats).from_address(data))
            communicator.allreduce_sum(array)
        except BaseException:
            sys.stderr.write(
                f"kcompile: rank {communicator.rank}: the replica sum failed\n"
                + traceback.format_exc()
            )
            sys.stderr.flush()
            communicator.abort(1)

    callback = _HOOK(hook)
    _set(ctypes.cast(callback, ctypes.c_void_p).value)
    _installed.update(job=communicator, callback=callback)


def uninstall() -> None:
    """Replica sums are the identity again (one process)."""
    _set(0)
    _installed.clear()


def _set(address: int) -> None:
    if "kcompile.codegen.library.runtime_library" in sys.modules:  # the compiler is in this process
        from kcompile.codegen.library.runtime_library import runtime

        runtime().set_replica_hook(address)
    from kcompile.artifact import native

    native.set_replica_hook(address)
